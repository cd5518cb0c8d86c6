// Quantized CPU kernels: dequantizing linear layers over INT4/INT8 weights (QuantizedWeight) with
// f32 activations, and the int8×int8→int32 GEMM plus activation quantizers behind W8A8.
#pragma once
#include <cstdint>

#include "runtime/ir/quantized.hpp"

namespace llmc::kernels::cpu {

// y[m, n] = x[m, k] · Ŵ[n, k]ᵀ (+ bias[n]) with Ŵ = dequantize(w), n = w.rows, k = w.cols.
// Dequantizes on the fly: one group at a time for m = 1 (s·(Σ x·q − z·Σ x) per group), and tiles
// of 32 rows for m > 1, so no f32 copy of W exists. w must have passed validate(); any group
// length works, including a shorter last group (cols not a multiple of the group size).
// Moves n·k·bits/8 + m·(k + n)·4 bytes; does 2·m·n·k flops (GEMV is bandwidth bound: at INT4
// it reads an eighth of the f32 weight bytes).
void linear_quantized(const float* x, const QuantizedWeight& w, const float* bias, float* y, int64_t m);

// c[m, n] = a[m, k] · b[n, k]ᵀ, exact int32 accumulation (|c| ≤ k·128² must fit: k < 131072).
// Moves (m + n)·k + 4·m·n bytes; does 2·m·n·k integer ops.
void gemm_s8s8s32(const int8_t* a, const int8_t* b, int32_t* c, int64_t m, int64_t n, int64_t k);

// Symmetric int8 activation quantization onto [−127, 127], rounding half to even.
// Per token (dynamic): scales[t] = max_j |x[t, j]| / 127 (1 for an all-zero row).
void quantize_per_token_s8(const float* x, int8_t* q, float* scales, int64_t m, int64_t k);
// Per tensor (static, from a calibration observer): q = clamp(round(x / scale), −127, 127).
void quantize_static_s8(const float* x, int8_t* q, float scale, int64_t n);

// W8A8 linear: x quantized to int8 (per token when act_scale is null, else with that static
// per-tensor scale), w INT8 symmetric per channel; y = s_x[t]·s_w[j]·(q_x · q_wᵀ)[t, j] (+ bias).
void linear_w8a8(const float* x, const QuantizedWeight& w, const float* bias, float* y, int64_t m,
                 const float* act_scale);

}  // namespace llmc::kernels::cpu
