// cuBLAS-backed dense f16 linear (dense_gemm.hpp).
#include "kernels/cuda/dense_gemm.hpp"

#include <cuda_fp16.h>

#include <string>

namespace llmc::kernels::cuda {

namespace {
constexpr size_t kWorkspaceBytes = 32u << 20;  // cuBLAS's recommendation for Hopper
}

CublasHandle::CublasHandle() : workspace_(kWorkspaceBytes) {
  LLMC_CUBLAS_CHECK(cublasCreate(&handle_));
  LLMC_CUBLAS_CHECK(cublasSetWorkspace(handle_, workspace_.data(), workspace_.bytes()));
}

CublasHandle::~CublasHandle() {
  if (handle_) cublasDestroy(handle_);
}

void linear_f16(const CublasHandle& h, const uint16_t* x, const uint16_t* w, uint16_t* y, int64_t m, int64_t n,
                int64_t k, cudaStream_t stream, int64_t ldy) {
  if (ldy == 0) ldy = n;
  check(m > 0 && n > 0 && k > 0 && m < (int64_t{1} << 31) && ldy < (int64_t{1} << 31) && k < (int64_t{1} << 31) &&
            ldy >= n,
        "linear_f16: bad shape m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
            " ldy=" + std::to_string(ldy));
  // Column-major view: yᵀ[n, m] = (w as k×n)ᵀ · (x as k×m).
  const float alpha = 1.0f, beta = 0.0f;
  LLMC_CUBLAS_CHECK(cublasSetStream(h.get(), stream));
  LLMC_CUBLAS_CHECK(cublasGemmEx(h.get(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                                 static_cast<int>(k), &alpha, w, CUDA_R_16F, static_cast<int>(k), x, CUDA_R_16F,
                                 static_cast<int>(k), &beta, y, CUDA_R_16F, static_cast<int>(ldy), CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
}

}  // namespace llmc::kernels::cuda
