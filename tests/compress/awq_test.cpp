// AWQ against a float64 reference written from the paper and the reference implementation's
// auto_scale / auto_clip: grid over α, scales s_x^α normalised by √(max·min), output error of
// Q(W·s)/s on the calibration tokens, then per-group clip search on the output error.
#include <doctest/doctest.h>

#include "compress/awq.hpp"
#include "compress/rtn.hpp"
#include "compress_test_util.hpp"

using namespace llmc;
using namespace llmc::compress;
using namespace llmc::test;

namespace {

struct RefAwq {
  double alpha = 0, loss = 0;
  std::vector<float> s;
  std::vector<int> q;
  std::vector<RefGrid> grids;
  std::vector<double> bound;
};

std::vector<int64_t> ref_sample(int64_t n, int64_t k) {
  std::vector<int64_t> idx;
  const int64_t stride = std::max<int64_t>(1, n / k);
  for (int64_t t = 0; t < n && static_cast<int64_t>(idx.size()) < k; t += stride) idx.push_back(t);
  return idx;
}

RefAwq ref_awq(const std::vector<float>& W, int64_t rows, int64_t cols, const std::vector<float>& X,
               const AwqConfig& cfg) {
  const int64_t n = static_cast<int64_t>(X.size()) / cols;
  const int bits = cfg.quant.bits;
  const bool sym = cfg.quant.symmetric;
  // the last group holds the rest when gl does not divide cols
  const int64_t gl = cfg.quant.group_size ? cfg.quant.group_size : cols, ng = (cols + gl - 1) / gl;
  auto len_of = [&](int64_t g) { return std::min(gl, cols - g * gl); };
  std::vector<double> xm(cols, 0);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < cols; ++j) xm[j] += std::fabs(X[t * cols + j]) / n;
  const auto tok = ref_sample(n, cfg.search_tokens);
  RefAwq out;
  double best = 1e300;
  for (int k = 0; k < cfg.n_grid; ++k) {
    const double a = static_cast<double>(k) / cfg.n_grid;
    std::vector<double> sd(cols);
    for (int64_t j = 0; j < cols; ++j) sd[j] = std::max(std::pow(xm[j], a), 1e-4);
    const double norm = std::sqrt(*std::max_element(sd.begin(), sd.end()) * *std::min_element(sd.begin(), sd.end()));
    std::vector<float> s(cols);
    for (int64_t j = 0; j < cols; ++j) s[j] = static_cast<float>(sd[j] / norm);
    Mat D(rows * cols);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < ng; ++g) {
        Mat v(len_of(g));
        for (int64_t i = 0; i < len_of(g); ++i) v[i] = static_cast<double>(W[r * cols + g * gl + i]) * s[g * gl + i];
        const RefGrid gr = ref_fit_values(v, bits, sym);
        for (int64_t i = 0; i < len_of(g); ++i)
          D[r * cols + g * gl + i] = ref_deq(ref_quant(v[i], gr, bits, sym), gr) / s[g * gl + i] - W[r * cols + g * gl + i];
      }
    double loss = 0;
    for (int64_t t : tok)
      for (int64_t r = 0; r < rows; ++r) {
        double o = 0;
        for (int64_t j = 0; j < cols; ++j) o += X[t * cols + j] * D[r * cols + j];
        loss += o * o;
      }
    loss /= static_cast<double>(tok.size() * rows);
    if (loss < best) best = loss, out.alpha = a, out.s = s;
  }
  out.loss = best;
  const auto ctok = ref_sample(n, cfg.clip_tokens);
  out.q.resize(rows * cols);
  out.grids.resize(rows * ng);
  out.bound.resize(rows * ng);
  const int steps = cfg.clip ? static_cast<int>(cfg.clip_max_shrink * cfg.clip_grid + 1e-9) : 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t len = len_of(g);
      Mat ws(len);
      double m = 0;
      for (int64_t i = 0; i < len; ++i) {
        ws[i] = static_cast<double>(W[r * cols + g * gl + i]) * out.s[g * gl + i];
        m = std::max(m, std::fabs(ws[i]));
      }
      auto clamped = [&](double mv) {
        Mat c(ws);
        for (double& x : c) x = std::clamp(x, -mv, mv);
        return c;
      };
      double bound = m, best_err = 1e300;
      for (int i = 0; i < steps; ++i) {
        const double mv = m * (1.0 - static_cast<double>(i) / cfg.clip_grid);
        const Mat c = clamped(mv);
        const RefGrid gr = ref_fit_values(c, bits, sym);
        Mat d(len);
        for (int64_t k = 0; k < len; ++k) d[k] = ref_deq(ref_quant(c[k], gr, bits, sym), gr) - ws[k];
        double err = 0;
        for (int64_t t : ctok) {
          double o = 0;
          for (int64_t k = 0; k < len; ++k) o += static_cast<double>(X[t * cols + g * gl + k]) / out.s[g * gl + k] * d[k];
          err += o * o;
        }
        err /= static_cast<double>(ctok.size());
        if (err < best_err) best_err = err, bound = mv;
      }
      const Mat c = clamped(bound);
      const RefGrid gr = ref_fit_values(c, bits, sym);
      out.grids[r * ng + g] = gr;
      out.bound[r * ng + g] = bound;
      for (int64_t i = 0; i < len; ++i) out.q[r * cols + g * gl + i] = ref_quant(c[i], gr, bits, sym);
    }
  return out;
}

std::vector<float> awq_effective_weight(const AwqResult& r, size_t i) {
  std::vector<float> w = dequantize(r.weights[i]).f32_values();
  const int64_t cols = r.weights[i].cols;
  for (size_t k = 0; k < w.size(); ++k) w[k] /= r.scales[k % cols];
  return w;
}

}  // namespace

TEST_CASE("AWQ matches the float64 reference") {
  const int64_t rows = 48;
  struct Case {
    int64_t cols;
    int bits;
    int64_t gs;
    bool sym, clip;
    int64_t search_tokens, clip_tokens;
  };
  // 200 = 3·64 + 8 and 576 = 4·128 + 64 leave a short last group (its Gram block is smaller)
  const Case cases[] = {{256, 4, 32, false, true, 1024, 512}, {256, 4, 64, true, true, 200, 100},
                        {256, 4, 0, false, true, 1024, 128},  {256, 8, 64, false, false, 1024, 512},
                        {200, 4, 64, false, true, 1024, 512}, {200, 4, 64, true, true, 200, 40},
                        {576, 4, 128, false, true, 512, 256}};
  for (const Case& c : cases) {
    const int64_t cols = c.cols;
    const uint32_t seed = cols == 256 ? 81 : 81 + static_cast<uint32_t>(cols);
    std::vector<float> W = randn(rows * cols, seed, 0.05);
    std::vector<float> X = make_activations(512, cols, seed + 1, 6, 25.0);
    CAPTURE(c.cols); CAPTURE(c.bits); CAPTURE(c.gs); CAPTURE(c.sym); CAPTURE(c.clip_tokens);
    AwqConfig cfg;
    cfg.quant = {c.bits, c.gs, c.sym};
    cfg.clip = c.clip;
    cfg.search_tokens = c.search_tokens;
    cfg.clip_tokens = c.clip_tokens;
    const AwqResult got = awq_quantize({{W.data(), rows, "w"}}, cols, X.data(), 512, cfg);
    const RefAwq ref = ref_awq(W, rows, cols, X, cfg);
    CHECK(got.alpha == ref.alpha);
    CHECK(got.loss == doctest::Approx(ref.loss).epsilon(1e-4));
    REQUIRE(got.scales.size() == ref.s.size());
    for (int64_t j = 0; j < cols; ++j) REQUIRE(got.scales[j] == doctest::Approx(ref.s[j]).epsilon(1e-6));
    const QuantizedWeight& q = got.weights[0];
    q.validate("w");
    int64_t bad = 0, bad_bound = 0;
    for (int64_t i = 0; i < rows * cols; ++i) bad += q.q(i / cols, i % cols) != ref.q[i];
    const int64_t ng = q.n_groups();
    for (int64_t i = 0; i < rows * ng; ++i) {
      bad_bound += std::fabs(got.clip_max[0][i] - ref.bound[i]) > 1e-6 * ref.bound[i];
      REQUIRE(q.scale(i / ng, i % ng) == ref.grids[i].scale);
      REQUIRE(q.zero(i / ng, i % ng) == ref.grids[i].zero);
    }
    CHECK(bad == 0);
    CHECK(bad_bound == 0);
  }
}

TEST_CASE("AWQ beats RTN on inputs with outlier channels") {
  const int64_t rows = 48, cols = 256;
  std::vector<float> W = randn(rows * cols, 91, 0.05);
  std::vector<float> X = make_activations(512, cols, 92, 6, 25.0);
  for (bool sym : {true, false}) {
    AwqConfig cfg;
    cfg.quant = {4, 64, sym};
    const AwqResult r = awq_quantize({{W.data(), rows, "w"}}, cols, X.data(), 512, cfg);
    CHECK(r.alpha > 0);
    CHECK(r.loss < r.loss_rtn);
    const double e_awq = output_error(W, awq_effective_weight(r, 0), X, rows, cols);
    const double e_rtn = output_error(W, dequantize(quantize_rtn(W.data(), rows, cols, cfg.quant, "w")).f32_values(), X,
                                      rows, cols);
    CHECK(e_awq < 0.9 * e_rtn);
  }
}

TEST_CASE("AWQ over linears sharing an input equals AWQ over their stacked rows") {
  const int64_t cols = 128;
  std::vector<float> W1 = randn(24 * cols, 101, 0.05), W2 = randn(40 * cols, 102, 0.08);
  std::vector<float> X = make_activations(300, cols, 103);
  std::vector<float> both(W1);
  both.insert(both.end(), W2.begin(), W2.end());
  AwqConfig cfg;
  cfg.quant = {4, 32, false};
  const AwqResult sep = awq_quantize({{W1.data(), 24, "q"}, {W2.data(), 40, "k"}}, cols, X.data(), 300, cfg);
  const AwqResult joint = awq_quantize({{both.data(), 64, "qk"}}, cols, X.data(), 300, cfg);
  CHECK(sep.alpha == joint.alpha);
  CHECK(sep.scales == joint.scales);
  REQUIRE(sep.weights.size() == 2);
  for (int64_t r = 0; r < 64; ++r)
    for (int64_t j = 0; j < cols; ++j)
      REQUIRE((r < 24 ? sep.weights[0].q(r, j) : sep.weights[1].q(r - 24, j)) == joint.weights[0].q(r, j));
}

TEST_CASE("AWQ refuses bad input and is deterministic") {
  const int64_t rows = 8, cols = 64;
  std::vector<float> W = randn(rows * cols, 111);
  std::vector<float> X = make_activations(64, cols, 112);
  AwqConfig cfg;
  cfg.quant = {4, 48, false};
  CHECK_THROWS_WITH_AS(awq_quantize({{W.data(), rows, "mlp.up"}}, cols, X.data(), 64, cfg),
                       doctest::Contains("group size 48 is not a multiple of 32"), Error);
  cfg.quant.group_size = 32;
  auto Xn = X;
  Xn[70] = NAN;
  CHECK_THROWS_WITH_AS(awq_quantize({{W.data(), rows, "mlp.up"}}, cols, Xn.data(), 64, cfg),
                       doctest::Contains("mlp.up"), Error);
  auto Wn = W;
  Wn[0] = INFINITY;
  CHECK_THROWS_WITH_AS(awq_quantize({{W.data(), rows, "mlp.up"}, {Wn.data(), rows, "mlp.gate"}}, cols, X.data(), 64, cfg),
                       doctest::Contains("mlp.gate"), Error);
  const AwqResult a = awq_quantize({{W.data(), rows, "w"}}, cols, X.data(), 64, cfg);
  const AwqResult b = awq_quantize({{W.data(), rows, "w"}}, cols, X.data(), 64, cfg);
  CHECK(a.scales == b.scales);
  CHECK(a.weights[0].packed == b.weights[0].packed);
  CHECK(a.weights[0].zeros == b.weights[0].zeros);
}
