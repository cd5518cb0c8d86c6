// SparseGPT (Frantar & Alistarh 2023, Algorithm 1) with adaptive mask selection and N:M.
#include <algorithm>
#include <cmath>

#include "compress/hessian.hpp"
#include "compress/prune.hpp"
#include "compress/prune_select.hpp"
#include "compress/quantizer.hpp"

namespace llmc::compress {

namespace {

using RowMatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

}  // namespace

PruneResult prune_sparsegpt(const float* W, int64_t rows, int64_t cols, const Eigen::MatrixXd& H,
                            const SparseGptConfig& cfg, const std::string& name) {
  const SparsityConfig& sp = cfg.sparsity;
  check(rows > 0 && cols > 0, "'" + name + "': weight shape [" + std::to_string(rows) + ", " + std::to_string(cols) +
                                  "] is empty");
  check_sparsity(sp, cols, name);
  check(cfg.block_size > 0, "'" + name + "': SparseGPT block size must be positive");
  check(cfg.percdamp >= 0 && cfg.max_damp_retries >= 0, "'" + name + "': percdamp and max_damp_retries must be ≥ 0");
  check_finite(W, rows * cols, name, "weight");
  check_hessian(H, cols, name);

  Eigen::MatrixXd W0 = Eigen::Map<const RowMatF>(W, rows, cols).cast<double>();  // column-major
  Eigen::MatrixXd Hd = H;
  const std::vector<char> dead = fix_dead_columns(Hd);
  for (int64_t j = 0; j < cols; ++j)
    if (dead[j]) W0.col(j).setZero();
  const DampedFactor fac = damped_ul_cholesky(std::move(Hd), cfg.percdamp, cfg.max_damp_retries);
  if (!fac.ok) {
    // H_jj = 2‖X_j‖²/n, so √H_jj ranks weights exactly as Wanda's ‖X_j‖₂ does
    std::vector<float> norms(cols);
    for (int64_t j = 0; j < cols; ++j) norms[j] = static_cast<float>(std::sqrt(std::max(H(j, j), 0.0)));
    PruneResult r = prune_wanda(W, rows, cols, norms.data(), sp, name);
    r.fell_back = true;
    r.warning = "'" + name + "': SparseGPT could not factor the damped Hessian after " +
                std::to_string(fac.attempts) + " attempt(s); pruned with Wanda scores from diag(H) instead";
    return r;
  }
  const Eigen::MatrixXd& V = fac.V;
  const Eigen::MatrixXd Vs = column_scaled(V);

  PruneResult res;
  if (fac.attempts > 1)
    res.warning = "'" + name + "': Hessian needed damping raised to " + std::to_string(fac.damp) + " (" +
                  std::to_string(fac.attempts) + " attempts)";
  res.mask.assign(rows * cols, 1);
  res.weight.assign(rows * cols, 0.0f);
  // N:M groups must not straddle a block, so the block is a multiple of m
  const int64_t B = sp.m > 0 && cfg.block_size % sp.m != 0 ? sp.m * std::max<int64_t>(1, cfg.block_size / sp.m)
                                                          : cfg.block_size;
  std::vector<PruneCandidate> cand;
  Eigen::MatrixXd C = W0;  // running values, see hessian.hpp
  Eigen::MatrixXd C1, R1, Wcur;
  Eigen::VectorXd res_col(rows);
  for (int64_t i1 = 0; i1 < cols; i1 += B) {
    const int64_t i2 = std::min(i1 + B, cols), count = i2 - i1;
    C1 = C.middleCols(i1, count);
    R1.resize(rows, count);
    // the reference's score w² / U_jj² with U = V⁻¹, i.e. (w·V_jj)², on the current weights
    auto score = [&](int64_t r, int64_t i) {
      const double v = Wcur(r, i) * V(i1 + i, i1 + i);
      return v * v;
    };
    if (sp.m == 0) {
      // adaptive mask selection (§3.2): the block's mask from the weights as they are now, with a
      // cumulative count so that the layer total is exactly round(ratio·numel)
      Wcur = current_weights(W0.middleCols(i1, count), C1, V, i1);
      if (sp.per_row) {
        cand.resize(count);
        const int64_t k = std::llround(sp.ratio * i2) - std::llround(sp.ratio * i1);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t i = 0; i < count; ++i) cand[i] = {score(r, i), r * cols + i1 + i};
          prune_lowest(cand, k, res.mask.data());
        }
      } else {
        cand.resize(rows * count);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t i = 0; i < count; ++i) cand[r * count + i] = {score(r, i), r * cols + i1 + i};
        const int64_t k = std::llround(sp.ratio * static_cast<double>(rows * i2)) -
                          std::llround(sp.ratio * static_cast<double>(rows * i1));
        prune_lowest(cand, k, res.mask.data());
      }
    }
    for (int64_t i = 0; i < count; ++i) {
      const int64_t j = i1 + i;
      if (sp.m > 0 && i % sp.m == 0) {
        Wcur.resize(rows, count);
        Wcur.middleCols(i, sp.m) = current_weights(W0.middleCols(j, sp.m), C1.middleCols(i, sp.m), V, j);
        cand.resize(sp.m);
        for (int64_t r = 0; r < rows; ++r) {
          for (int c = 0; c < sp.m; ++c) cand[c] = {score(r, i + c), r * cols + j + c};
          prune_lowest(cand, sp.m - sp.n, res.mask.data());
        }
      }
      double sq = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const double w = C1(r, i);
        const bool keep = res.mask[r * cols + j];
        res.weight[r * cols + j] = keep ? static_cast<float>(w) : 0.0f;
        if (!keep) sq += w * w;
        res_col[r] = W0(r, j) - (keep ? w : 0.0);  // residual against the original weight
      }
      res.loss += 0.5 * sq * V(j, j) * V(j, j);
      R1.col(i) = res_col;
      const int64_t rest = count - i - 1;
      if (rest > 0) C1.rightCols(rest).noalias() += res_col * Vs.row(j).segment(j + 1, rest);
    }
    if (i2 < cols) C.rightCols(cols - i2).noalias() += R1 * Vs.block(i1, i2, count, cols - i2);
  }
  return res;
}

}  // namespace llmc::compress
