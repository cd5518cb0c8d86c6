#include "compress/smoothquant.hpp"

#include <algorithm>
#include <cmath>

#include "compress/rtn.hpp"

namespace llmc::compress {

std::vector<float> channel_absmax(const float* X, int64_t n_tokens, int64_t cols, const std::string& name) {
  check(n_tokens > 0 && cols > 0, "'" + name + "': channel_absmax needs a non-empty activation matrix");
  check_finite(X, n_tokens * cols, name, "activations");
  std::vector<float> m(cols, 0.0f);
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t j = 0; j < cols; ++j) m[j] = std::max(m[j], std::fabs(X[t * cols + j]));
  return m;
}

std::vector<float> smoothquant_scales(const float* act_absmax, int64_t cols, const std::vector<SmoothLinear>& linears,
                                      double alpha) {
  check(!linears.empty(), "SmoothQuant: no linear layers given");
  const std::string& first = linears[0].name;
  check(alpha >= 0 && alpha <= 1, "'" + first + "': SmoothQuant migration strength α must be in [0, 1], got " +
                                      std::to_string(alpha));
  check(cols > 0, "'" + first + "': in_features must be positive");
  check_finite(act_absmax, cols, first, "activation max");
  std::vector<double> wmax(cols, 0.0);
  for (const SmoothLinear& L : linears) {
    check(L.W && L.rows > 0, "'" + L.name + "': empty weight");
    check_finite(L.W, L.rows * cols, L.name, "weight");
    for (int64_t r = 0; r < L.rows; ++r)
      for (int64_t j = 0; j < cols; ++j) wmax[j] = std::max(wmax[j], std::fabs(static_cast<double>(L.W[r * cols + j])));
  }
  std::vector<float> s(cols);
  for (int64_t j = 0; j < cols; ++j) {
    check(act_absmax[j] >= 0, "'" + first + "': activation max of channel " + std::to_string(j) + " is negative");
    const double a = std::pow(static_cast<double>(act_absmax[j]), alpha);
    const double w = std::pow(std::max(wmax[j], 1e-5), 1.0 - alpha);
    s[j] = static_cast<float>(std::max(a / w, 1e-5));
  }
  return s;
}

void apply_smoothing(float* W, int64_t rows, int64_t cols, const std::vector<float>& s) {
  check(static_cast<int64_t>(s.size()) == cols, "apply_smoothing: " + std::to_string(s.size()) +
                                                    " scales for " + std::to_string(cols) + " input channels");
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) W[r * cols + j] *= s[j];
}

float static_activation_scale(float observed_absmax, const std::string& name) {
  check(std::isfinite(observed_absmax) && observed_absmax >= 0,
        "'" + name + "': observed activation max must be finite and ≥ 0, got " + std::to_string(observed_absmax));
  return observed_absmax > 0 ? observed_absmax / 127.0f : 1.0f;
}

QuantizedWeight quantize_w8_per_channel(const float* W, int64_t rows, int64_t cols, const std::string& name) {
  QuantConfig cfg;
  cfg.bits = 8;
  cfg.group_size = 0;
  cfg.symmetric = true;
  return quantize_rtn(W, rows, cols, cfg, name);
}

}  // namespace llmc::compress
