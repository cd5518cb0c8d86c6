// SmoothQuant (Xiao et al. 2022): migrate activation outliers into the weights with per-channel
// scales s_j = max|X_j|^α / max|W_j|^(1−α) (§4, Eq. 4), plus the W8A8 helpers that follow it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "compress/quantizer.hpp"

namespace llmc::compress {

// One linear fed by the smoothed activations: W [rows, cols] row-major f32.
struct SmoothLinear {
  const float* W = nullptr;
  int64_t rows = 0;
  std::string name;
};

// max_t |X[t, j]| per input channel of X [n_tokens, cols] (what a min-max observer records).
std::vector<float> channel_absmax(const float* X, int64_t n_tokens, int64_t cols, const std::string& name);

// s_j = clamp(a_j^α / w_j^(1−α), min 1e-5) with a_j = act_absmax[j] and w_j = max over every
// linear's column j of |W| (clamped to ≥ 1e-5), as the reference smooth_ln_fcs. Activations then
// become X/s (fold into the previous norm or linear) and weights W·diag(s) (apply_smoothing).
// Throws Error naming the linear when α ∉ [0, 1] or inputs are not finite.
std::vector<float> smoothquant_scales(const float* act_absmax, int64_t cols, const std::vector<SmoothLinear>& linears,
                                      double alpha);

// W[r, j] *= s[j] in place.
void apply_smoothing(float* W, int64_t rows, int64_t cols, const std::vector<float>& s);

// Static per-tensor activation scale for int8 from an observed max |x|: absmax / 127 (1 if zero).
float static_activation_scale(float observed_absmax, const std::string& name);

// W8A8's weight: INT8, symmetric, per output channel (RTN).
QuantizedWeight quantize_w8_per_channel(const float* W, int64_t rows, int64_t cols, const std::string& name);

}  // namespace llmc::compress
