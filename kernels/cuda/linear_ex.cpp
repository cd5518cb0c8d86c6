// cuBLAS-backed strided dense linear (linear_ex.hpp).
#include "kernels/cuda/linear_ex.hpp"

#include <string>

namespace llmc::kernels::cuda {

void linear_f16_ex(const CublasHandle& h, Act x, const uint16_t* w, Act y, int64_t m, int64_t n, int64_t k,
                   cudaStream_t stream) {
  constexpr int64_t kMax = int64_t{1} << 31;
  check(x.type == ActType::F16, "linear_f16_ex: x must be f16");
  check(m > 0 && n > 0 && k > 0 && m < kMax && n < kMax && k < kMax && x.ld >= k && y.ld >= n && x.ld < kMax &&
            y.ld < kMax,
        "linear_f16_ex: bad shape m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
            " ldx=" + std::to_string(x.ld) + " ldy=" + std::to_string(y.ld));
  // Column-major view: yᵀ[n, m] = (w as k×n)ᵀ · (x as k×m, leading dimension ldx).
  const float alpha = 1.0f, beta = 0.0f;
  LLMC_CUBLAS_CHECK(cublasSetStream(h.get(), stream));
  LLMC_CUBLAS_CHECK(cublasGemmEx(h.get(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                                 static_cast<int>(k), &alpha, w, CUDA_R_16F, static_cast<int>(k), x.ptr, CUDA_R_16F,
                                 static_cast<int>(x.ld), &beta, y.ptr,
                                 y.type == ActType::F16 ? CUDA_R_16F : CUDA_R_32F, static_cast<int>(y.ld),
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace llmc::kernels::cuda
