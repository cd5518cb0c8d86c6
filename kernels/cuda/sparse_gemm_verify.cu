// f16_relative_max_diff (sparse_gemm.hpp): the check SparseContext's configuration search runs on
// each candidate's output against the default configuration's, on the device.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/sparse_gemm.hpp"

namespace llmc::kernels::cuda {

namespace {

// out[0] = max |a − ref| (+inf where either is not finite), out[1] = max |ref|, both as the bits
// of non-negative floats, whose integer order is their value order.
__global__ void max_diff_kernel(const __half* a, const __half* ref, size_t n, unsigned* out) {
  float d = 0.0f, r = 0.0f;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float x = __half2float(a[i]), y = __half2float(ref[i]);
    d = (isfinite(x) && isfinite(y)) ? fmaxf(d, fabsf(x - y)) : INFINITY;
    r = isfinite(y) ? fmaxf(r, fabsf(y)) : r;
  }
  for (int o = 16; o > 0; o /= 2) {
    d = fmaxf(d, __shfl_xor_sync(0xffffffffu, d, o));
    r = fmaxf(r, __shfl_xor_sync(0xffffffffu, r, o));
  }
  if ((threadIdx.x & 31) == 0) {
    atomicMax(out, __float_as_uint(d));
    atomicMax(out + 1, __float_as_uint(r));
  }
}

}  // namespace

double f16_relative_max_diff(const uint16_t* a, const uint16_t* ref, size_t n, cudaStream_t s) {
  if (n == 0) return 0.0;
  unsigned* d = nullptr;
  LLMC_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&d), 2 * sizeof(unsigned), s));
  LLMC_CUDA_CHECK(cudaMemsetAsync(d, 0, 2 * sizeof(unsigned), s));
  const int blocks = static_cast<int>(std::min<size_t>((n + 255) / 256, 1024));
  max_diff_kernel<<<blocks, 256, 0, s>>>(reinterpret_cast<const __half*>(a), reinterpret_cast<const __half*>(ref), n, d);
  LLMC_CUDA_CHECK(cudaGetLastError());
  unsigned h[2] = {0, 0};
  LLMC_CUDA_CHECK(cudaMemcpyAsync(h, d, sizeof(h), cudaMemcpyDeviceToHost, s));
  LLMC_CUDA_CHECK(cudaFreeAsync(d, s));
  LLMC_CUDA_CHECK(cudaStreamSynchronize(s));
  float diff, mref;
  static_assert(sizeof(float) == sizeof(unsigned));
  std::memcpy(&diff, &h[0], sizeof(float));
  std::memcpy(&mref, &h[1], sizeof(float));
  if (!std::isfinite(diff)) return std::numeric_limits<double>::infinity();
  return mref > 0 ? diff / mref : (diff > 0 ? std::numeric_limits<double>::infinity() : 0.0);
}

}  // namespace llmc::kernels::cuda
