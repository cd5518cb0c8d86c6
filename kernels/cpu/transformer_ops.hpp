// CPU twins of the GPU transformer ops that kernels/cpu/dense.hpp does not already cover:
// embedding gather, residual add, log-softmax and greedy argmax over f32 rows.
#pragma once
#include <cstdint>

namespace llmc::kernels::cpu {

// out[r, :] = table[ids[r], :] for r < rows (table [vocab, d]); ids must lie in [0, vocab).
void embedding_gather(const float* table, int64_t d, const int32_t* ids, float* out, int64_t rows);

// out = a + b over n elements.
void add(const float* a, const float* b, float* out, int64_t n);

// out[r, :] = x[r, :] − log Σ exp(x[r, :]), the sum in double after subtracting the row max.
void log_softmax_rows(const float* x, float* out, int64_t rows, int64_t n);

// ids[r] = the first index of the largest value of row r (std::max_element's choice).
void argmax_rows(const float* x, int32_t* ids, int64_t rows, int64_t n);

}  // namespace llmc::kernels::cpu
