// Scores for structured pruning: FFN channels and attention heads, by weight norm or by the norm
// of their contribution to the layer output on calibration activations.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "compress/prune.hpp"
#include "compress/quantizer.hpp"

namespace llmc::compress {

namespace {

double row_sq(const float* w, int64_t row, int64_t cols) {
  double s = 0;
  for (int64_t c = 0; c < cols; ++c) s += static_cast<double>(w[row * cols + c]) * w[row * cols + c];
  return s;
}

double col_sq(const float* w, int64_t rows, int64_t cols, int64_t col) {
  double s = 0;
  for (int64_t r = 0; r < rows; ++r) s += static_cast<double>(w[r * cols + col]) * w[r * cols + col];
  return s;
}

}  // namespace

std::vector<double> ffn_channel_scores(const float* gate, const float* up, const float* down, int64_t d_model,
                                       int64_t d_ff, const float* act_sqnorm, const std::string& name) {
  check(up && down && d_model > 0 && d_ff > 0, "'" + name + "': FFN scores need up and down weights");
  check_finite(up, d_ff * d_model, name, "up weight");
  check_finite(down, d_model * d_ff, name, "down weight");
  if (gate) check_finite(gate, d_ff * d_model, name, "gate weight");
  if (act_sqnorm) check_finite(act_sqnorm, d_ff, name, "activation norms");
  std::vector<double> s(d_ff);
  for (int64_t i = 0; i < d_ff; ++i) {
    const double down_sq = col_sq(down, d_model, d_ff, i);
    if (act_sqnorm) {
      check(act_sqnorm[i] >= 0, "'" + name + "': negative squared activation norm at channel " + std::to_string(i));
      s[i] = std::sqrt(static_cast<double>(act_sqnorm[i]) * down_sq);
    } else {
      s[i] = std::sqrt(row_sq(up, i, d_model) + (gate ? row_sq(gate, i, d_model) : 0.0) + down_sq);
    }
  }
  return s;
}

std::vector<double> head_scores(const float* wq, const float* wo, int64_t d_model, int64_t n_heads, int64_t head_dim,
                                const float* o_input, int64_t n_tokens, const std::string& name) {
  check(wq && wo && d_model > 0 && n_heads > 0 && head_dim > 0, "'" + name + "': head scores need q and o weights");
  const int64_t hd = n_heads * head_dim;
  check_finite(wq, hd * d_model, name, "q weight");
  check_finite(wo, d_model * hd, name, "o weight");
  std::vector<double> s(n_heads, 0.0);
  if (o_input) {
    check(n_tokens > 0, "'" + name + "': head scores with activations need tokens");
    check_finite(o_input, n_tokens * hd, name, "o_proj input");
    // ‖X_h·W_o,hᵀ‖²_F = Σ_t Σ_r (Σ_c x_tc·w_rc)² over the head's columns c
    for (int64_t h = 0; h < n_heads; ++h) {
      double acc = 0;
      for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t r = 0; r < d_model; ++r) {
          double dot = 0;
          for (int64_t c = h * head_dim; c < (h + 1) * head_dim; ++c)
            dot += static_cast<double>(o_input[t * hd + c]) * wo[r * hd + c];
          acc += dot * dot;
        }
      s[h] = std::sqrt(acc);
    }
    return s;
  }
  for (int64_t h = 0; h < n_heads; ++h) {
    double acc = 0;
    for (int64_t c = h * head_dim; c < (h + 1) * head_dim; ++c) acc += row_sq(wq, c, d_model) + col_sq(wo, d_model, hd, c);
    s[h] = std::sqrt(acc);
  }
  return s;
}

std::vector<int64_t> keep_top_k(const std::vector<double>& scores, int64_t k, const std::string& name) {
  const int64_t n = static_cast<int64_t>(scores.size());
  check(k >= 0 && k <= n, "'" + name + "': cannot keep " + std::to_string(k) + " of " + std::to_string(n));
  for (double v : scores) check(!std::isnan(v), "'" + name + "': NaN score");
  std::vector<int64_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  idx.resize(k);
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace llmc::compress
