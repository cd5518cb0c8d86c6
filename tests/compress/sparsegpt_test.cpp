// SparseGPT against an unblocked float64 implementation written here from Algorithm 1 (OBS
// updates through the upper Cholesky factor U of H⁻¹, masks chosen by w²/U_jj² at the start of
// each block of Bs columns, or per group of M for N:M), plus its promised properties.
#include <doctest/doctest.h>

#include <numeric>

#include "compress/hessian.hpp"
#include "compress/prune.hpp"
#include "compress_test_util.hpp"

using namespace llmc;
using namespace llmc::compress;
using namespace llmc::test;

namespace {

Eigen::MatrixXd to_eigen(const Mat& H, int64_t n) {
  Eigen::MatrixXd M(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) M(i, j) = H[i * n + j];
  return M;
}

struct RefSparse {
  Mat w;
  std::vector<uint8_t> mask;
  double loss = 0;
};

// prunes the k lowest of `pos` by score, later position first among equals
void ref_select(const std::vector<double>& score, std::vector<int64_t> pos, int64_t k, std::vector<uint8_t>& mask) {
  std::sort(pos.begin(), pos.end(), [&](int64_t a, int64_t b) { return score[a] != score[b] ? score[a] < score[b] : a > b; });
  for (int64_t i = 0; i < k; ++i) mask[pos[i]] = 0;
}

RefSparse ref_sparsegpt(const std::vector<float>& Wf, int64_t rows, int64_t cols, Mat H, const SparseGptConfig& cfg) {
  const SparsityConfig& sp = cfg.sparsity;
  Mat W(Wf.begin(), Wf.end());
  for (int64_t j = 0; j < cols; ++j)
    if (H[j * cols + j] == 0) {
      H[j * cols + j] = 1;
      for (int64_t r = 0; r < rows; ++r) W[r * cols + j] = 0;
    }
  const Mat U = ref_inverse_upper(H, cols, cfg.percdamp);
  RefSparse out{Mat(rows * cols, 0.0), std::vector<uint8_t>(rows * cols, 1), 0};
  std::vector<double> score(rows * cols);
  auto refresh = [&](int64_t c0, int64_t c1) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = c0; c < c1; ++c) score[r * cols + c] = W[r * cols + c] * W[r * cols + c] / (U[c * cols + c] * U[c * cols + c]);
  };
  for (int64_t j = 0; j < cols; ++j) {
    if (sp.m == 0 && j % cfg.block_size == 0) {
      const int64_t j2 = std::min(j + cfg.block_size, cols);
      refresh(j, j2);
      if (sp.per_row) {
        const int64_t k = static_cast<int64_t>(std::floor(sp.ratio * j2 + 0.5)) - static_cast<int64_t>(std::floor(sp.ratio * j + 0.5));
        for (int64_t r = 0; r < rows; ++r) {
          std::vector<int64_t> pos(j2 - j);
          std::iota(pos.begin(), pos.end(), r * cols + j);
          ref_select(score, pos, k, out.mask);
        }
      } else {
        const int64_t k = static_cast<int64_t>(std::floor(sp.ratio * rows * j2 + 0.5)) -
                          static_cast<int64_t>(std::floor(sp.ratio * rows * j + 0.5));
        std::vector<int64_t> pos;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = j; c < j2; ++c) pos.push_back(r * cols + c);
        ref_select(score, pos, k, out.mask);
      }
    }
    if (sp.m > 0 && j % sp.m == 0) {
      refresh(j, j + sp.m);
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<int64_t> pos(sp.m);
        std::iota(pos.begin(), pos.end(), r * cols + j);
        ref_select(score, pos, sp.m - sp.n, out.mask);
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      const double w = W[r * cols + j];
      const double q = out.mask[r * cols + j] ? w : 0.0;
      out.w[r * cols + j] = q;
      const double e = (w - q) / U[j * cols + j];
      out.loss += e * e / 2;
      for (int64_t k = j + 1; k < cols; ++k) W[r * cols + k] -= e * U[j * cols + k];
    }
  }
  return out;
}

}  // namespace

TEST_CASE("SparseGPT matches the unblocked float64 reference") {
  const int64_t rows = 48, cols = 256;
  std::vector<float> W = randn(rows * cols, 301, 0.05);
  std::vector<float> X = make_activations(512, cols, 302, 6, 20.0);
  for (int64_t t = 0; t < 512; ++t) X[t * cols + 77] = 0;  // a dead input
  const Mat Hm = hessian_f64(X, cols);
  const Eigen::MatrixXd H = to_eigen(Hm, cols);
  struct Case {
    SparsityConfig sp;
    int64_t block;
  };
  const Case cases[] = {{{0.5}, 128}, {{0.5}, 64}, {{0.3, 0, 0, true}, 128}, {{0.6, 0, 0, true}, 100},
                        {{0, 2, 4}, 128}, {{0, 4, 8}, 128}, {{0, 2, 4}, 50}, {{0, 1, 4}, 32}};
  for (const Case& c : cases) {
    CAPTURE(c.sp.ratio);
    CAPTURE(c.sp.m);
    CAPTURE(c.sp.per_row);
    CAPTURE(c.block);
    SparseGptConfig cfg;
    cfg.sparsity = c.sp;
    cfg.block_size = c.block;
    const PruneResult got = prune_sparsegpt(W.data(), rows, cols, H, cfg, "w");
    const RefSparse ref = ref_sparsegpt(W, rows, cols, Hm, cfg);
    CHECK_FALSE(got.fell_back);
    CHECK(got.mask == ref.mask);
    double max_w = 0, max_diff = 0;
    for (int64_t i = 0; i < rows * cols; ++i) {
      max_w = std::max(max_w, std::fabs(ref.w[i]));
      max_diff = std::max(max_diff, std::fabs(got.weight[i] - ref.w[i]));
    }
    CHECK(max_diff <= 1e-6 * max_w);  // f32 storage of the updated weights
    CHECK(got.loss == doctest::Approx(ref.loss).epsilon(1e-9));
    for (int64_t i = 0; i < rows * cols; ++i) REQUIRE((got.weight[i] == 0.0f || got.mask[i] == 1));
  }
}

TEST_CASE("SparseGPT meets its counts and beats magnitude and Wanda on outlier inputs") {
  const int64_t rows = 48, cols = 256;
  std::vector<float> W = randn(rows * cols, 311, 0.05);
  std::vector<float> X = make_activations(512, cols, 312, 6, 20.0);
  HessianAccumulator acc(cols);
  acc.add(X.data(), 512);
  const std::vector<float> norms = input_column_norms(X.data(), 512, cols, "x");
  for (SparsityConfig sp : {SparsityConfig{0.5}, SparsityConfig{0.5, 0, 0, true}, SparsityConfig{0, 2, 4}}) {
    CAPTURE(sp.m);
    CAPTURE(sp.per_row);
    SparseGptConfig cfg;
    cfg.sparsity = sp;
    const PruneResult s = prune_sparsegpt(W.data(), rows, cols, acc.hessian(), cfg, "w");
    if (sp.m > 0) {
      for (int64_t g = 0; g < rows * cols; g += 4) {
        int nz = 0;
        for (int i = 0; i < 4; ++i) nz += s.weight[g + i] != 0;
        REQUIRE(nz <= 2);
      }
    } else if (sp.per_row) {
      for (int64_t r = 0; r < rows; ++r)
        REQUIRE(std::count(s.mask.begin() + r * cols, s.mask.begin() + (r + 1) * cols, 0) == cols / 2);
    } else {
      CHECK(std::count(s.mask.begin(), s.mask.end(), 0) == rows * cols / 2);
    }
    const double e_s = output_error(W, s.weight, X, rows, cols);
    const double e_mag = output_error(W, prune_magnitude(W.data(), rows, cols, sp, "w").weight, X, rows, cols);
    const double e_wanda = output_error(W, prune_wanda(W.data(), rows, cols, norms.data(), sp, "w").weight, X, rows, cols);
    CHECK(e_s < 0.5 * e_mag);
    CHECK(e_s < e_wanda);
  }
}

TEST_CASE("SparseGPT falls back to Wanda scores when H cannot be factored, and refuses bad input") {
  const int64_t rows = 16, cols = 64;
  std::vector<float> W = randn(rows * cols, 321);
  Eigen::MatrixXd Hi = Eigen::MatrixXd::Identity(cols, cols) * 3.0;
  for (int64_t i = 0; i + 1 < cols; i += 2) Hi(i, i + 1) = Hi(i + 1, i) = 2000.0;
  SparseGptConfig cfg;
  cfg.sparsity = {0.5};
  const PruneResult f = prune_sparsegpt(W.data(), rows, cols, Hi, cfg, "layers.0.mlp.down_proj");
  CHECK(f.fell_back);
  CHECK(f.warning.find("layers.0.mlp.down_proj") != std::string::npos);
  std::vector<float> norms(cols, static_cast<float>(std::sqrt(3.0)));
  CHECK(f.mask == prune_wanda(W.data(), rows, cols, norms.data(), cfg.sparsity, "w").mask);

  CHECK_THROWS_WITH_AS(prune_sparsegpt(W.data(), rows, cols, Eigen::MatrixXd::Identity(cols, cols), {{1.5}}, "fc"),
                       doctest::Contains("fc"), Error);
  CHECK_THROWS_AS(prune_sparsegpt(W.data(), rows, cols, Eigen::MatrixXd::Identity(cols, cols), {{0, 4, 2}}, "fc"), Error);
  CHECK_THROWS_WITH_AS(prune_sparsegpt(W.data(), rows, cols, Eigen::MatrixXd::Identity(cols + 1, cols + 1), {{0.5}}, "fc"),
                       doctest::Contains("in_features"), Error);
  auto Wn = W;
  Wn[5] = NAN;
  CHECK_THROWS_WITH_AS(prune_sparsegpt(Wn.data(), rows, cols, Eigen::MatrixXd::Identity(cols, cols), {{0.5}}, "fc.w"),
                       doctest::Contains("fc.w"), Error);
  std::vector<float> X = make_activations(100, cols, 322);
  HessianAccumulator acc(cols);
  acc.add(X.data(), 100);
  const PruneResult a = prune_sparsegpt(W.data(), rows, cols, acc.hessian(), {{0, 2, 4}}, "w");
  const PruneResult b = prune_sparsegpt(W.data(), rows, cols, acc.hessian(), {{0, 2, 4}}, "w");
  CHECK(a.weight == b.weight);
  CHECK(a.mask == b.mask);
}
