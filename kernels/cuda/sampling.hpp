// Sampling support on the GPU: row-wise log-softmax and greedy argmax over f32 logits, and the
// position counter step that lets a captured decode graph feed itself (argmax → next input id).
// CPU twins: kernels::cpu::log_softmax_rows, argmax_rows (transformer_ops.hpp). Each reads the
// logits once (4·V bytes per row: 128 KB at V = 32000, ~0.1 µs of bandwidth; launch-bound).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace llmc::kernels::cuda {

// out[r, :] = x[r, :] − log Σ exp(x[r, :]) (f32, max subtracted first). x, out: [rows, n], row stride ld.
void log_softmax(const float* x, float* out, int64_t rows, int64_t n, int64_t ld, cudaStream_t stream);

// ids[r] = argmax_j x[r, j] (the lowest j among equal maxima, as std::max_element; NaN never wins).
// With history non-null, also history[r·history_ld + *past] = ids[r] (a decode loop's record).
void argmax(const float* x, int64_t rows, int64_t n, int64_t ld, int32_t* ids, int32_t* history,
            int64_t history_ld, const int32_t* past, cudaStream_t stream);

// *past += by (one thread; ordered after the kernels before it in the stream).
void advance_position(int32_t* past, int32_t by, cudaStream_t stream);

}  // namespace llmc::kernels::cuda
