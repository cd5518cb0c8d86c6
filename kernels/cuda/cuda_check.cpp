// Error reporting behind LLMC_CUDA_CHECK / LLMC_CUBLAS_CHECK (cuda_check.hpp).
#include "kernels/cuda/cuda_check.hpp"

#include <cublas_v2.h>

#include <string>

namespace llmc::kernels::cuda {

void throw_cuda_error(const char* what, cudaError_t err, const char* file, int line) {
  throw Error(std::string("CUDA error in ") + what + " at " + file + ":" + std::to_string(line) + ": " +
                  cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")",
              ErrorKind::Runtime);
}

void throw_cublas_error(const char* what, int status, const char* file, int line) {
  throw Error(std::string("cuBLAS error in ") + what + " at " + file + ":" + std::to_string(line) + ": " +
                  cublasGetStatusString(static_cast<cublasStatus_t>(status)) + " (status " +
                  std::to_string(status) + ")",
              ErrorKind::Runtime);
}

int current_device_attribute(cudaDeviceAttr attr) {
  int dev = 0, value = 0;
  LLMC_CUDA_CHECK(cudaGetDevice(&dev));
  LLMC_CUDA_CHECK(cudaDeviceGetAttribute(&value, attr, dev));
  return value;
}

}  // namespace llmc::kernels::cuda
