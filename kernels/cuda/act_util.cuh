// Device helpers shared by the activation kernels: f16/f32 loads and stores behind one template
// parameter, dispatch from ActType to that parameter, block reductions and launch sizing.
#pragma once
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/mma_util.cuh"
#include "kernels/cuda/transformer_ops.hpp"

namespace llmc::kernels::cuda::detail {

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
template <class T>
__device__ __forceinline__ T from_f(float v);
template <>
__device__ __forceinline__ float from_f<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_f<__half>(float v) {
  return __float2half_rn(v);
}

// Calls f with a value of the C++ type behind t (__half or float).
template <class F>
void with_type(ActType t, F&& f) {
  if (t == ActType::F16)
    f(__half{});
  else
    f(float{});
}

template <class T>
T* ptr_as(const Act& a) {
  return static_cast<T*>(a.ptr);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, ≤ 1024); every thread gets the result.
// `red` is 32 floats of shared memory, free again when this returns.
__device__ __forceinline__ float block_sum(float v, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float t = lane < warps ? red[lane] : 0.0f;
  t = warp_sum(t);
  __syncthreads();
  return t;
}

// Launches kernel<<<grid, block, 0, stream>>>(args...) with programmatic stream serialization on
// sm_90+ (PDL, as gemv_quantized does): the launch and ramp-up overlap the tail of the kernel
// before it. Every kernel launched this way calls grid_dependency_wait() before it reads or
// writes anything an earlier kernel may touch, so stream order holds, and launch_dependents() only
// after that wait (so when a kernel starts, every kernel but the one just before it has
// finished). Only constant data (weights) is read before the wait, except in the fused decode
// attention, which also reads *past and older cache rows there (the contract in attention.hpp).
// Saves ~1 µs per dependent launch in a decode step of ~200 kernels.
template <class... KArgs, class... Args>
void launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, cudaStream_t stream, Args&&... args) {
  const bool sm90 = current_device_attribute(cudaDevAttrComputeCapabilityMajor) >= 9;
  launch_kernel(kernel, grid, block, 0, sm90, stream, std::forward<Args>(args)...);
}

// The prologue of every kernel launched with launch_pdl.
__device__ __forceinline__ void pdl_begin() {
  grid_dependency_wait();
  launch_dependents();
}

// Grid size of a grid-stride loop over n items with `threads` per block.
inline unsigned grid_for(int64_t n, int threads, int64_t max_blocks = 8192) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + threads - 1) / threads, 1, max_blocks));
}

}  // namespace llmc::kernels::cuda::detail
