#include "compress/gptq.hpp"

#include <algorithm>
#include <numeric>
#include <vector>

#include "compress/rtn.hpp"

namespace llmc::compress {

namespace {

using RowMatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Lazy block width such that a group that begins inside a block also ends inside it: then its
// current weights are all in the block copy when the sweep enters it (see gptq.hpp).
int64_t effective_block(int64_t block, int64_t gl, int64_t cols) {
  if (gl >= cols || block % gl == 0 || gl % block == 0) return block;
  return gl * std::max<int64_t>(1, block / gl);
}

GptqResult rtn_fallback(const float* W, int64_t rows, int64_t cols, const GptqConfig& cfg, const std::string& name,
                        const DampedFactor& inv) {
  GptqResult r;
  std::vector<float> Wm;
  if (cfg.mask) {  // pruned positions at zero, where RTN keeps them (zero is on every grid)
    Wm.assign(W, W + rows * cols);
    for (int64_t i = 0; i < rows * cols; ++i)
      if (!cfg.mask[i]) Wm[i] = 0.0f;
    W = Wm.data();
  }
  r.weight = quantize_rtn(W, rows, cols, cfg.quant, name);
  r.fell_back_to_rtn = true;
  r.damp = inv.damp;
  r.warning = "'" + name + "': GPTQ could not factor the damped Hessian after " + std::to_string(inv.attempts) +
              " attempt(s) (last damping " + std::to_string(inv.damp) + "); used round-to-nearest instead";
  Tensor deq = dequantize(r.weight, name);
  const float* d = deq.data<float>();
  for (int64_t i = 0; i < rows * cols; ++i) r.loss += 0.5 * (static_cast<double>(W[i]) - d[i]) * (W[i] - d[i]);
  return r;
}

}  // namespace

GptqResult gptq_quantize(const float* W, int64_t rows, int64_t cols, const Eigen::MatrixXd& H, const GptqConfig& cfg,
                         const std::string& name) {
  const QuantConfig& qc = cfg.quant;
  check_quant_config(qc, cols, name);
  check(rows > 0, "'" + name + "': out_features must be positive, got " + std::to_string(rows));
  check(cfg.block_size > 0, "'" + name + "': GPTQ block size must be positive");
  check(cfg.percdamp >= 0 && cfg.max_damp_retries >= 0, "'" + name + "': percdamp and max_damp_retries must be ≥ 0");
  check_finite(W, rows * cols, name, "weight");
  check_f16_range(W, rows * cols, qc, name);
  check_hessian(H, cols, name);

  const int64_t gl = group_len(qc, cols), ng = group_count(qc, cols);
  auto len_of = [&](int64_t j0) { return std::min(gl, cols - j0); };  // a group from column j0; the last may be short
  Eigen::MatrixXd Wd = Eigen::Map<const RowMatF>(W, rows, cols).cast<double>();  // column-major: columns contiguous
  Eigen::MatrixXd Hd = H;
  const std::vector<char> dead = fix_dead_columns(Hd);
  for (int64_t j = 0; j < cols; ++j)
    if (dead[j]) Wd.col(j).setZero();

  const uint8_t* mask = cfg.mask;
  auto pruned = [&](int64_t r, int64_t c) { return mask && !mask[r * cols + c]; };  // c: original column

  // static groups: every grid from the original weight (its kept part), before any error is propagated
  const bool static_grids = cfg.static_groups && gl < cols;
  std::vector<GroupGrid> grids(rows * ng);
  if (static_grids) {
    Eigen::MatrixXd Wk = Wd;
    for (int64_t r = 0; r < rows && mask; ++r)
      for (int64_t c = 0; c < cols; ++c)
        if (pruned(r, c)) Wk(r, c) = 0;
    for (int64_t g = 0; g < ng; ++g)
      for (int64_t r = 0; r < rows; ++r) grids[r * ng + g] = fit_group(&Wk(r, g * gl), len_of(g * gl), rows, qc);
  }

  // act-order: descending H_jj, ties in column order
  std::vector<int64_t> perm(cols);
  std::iota(perm.begin(), perm.end(), 0);
  if (cfg.act_order)
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return Hd(a, a) > Hd(b, b); });
  const Eigen::MatrixXd W0 = cfg.act_order ? Eigen::MatrixXd(Wd(Eigen::all, perm)) : std::move(Wd);
  if (cfg.act_order) Hd = Eigen::MatrixXd(Hd(perm, perm));

  const DampedFactor fac = damped_ul_cholesky(std::move(Hd), cfg.percdamp, cfg.max_damp_retries);
  if (!fac.ok) return rtn_fallback(W, rows, cols, cfg, name, fac);
  const Eigen::MatrixXd& V = fac.V;
  const Eigen::MatrixXd Vs = column_scaled(V);

  GptqResult res;
  res.damp = fac.damp;
  if (fac.attempts > 1)
    res.warning = "'" + name + "': Hessian needed damping raised to " + std::to_string(fac.damp) + " (" +
                  std::to_string(fac.attempts) + " attempts)";
  std::vector<int16_t> codes(rows * cols);
  std::vector<GroupGrid> cur(rows);  // grid of the group the sweep is in, per row
  const int64_t B = effective_block(cfg.block_size, gl, cols);
  Eigen::MatrixXd C = W0;  // running values (hessian.hpp): column j holds GPTQ's updated w_j when reached
  Eigen::MatrixXd C1, R1, Wg;
  Eigen::VectorXd res_col(rows);
  for (int64_t i1 = 0; i1 < cols; i1 += B) {
    const int64_t i2 = std::min(i1 + B, cols), count = i2 - i1;
    C1 = C.middleCols(i1, count);
    R1.resize(rows, count);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t j = i1 + i;
      if (static_grids) {
        for (int64_t r = 0; r < rows; ++r) cur[r] = grids[r * ng + perm[j] / gl];
      } else if (j % gl == 0) {
        // entering a group: fit on its weights as GPTQ's updates left them; at a block start C is
        // current for every later column, inside a block the group lies in C1
        const int64_t len = len_of(j);
        Wg = i == 0 ? current_weights(W0.middleCols(j, len), C.middleCols(j, len), V, j)
                    : current_weights(W0.middleCols(j, len), C1.middleCols(i, len), V, j);
        // pruned weights become 0 whatever their current value: the grid serves the kept ones
        // (0 lies in every fitted range, so this is fitting on the kept weights alone)
        for (int64_t c = 0; c < len && mask; ++c)
          for (int64_t r = 0; r < rows; ++r)
            if (pruned(r, perm[j + c])) Wg(r, c) = 0;
        for (int64_t r = 0; r < rows; ++r) {
          cur[r] = fit_group(&Wg(r, 0), len, rows, qc);
          grids[r * ng + j / gl] = cur[r];
        }
      }
      double sq = 0;
      for (int64_t r = 0; r < rows; ++r) {
        // a pruned weight takes the code of exact zero: s·(z − z) = 0
        const double w = C1(r, i);
        const int q = pruned(r, perm[j]) ? cur[r].zero : quantize_value(w, cur[r], qc);
        const double wq = dequantize_value(q, cur[r]);
        codes[r * cols + perm[j]] = static_cast<int16_t>(q);
        sq += (w - wq) * (w - wq);
        res_col[r] = W0(r, j) - wq;  // residual against the original weight drives the running values
      }
      res.loss += 0.5 * sq * V(j, j) * V(j, j);
      R1.col(i) = res_col;
      const int64_t rest = count - i - 1;
      if (rest > 0) C1.rightCols(rest).noalias() += res_col * Vs.row(j).segment(j + 1, rest);
    }
    if (i2 < cols) C.rightCols(cols - i2).noalias() += R1 * Vs.block(i1, i2, count, cols - i2);
  }

  res.weight = pack_weight(rows, cols, qc, codes.data(), grids.data());
  if (cfg.act_order && !static_grids && gl < cols) {
    res.weight.g_idx.resize(cols);
    for (int64_t j = 0; j < cols; ++j) res.weight.g_idx[perm[j]] = static_cast<int32_t>(j / gl);
  }
  return res;
}

}  // namespace llmc::compress
