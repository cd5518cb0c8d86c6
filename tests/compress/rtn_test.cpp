// RTN against a float64 reference of the documented grid, with and without the MSE clip search.
#include <doctest/doctest.h>

#include "compress/rtn.hpp"
#include "compress_test_util.hpp"

using namespace llmc;
using namespace llmc::compress;
using namespace llmc::test;

namespace {

struct RefQuant {
  std::vector<int> q;
  std::vector<RefGrid> grids;
};

// Per group: the grid of the full range, or the best shrink 1 − i/grid by squared error.
RefQuant ref_rtn(const std::vector<float>& W, int64_t rows, int64_t cols, const QuantConfig& c) {
  // groups of gl consecutive inputs; when gl does not divide cols the last one holds the rest
  const int64_t gl = c.group_size ? c.group_size : cols, ng = (cols + gl - 1) / gl;
  RefQuant out{std::vector<int>(rows * cols), std::vector<RefGrid>(rows * ng)};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t end = std::min((g + 1) * gl, cols);
      std::vector<double> v(W.begin() + r * cols + g * gl, W.begin() + r * cols + end);
      double lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
      RefGrid best{};
      double best_err = 1e300;
      const int steps = c.clip_search ? static_cast<int>(c.clip_max_shrink * c.clip_grid + 1e-9) : 1;
      for (int i = 0; i < steps; ++i) {
        const double p = 1.0 - static_cast<double>(i) / c.clip_grid;
        RefGrid gr = ref_fit_range(lo * p, hi * p, c.bits, c.symmetric);
        double err = 0;
        for (double x : v) {
          const double d = x - ref_deq(ref_quant(x, gr, c.bits, c.symmetric), gr);
          err += d * d;
        }
        if (err < best_err) best_err = err, best = gr;
      }
      out.grids[r * ng + g] = best;
      for (size_t i = 0; i < v.size(); ++i) out.q[r * cols + g * gl + i] = ref_quant(v[i], best, c.bits, c.symmetric);
    }
  return out;
}

}  // namespace

TEST_CASE("RTN matches the float64 reference for every layout") {
  const int64_t rows = 48;
  // 256 divides evenly; 576 = 4·128 + 64 (SmolLM2's hidden size at g128) and 200 = 3·64 + 8 leave
  // a short last group
  struct Layout {
    int64_t cols, gs;
  };
  const Layout layouts[] = {{256, 0}, {256, 32}, {256, 64}, {576, 128}, {200, 64}, {200, 128}};
  for (const Layout& lay : layouts)
    for (int bits : {4, 8})
      for (bool sym : {true, false})
        for (bool clip : {false, true}) {
          const int64_t cols = lay.cols, gs = lay.gs;
          std::vector<float> W = randn(rows * cols, 11 + static_cast<uint32_t>(cols), 0.05);
          for (int i = 0; i < 20; ++i) W[(i * 613) % W.size()] *= 8.0f;  // a few large weights for clipping to matter
          CAPTURE(cols); CAPTURE(bits); CAPTURE(sym); CAPTURE(gs); CAPTURE(clip);
          QuantConfig c{bits, gs, sym, clip, 20, 0.5};
          QuantizedWeight qw = quantize_rtn(W.data(), rows, cols, c, "w");
          RefQuant ref = ref_rtn(W, rows, cols, c);
          qw.validate("w");
          int64_t bad = 0;
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t j = 0; j < cols; ++j) bad += qw.q(r, j) != ref.q[r * cols + j];
          CHECK(bad == 0);
          const int64_t ng = qw.n_groups();
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t g = 0; g < ng; ++g) {
              REQUIRE(qw.scale(r, g) == ref.grids[r * ng + g].scale);
              REQUIRE(qw.zero(r, g) == ref.grids[r * ng + g].zero);
            }
          // every value lands on the grid point nearest to it (within half a step once clamped to
          // the grid's range, which the rounded f16 scale and zero point may leave short of max |w|)
          auto v = dequantize(qw).f32_values();
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t j = 0; j < cols; ++j) {
              const int64_t g = qw.group_of(j);
              const double s = qw.scale(r, g), z = qw.zero(r, g);
              const double wc = std::clamp<double>(W[r * cols + j], s * (qw.qmin() - z), s * (qw.qmax() - z));
              REQUIRE(std::fabs(v[r * cols + j] - wc) <= 0.5 * s * (1 + 1e-6));
            }
        }
}

TEST_CASE("RTN clip search never increases the weight error, and INT8 beats INT4") {
  const int64_t rows = 32, cols = 128;
  std::vector<float> W = randn(rows * cols, 5, 0.1);
  for (int i = 0; i < 10; ++i) W[(i * 389) % W.size()] = 1.5f * (i % 2 ? 1 : -1);
  auto err = [&](const QuantizedWeight& q) {
    auto v = dequantize(q).f32_values();
    double e = 0;
    for (size_t i = 0; i < v.size(); ++i) e += (v[i] - W[i]) * (v[i] - W[i]);
    return e;
  };
  for (bool sym : {true, false}) {
    const double plain = err(quantize_rtn(W.data(), rows, cols, {4, 32, sym, false}, "w"));
    const double clipped = err(quantize_rtn(W.data(), rows, cols, {4, 32, sym, true}, "w"));
    const double int8 = err(quantize_rtn(W.data(), rows, cols, {8, 32, sym, false}, "w"));
    CHECK(clipped < plain);
    CHECK(int8 < plain / 100);
  }
}

TEST_CASE("RTN rounds ties to even and handles all-zero groups") {
  // scale 1 exactly: max |w| = 7 over the group, so w / s lands on .5 ties
  std::vector<float> W = {7.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 0.0f, 0, 0, 0, 0, 0, 0, 0, 0};
  QuantizedWeight q = quantize_rtn(W.data(), 2, 8, {4, 0, true, false}, "ties");
  CHECK(q.scale(0, 0) == 1.0f);
  const int expect[] = {7, 0, 2, 2, 0, -2, -2, 0};
  for (int j = 0; j < 8; ++j) CHECK(q.q(0, j) == expect[j]);
  for (int j = 0; j < 8; ++j) CHECK(q.q(1, j) == 0);
  CHECK(q.scale(1, 0) == 1.0f);
}

TEST_CASE("RTN refuses bad input with the tensor named, and is deterministic") {
  std::vector<float> W = randn(8 * 256, 2);
  CHECK_THROWS_WITH_AS(quantize_rtn(W.data(), 8, 256, {4, 48, true}, "model.layers.0.mlp.up_proj"),
                       doctest::Contains("group size 48 is not a multiple of 32"), Error);
  // one group per row needs no 32-column boundary: 48 ≥ 40 inputs
  CHECK(quantize_rtn(W.data(), 8, 40, {4, 48, true}, "w").n_groups() == 1);
  CHECK_THROWS_WITH_AS(quantize_rtn(W.data(), 8, 256, {4, 48, true}, "model.layers.0.mlp.up_proj"),
                       doctest::Contains("model.layers.0.mlp.up_proj"), Error);
  CHECK_THROWS_AS(quantize_rtn(W.data(), 8, 256, {3, 32, true}, "w"), Error);
  auto nan = W;
  nan[77] = std::nanf("");
  CHECK_THROWS_WITH_AS(quantize_rtn(nan.data(), 8, 256, {4, 32, true}, "layer.k_proj"),
                       doctest::Contains("layer.k_proj"), Error);
  auto inf = W;
  inf[3] = -INFINITY;
  CHECK_THROWS_WITH_AS(quantize_rtn(inf.data(), 8, 256, {4, 32, true}, "layer.v_proj"),
                       doctest::Contains("non-finite"), Error);
  auto huge = W;
  huge[5] = 1e7f;
  CHECK_THROWS_WITH_AS(quantize_rtn(huge.data(), 8, 256, {4, 32, true}, "w"), doctest::Contains("f16"), Error);
  QuantizedWeight a = quantize_rtn(W.data(), 8, 256, {4, 64, false, true}, "w");
  QuantizedWeight b = quantize_rtn(W.data(), 8, 256, {4, 64, false, true}, "w");
  CHECK(a.packed == b.packed);
  CHECK(a.scales == b.scales);
  CHECK(a.zeros == b.zeros);
}
