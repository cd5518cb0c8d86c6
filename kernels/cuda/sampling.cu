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

__global__ void __launch_bounds__(kThreads) argmax_kernel(const float* x, int64_t rows, int n, int64_t ld, int32_t* ids,
                                                          int32_t* history, int64_t hld, const int32_t* past) {
  pdl_begin();
  __shared__ float sv[32];
  __shared__ int si[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * ld;
    float v = -INFINITY;
    int i = n;  // no candidate yet (all −inf/NaN rows end at index 0 below)
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
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
  launch_pdl(argmax_kernel, dim3(grid_for(rows, 1, 65535)), dim3(kThreads), stream, x, rows, static_cast<int>(n), ld,
             ids, history, history_ld, past);
  LLMC_CUDA_CHECK_LAUNCH("argmax");
}

void advance_position(int32_t* past, int32_t by, cudaStream_t stream) {
  launch_pdl(advance_kernel, dim3(1), dim3(32), stream, past, by);
  LLMC_CUDA_CHECK_LAUNCH("advance_position");
}

}  // namespace llmc::kernels::cuda
