// Checks for CUDA runtime and cuBLAS calls and kernel launches: a failure throws llmc::Error
// (kind Runtime) naming the call or kernel, the source file and line, and the driver's message.
#pragma once
#include <cuda_runtime_api.h>

#include "runtime/ir/error.hpp"

namespace llmc::kernels::cuda {

[[noreturn]] void throw_cuda_error(const char* what, cudaError_t err, const char* file, int line);
[[noreturn]] void throw_cublas_error(const char* what, int status, const char* file, int line);

// An attribute of the current device (multiprocessor count, compute capability major, ...).
int current_device_attribute(cudaDeviceAttr attr);

}  // namespace llmc::kernels::cuda

// LLMC_CUDA_CHECK(cudaMalloc(&p, n)): throws on any status but cudaSuccess.
#define LLMC_CUDA_CHECK(call)                                                            \
  do {                                                                                   \
    const cudaError_t llmc_err_ = (call);                                                \
    if (llmc_err_ != cudaSuccess)                                                        \
      ::llmc::kernels::cuda::throw_cuda_error(#call, llmc_err_, __FILE__, __LINE__);     \
  } while (0)

// After a <<<...>>> launch: reports bad launch configurations at once (errors inside the kernel
// surface at the next synchronizing call, which is checked too).
#define LLMC_CUDA_CHECK_LAUNCH(kernel_name)                                              \
  do {                                                                                   \
    const cudaError_t llmc_err_ = cudaGetLastError();                                    \
    if (llmc_err_ != cudaSuccess)                                                        \
      ::llmc::kernels::cuda::throw_cuda_error("launch of kernel " kernel_name, llmc_err_, \
                                              __FILE__, __LINE__);                       \
  } while (0)

// LLMC_CUBLAS_CHECK(cublasGemmEx(...)): throws on any status but CUBLAS_STATUS_SUCCESS.
#define LLMC_CUBLAS_CHECK(call)                                                          \
  do {                                                                                   \
    const int llmc_st_ = static_cast<int>(call);                                         \
    if (llmc_st_ != 0) ::llmc::kernels::cuda::throw_cublas_error(#call, llmc_st_, __FILE__, __LINE__); \
  } while (0)
