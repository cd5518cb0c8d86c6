#include "compress/awq.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <Eigen/Core>

namespace llmc::compress {

namespace {

using RowMatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

RowMatF gather_rows(const float* X, int64_t cols, const std::vector<int64_t>& idx) {
  RowMatF out(static_cast<Eigen::Index>(idx.size()), cols);
  for (size_t i = 0; i < idx.size(); ++i) out.row(i) = Eigen::Map<const Eigen::RowVectorXf>(X + idx[i] * cols, cols);
  return out;
}

// Q(W·s)/s − W for one linear, as f32 (the weight error the scale search measures).
RowMatF scaled_quant_error(const AwqLinear& L, int64_t cols, const std::vector<float>& s, const QuantConfig& qc) {
  const int64_t gl = group_len(qc, cols), ng = group_count(qc, cols);
  RowMatF D(L.rows, cols);
#pragma omp parallel
  {
    std::vector<double> buf(gl);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < L.rows; ++r)
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t c0 = g * gl, len = std::min(gl, cols - c0);  // the last group may be short
        for (int64_t i = 0; i < len; ++i) buf[i] = static_cast<double>(L.W[r * cols + c0 + i]) * s[c0 + i];
        const GroupGrid grid = fit_group(buf.data(), len, 1, qc);
        for (int64_t i = 0; i < len; ++i) {
          const double wq = dequantize_value(quantize_value(buf[i], grid, qc), grid) / s[c0 + i];
          D(r, c0 + i) = static_cast<float>(wq - L.W[r * cols + c0 + i]);
        }
      }
  }
  return D;
}

}  // namespace

std::vector<int64_t> sample_tokens(int64_t n, int64_t k) {
  std::vector<int64_t> idx;
  const int64_t stride = std::max<int64_t>(1, k > 0 ? n / k : 1);
  for (int64_t t = 0; t < n && static_cast<int64_t>(idx.size()) < k; t += stride) idx.push_back(t);
  return idx;
}

AwqResult awq_quantize(const std::vector<AwqLinear>& linears, int64_t cols, const float* X, int64_t n_tokens,
                       const AwqConfig& cfg) {
  check(!linears.empty(), "AWQ: no linear layers given");
  const std::string& first = linears[0].name;
  QuantConfig qc = cfg.quant;
  qc.clip_search = false;
  check_quant_config(qc, cols, first);
  check(cfg.n_grid > 0 && cfg.search_tokens > 0 && cfg.clip_tokens > 0 && cfg.clip_grid > 0 &&
            cfg.clip_max_shrink > 0 && cfg.clip_max_shrink < 1,
        "'" + first + "': AWQ needs positive n_grid, search_tokens, clip_tokens, clip_grid and clip_max_shrink in (0, 1)");
  check(n_tokens > 0, "'" + first + "': AWQ needs calibration activations (got 0 tokens)");
  int64_t total_rows = 0;
  for (const AwqLinear& L : linears) {
    check(L.W && L.rows > 0, "'" + L.name + "': empty weight");
    check_finite(L.W, L.rows * cols, L.name, "weight");
    check_f16_range(L.W, L.rows * cols, qc, L.name);
    total_rows += L.rows;
  }
  check_finite(X, n_tokens * cols, first, "input activations");

  // s_x: mean |x_j| over every calibration token (§3.2)
  std::vector<double> x_mean(cols, 0.0);
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t j = 0; j < cols; ++j) x_mean[j] += std::fabs(static_cast<double>(X[t * cols + j]));
  for (double& v : x_mean) v /= static_cast<double>(n_tokens);

  const RowMatF Xs = gather_rows(X, cols, sample_tokens(n_tokens, cfg.search_tokens));
  const double denom = static_cast<double>(Xs.rows()) * static_cast<double>(total_rows);

  AwqResult res;
  double best = std::numeric_limits<double>::infinity();
  std::vector<float> s(cols);
  for (int k = 0; k < cfg.n_grid; ++k) {
    const double alpha = static_cast<double>(k) / cfg.n_grid;
    double smax = 0, smin = std::numeric_limits<double>::infinity();
    std::vector<double> sd(cols);
    for (int64_t j = 0; j < cols; ++j) {
      sd[j] = std::max(std::pow(x_mean[j], alpha), 1e-4);
      smax = std::max(smax, sd[j]);
      smin = std::min(smin, sd[j]);
    }
    const double norm = std::sqrt(smax * smin);
    for (int64_t j = 0; j < cols; ++j) s[j] = static_cast<float>(sd[j] / norm);
    // a scale set that pushes W·s beyond f16 scales cannot be stored: skip it (α = 0 always fits)
    bool fits = true;
    for (const AwqLinear& L : linears)
      for (int64_t i = 0; i < L.rows * cols && fits; ++i)
        fits = scale_fits_f16(std::fabs(static_cast<double>(L.W[i]) * s[i % cols]), qc);
    if (!fits) continue;
    double loss = 0;
    for (const AwqLinear& L : linears) {
      const RowMatF D = scaled_quant_error(L, cols, s, qc);
      const RowMatF E = Xs * D.transpose();
      loss += E.cast<double>().squaredNorm();
    }
    loss /= denom;
    if (k == 0) res.loss_rtn = loss;
    if (loss < best) {
      best = loss;
      res.alpha = alpha;
      res.scales = s;
    }
  }
  res.loss = best;
  s = res.scales;

  // clip search on W·s against inputs X/s: per group, the shrink of max|w| minimising the mean
  // squared partial output error (the reference's auto_clip_layer), via the group Gram matrix
  const int64_t gl = group_len(qc, cols), ng = group_count(qc, cols);
  auto len_of = [&](int64_t g) { return std::min(gl, cols - g * gl); };  // the last group may be short
  const std::vector<int64_t> cidx = sample_tokens(n_tokens, cfg.clip_tokens);
  RowMatD Xc(static_cast<Eigen::Index>(cidx.size()), cols);
  for (size_t i = 0; i < cidx.size(); ++i)
    for (int64_t j = 0; j < cols; ++j) Xc(i, j) = static_cast<double>(X[cidx[i] * cols + j]) / s[j];
  const double nc = static_cast<double>(Xc.rows());
  const bool use_gram = std::min(gl, cols) <= Xc.rows();
  std::vector<Eigen::MatrixXd> gram(use_gram ? ng : 0);
  for (int64_t g = 0; g < static_cast<int64_t>(gram.size()); ++g) {
    auto Xg = Xc.middleCols(g * gl, len_of(g));
    gram[g] = (Xg.transpose() * Xg) / nc;
  }
  const int steps = cfg.clip ? static_cast<int>(std::floor(cfg.clip_max_shrink * cfg.clip_grid + 1e-9)) : 0;

  for (const AwqLinear& L : linears) {
    const int64_t rows = L.rows;
    RowMatD Ws(rows, cols);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j) Ws(r, j) = static_cast<double>(L.W[r * cols + j]) * s[j];
    std::vector<double> bound(rows * ng);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < ng; ++g) bound[r * ng + g] = Ws.row(r).segment(g * gl, len_of(g)).cwiseAbs().maxCoeff();
    if (steps > 0) {
      // rows are independent: one parallel region, each thread sweeping its rows' groups and shrinks
#pragma omp parallel
      {
        Eigen::RowVectorXd cur, d, tmp;
        Eigen::VectorXd out(Xc.rows());
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t g = 0; g < ng; ++g) {
            const int64_t len = len_of(g);
            const auto w = Ws.row(r).segment(g * gl, len);
            d.resize(len);
            const double org = bound[r * ng + g];
            double best_err = std::numeric_limits<double>::infinity();
            for (int i = 0; i < steps; ++i) {
              const double p = 1.0 - static_cast<double>(i) / cfg.clip_grid, mv = org * p;
              cur = w.cwiseMax(-mv).cwiseMin(mv);
              const GroupGrid grid = fit_group(cur.data(), len, 1, qc);
              for (int64_t c = 0; c < len; ++c) d[c] = dequantize_value(quantize_value(cur[c], grid, qc), grid) - w[c];
              double err;
              if (use_gram) {
                tmp.noalias() = d * gram[g];
                err = tmp.dot(d);
              } else {
                out.noalias() = Xc.middleCols(g * gl, len) * d.transpose();
                err = out.squaredNorm() / nc;
              }
              if (err < best_err) {
                best_err = err;
                bound[r * ng + g] = mv;
              }
            }
          }
      }
    }
    std::vector<int16_t> codes(rows * cols);
    std::vector<GroupGrid> grids(rows * ng);
    std::vector<float> clip_out(rows * ng);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < ng; ++g) {
        const double mv = bound[r * ng + g];
        const int64_t len = len_of(g);
        Eigen::RowVectorXd cur = Ws.row(r).segment(g * gl, len).cwiseMax(-mv).cwiseMin(mv);
        const GroupGrid grid = fit_group(cur.data(), len, 1, qc);
        grids[r * ng + g] = grid;
        clip_out[r * ng + g] = static_cast<float>(mv);
        for (int64_t c = 0; c < len; ++c)
          codes[r * cols + g * gl + c] = static_cast<int16_t>(quantize_value(cur[c], grid, qc));
      }
    res.weights.push_back(pack_weight(rows, cols, qc, codes.data(), grids.data()));
    res.clip_max.push_back(std::move(clip_out));
  }
  return res;
}

}  // namespace llmc::compress
