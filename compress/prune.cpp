#include "compress/prune.hpp"

#include <cmath>

#include "compress/prune_select.hpp"
#include "compress/quantizer.hpp"

namespace llmc::compress {

namespace {

void check_weight(const float* W, int64_t rows, int64_t cols, const SparsityConfig& cfg, const std::string& name) {
  check(rows > 0 && cols > 0, "'" + name + "': weight shape [" + std::to_string(rows) + ", " + std::to_string(cols) +
                                  "] is empty");
  check_sparsity(cfg, cols, name);
  check_finite(W, rows * cols, name, "weight");
}

// Prunes by score: per N:M group, per row, or over the whole layer.
PruneResult prune_by_score(const float* W, int64_t rows, int64_t cols, const std::vector<double>& score,
                           const SparsityConfig& cfg, bool per_row) {
  PruneResult res;
  res.mask.assign(rows * cols, 1);
  std::vector<PruneCandidate> cand;
  if (cfg.m > 0) {
    cand.resize(cfg.m);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c0 = 0; c0 < cols; c0 += cfg.m) {
        for (int i = 0; i < cfg.m; ++i) cand[i] = {score[r * cols + c0 + i], r * cols + c0 + i};
        prune_lowest(cand, cfg.m - cfg.n, res.mask.data());
      }
  } else if (per_row) {
    cand.resize(cols);
    const int64_t k = std::llround(cfg.ratio * static_cast<double>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) cand[c] = {score[r * cols + c], r * cols + c};
      prune_lowest(cand, k, res.mask.data());
    }
  } else {
    cand.resize(rows * cols);
    for (int64_t i = 0; i < rows * cols; ++i) cand[i] = {score[i], i};
    prune_lowest(cand, std::llround(cfg.ratio * static_cast<double>(rows * cols)), res.mask.data());
  }
  res.weight.resize(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) res.weight[i] = res.mask[i] ? W[i] : 0.0f;
  return res;
}

}  // namespace

void check_sparsity(const SparsityConfig& cfg, int64_t cols, const std::string& name) {
  if (cfg.m > 0 || cfg.n > 0) {
    check(cfg.m > 0 && cfg.n >= 1 && cfg.n < cfg.m, "'" + name + "': N:M sparsity needs 1 ≤ N < M, got " +
                                                        std::to_string(cfg.n) + ":" + std::to_string(cfg.m));
    check(cols % cfg.m == 0, "'" + name + "': N:M group size M = " + std::to_string(cfg.m) +
                                 " does not divide in_features " + std::to_string(cols));
    return;
  }
  check(cfg.ratio >= 0 && cfg.ratio < 1, "'" + name + "': sparsity ratio must be in [0, 1), got " +
                                             std::to_string(cfg.ratio));
}

PruneResult prune_magnitude(const float* W, int64_t rows, int64_t cols, const SparsityConfig& cfg,
                            const std::string& name) {
  check_weight(W, rows, cols, cfg, name);
  std::vector<double> score(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) score[i] = std::fabs(static_cast<double>(W[i]));
  return prune_by_score(W, rows, cols, score, cfg, cfg.per_row);
}

std::vector<float> input_column_norms(const float* X, int64_t n_tokens, int64_t cols, const std::string& name) {
  check(n_tokens > 0 && cols > 0, "'" + name + "': input_column_norms needs a non-empty activation matrix");
  check_finite(X, n_tokens * cols, name, "activations");
  std::vector<double> ss(cols, 0.0);
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t j = 0; j < cols; ++j) ss[j] += static_cast<double>(X[t * cols + j]) * X[t * cols + j];
  std::vector<float> out(cols);
  for (int64_t j = 0; j < cols; ++j) out[j] = static_cast<float>(std::sqrt(ss[j]));
  return out;
}

PruneResult prune_wanda(const float* W, int64_t rows, int64_t cols, const float* input_norms,
                        const SparsityConfig& cfg, const std::string& name) {
  check_weight(W, rows, cols, cfg, name);
  check_finite(input_norms, cols, name, "input norms");
  std::vector<double> score(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      score[r * cols + c] = std::fabs(static_cast<double>(W[r * cols + c])) * std::fabs(input_norms[c]);
  return prune_by_score(W, rows, cols, score, cfg, true);
}

}  // namespace llmc::compress
