// Dense f16 linear layers through cuBLAS (the baseline the quantized kernels are measured
// against, and the GEMM behind the prefill path), with an RAII cuBLAS handle.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/device_buffer.hpp"

namespace llmc::kernels::cuda {

// A cuBLAS handle with its own workspace, so calls need no allocation and can be captured in a
// CUDA graph.
class CublasHandle {
 public:
  CublasHandle();
  ~CublasHandle();
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
  DeviceBuffer<uint8_t> workspace_;
};

// y[m, n] = x[m, k] · w[n, k]ᵀ, all f16 (bits) on the device, row-major; f32 accumulation
// (cublasGemmEx, CUBLAS_COMPUTE_32F). Moves 2·(m·k + n·k + m·n) bytes, does 2·m·n·k flops:
// bandwidth bound for small m (~90 MB → ~30 µs for 11008×4096 at 3 TB/s), compute bound for
// large m (~0.19 ms at m = 2048 at ~990 TFLOP/s dense f16).
// ldy (≥ n, 0 for n) is y's row stride, so that a call can fill columns [n0, n0 + n) of a wider y.
void linear_f16(const CublasHandle& h, const uint16_t* x, const uint16_t* w, uint16_t* y, int64_t m, int64_t n,
                int64_t k, cudaStream_t stream, int64_t ldy = 0);

}  // namespace llmc::kernels::cuda
