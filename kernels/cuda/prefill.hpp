// Prefill (large m) path for quantized linears: dequantize the repacked weight to a dense f16
// scratch matrix, then one cuBLAS GEMM.
#pragma once
#include "kernels/cuda/dense_gemm.hpp"
#include "kernels/cuda/quant_gemv.hpp"

namespace llmc::kernels::cuda {

// out[n, k] = s·(q − z) rounded once to f16 (row-major, N×K, device), k counting the stored
// columns: for an act-order weight column k is input column w.perm()[k]. Reads the repacked
// weight once and writes 2·N·K bytes: ~113 MB → ~38 µs for 11008×4096 at 3 TB/s.
void dequantize_to_f16(const GpuQuantWeight& w, uint16_t* out, cudaStream_t stream);

// Halves of scratch the prefill linears below need for m rows of an N×K weight: the dequantized
// weight, and with act-order the input permuted into the stored column order after it (m·K).
int64_t quantized_prefill_scratch(int64_t n, int64_t k, bool act_order, int64_t m);

// y[m, n] = x[m, k] · Ŵ[n, k]ᵀ for any m ≥ 1 via dequantize_to_f16 into `scratch`
// (quantized_prefill_scratch halves) and linear_f16; an act-order weight multiplies x[:, perm]
// permuted into the scratch. Costs the dequantization plus the dense GEMM: worth it only when the
// GEMM is compute bound (m in the hundreds and up); for m ≤ 16 use gemv_quantized.
void linear_quantized_prefill(const GpuQuantWeight& w, const CublasHandle& h, const uint16_t* x, uint16_t* y,
                              int64_t m, uint16_t* scratch, cudaStream_t stream);

// An auxiliary stream and events for linear_quantized_prefill_pipelined (one per stream).
class PrefillPipeline {
 public:
  static constexpr int kChunks = 4;
  PrefillPipeline();
  ~PrefillPipeline();
  PrefillPipeline(const PrefillPipeline&) = delete;
  PrefillPipeline& operator=(const PrefillPipeline&) = delete;
  cudaStream_t aux() const { return aux_; }
  cudaEvent_t fork() const { return fork_; }
  cudaEvent_t done(int chunk) const { return done_[chunk]; }

 private:
  cudaStream_t aux_ = nullptr;
  cudaEvent_t fork_ = nullptr;
  cudaEvent_t done_[kChunks] = {};
};

// As linear_quantized_prefill, but the weight's rows go in kChunks chunks: chunk c + 1 is
// dequantized on the auxiliary stream while the GEMM of chunk c runs on `stream`, so only the
// first chunk's dequantization (~¼ of it) adds to the GEMM time. Same bytes and flops.
void linear_quantized_prefill_pipelined(const GpuQuantWeight& w, const CublasHandle& h, PrefillPipeline& pp,
                                        const uint16_t* x, uint16_t* y, int64_t m, uint16_t* scratch,
                                        cudaStream_t stream);

}  // namespace llmc::kernels::cuda
