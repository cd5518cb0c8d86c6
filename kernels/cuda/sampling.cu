// Log-softmax, argmax and the position step (sampling.hpp): one block per row.
#include <cuda_fp16.h>

#include <cmath>
#include <string>

#include "kernels/cuda/act_util.cuh"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/sampling.hpp"

namespace llmc::kernels::cuda {

namespace {

using namespace detail;
constexpr int kThreads = 512;

__device__ __forceinline__ float block_max(float v, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max(v);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float t = lane < warps ? red[lane] : -INFINITY;
  t = warp_max(t);
  __syncthreads();
  return t;
}

__global__ void __launch_bounds__(kThreads) log_softmax_kernel(const float* x, float* out, int64_t rows, int n,
                                                                int64_t ld) {
  pdl_begin();
  __shared__ float red[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * ld;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, xr[j]);
    mx = block_max(mx, red);
    float s = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) s += expf(xr[j] - mx);
    s = block_sum(s, red);
    const float lse = mx + logf(s);
    for (int j = threadIdx.x; j < n; j += blockDim.x) out[r * ld + j] = xr[j] - lse;
  }
}

// (value, index) pairs: larger value wins, then the lower index.
__device__ __forceinline__ void better(float& v, int& i, float ov, int oi) {
  if (ov > v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

// One block of 1024 threads per row; 16-byte loads, four in flight per thread (a decode step's
// 32000 logits are ~8 float4 per thread: two round trips instead of 63 dependent ones).
__global__ void __launch_bounds__(1024) argmax_kernel(const float* x, int64_t rows, int n, int64_t ld, int32_t* ids,
                                                      int32_t* history, int64_t hld, const int32_t* past) {
  pdl_begin();
  __shared__ float sv[32];
  __shared__ int si[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const bool vec = ld % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * ld;
    float v = -INFINITY;
    int i = n;  // no candidate yet (all −inf/NaN rows end at index 0 below)
    int tail = 0;
    if (vec) {
      const float4* x4 = reinterpret_cast<const float4*>(xr);
      const int n4 = n / 4;
#pragma unroll 4
      for (int j = threadIdx.x; j < n4; j += blockDim.x) {
        const float4 f = __ldg(x4 + j);
        if (!isnan(f.x)) better(v, i, f.x, 4 * j);
        if (!isnan(f.y)) better(v, i, f.y, 4 * j + 1);
        if (!isnan(f.z)) better(v, i, f.z, 4 * j + 2);
        if (!isnan(f.w)) better(v, i, f.w, 4 * j + 3);
      }
      tail = 4 * n4;
    }
    for (int j = tail + threadIdx.x; j < n; j += blockDim.x) {
      const float xv = xr[j];
      if (!isnan(xv)) better(v, i, xv, j);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, v, o);
      const int oi = __shfl_xor_sync(0xffffffffu, i, o);
      better(v, i, ov, oi);
    }
    if (lane == 0) {
      sv[warp] = v;
      si[warp] = i;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < warps; ++w) better(v, i, sv[w], si[w]);
      const int id = i < n ? i : 0;
      ids[r] = id;
      if (history) history[r * hld + *past] = id;
    }
    __syncthreads();
  }
}

__global__ void advance_kernel(int32_t* past, int32_t by) {
  pdl_begin();
  *past += by;
}

}  // namespace

void log_softmax(const float* x, float* out, int64_t rows, int64_t n, int64_t ld, cudaStream_t stream) {
  check(n > 0 && n < (int64_t{1} << 31) && ld >= n, "log_softmax: bad shape n=" + std::to_string(n));
  if (rows == 0) return;
  launch_pdl(log_softmax_kernel, dim3(grid_for(rows, 1, 65535)), dim3(kThreads), stream, x, out, rows,
             static_cast<int>(n), ld);
  LLMC_CUDA_CHECK_LAUNCH("log_softmax");
}

void argmax(const float* x, int64_t rows, int64_t n, int64_t ld, int32_t* ids, int32_t* history, int64_t history_ld,
            const int32_t* past, cudaStream_t stream) {
  check(n > 0 && n < (int64_t{1} << 31) && ld >= n, "argmax: bad shape n=" + std::to_string(n));
  check(!history || past, "argmax: a history needs the position");
  if (rows == 0) return;
  launch_pdl(argmax_kernel, dim3(grid_for(rows, 1, 65535)), dim3(1024), stream, x, rows, static_cast<int>(n), ld,
             ids, history, history_ld, past);
  LLMC_CUDA_CHECK_LAUNCH("argmax");
}

void advance_position(int32_t* past, int32_t by, cudaStream_t stream) {
  launch_pdl(advance_kernel, dim3(1), dim3(32), stream, past, by);
  LLMC_CUDA_CHECK_LAUNCH("advance_position");
}

}  // namespace llmc::kernels::cuda
