// Dense f16 linear through cuBLAS with strided operands and an f32 or f16 output: what the CUDA
// session needs beyond dense_gemm.hpp's linear_f16 (views into fused buffers, f32 logits).
#pragma once
#include <cstdint>

#include "kernels/cuda/dense_gemm.hpp"
#include "kernels/cuda/transformer_ops.hpp"

namespace llmc::kernels::cuda {

// y[m, n] = x[m, k] · w[n, k]ᵀ: x an f16 view (row stride x.ld ≥ k), w f16 [n, k] contiguous,
// y an f16 or f32 view (row stride ≥ n); f32 accumulation (CUBLAS_COMPUTE_32F). Same bytes and
// flops as linear_f16: 2·(m·k + n·k) + |y|·m·n bytes, 2·m·n·k flops.
void linear_f16_ex(const CublasHandle& h, Act x, const uint16_t* w, Act y, int64_t m, int64_t n, int64_t k,
                   cudaStream_t stream);

}  // namespace llmc::kernels::cuda
