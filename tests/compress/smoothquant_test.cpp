// SmoothQuant scales against the paper's Eq. 4 in float64, the equivalence X·Wᵀ = (X/s)·(W·s)ᵀ,
// and the claim that smoothing lowers W8A8 error when activations carry outlier channels.
#include <doctest/doctest.h>

#include "compress/smoothquant.hpp"
#include "compress_test_util.hpp"
#include "kernels/cpu/quant_gemm.hpp"

using namespace llmc;
using namespace llmc::compress;
using namespace llmc::test;

namespace {

// relative Frobenius error of y against the float64 product X·Wᵀ
double w8a8_error(const std::vector<float>& X, const std::vector<float>& W, const std::vector<float>& y, int64_t n,
                  int64_t rows, int64_t cols) {
  double num = 0, den = 0;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double ref = 0;
      for (int64_t j = 0; j < cols; ++j) ref += static_cast<double>(X[t * cols + j]) * W[r * cols + j];
      num += (y[t * rows + r] - ref) * (y[t * rows + r] - ref);
      den += ref * ref;
    }
  return std::sqrt(num / den);
}

}  // namespace

TEST_CASE("SmoothQuant scales follow s_j = max|X_j|^α / max|W_j|^(1−α)") {
  const int64_t cols = 96, n = 200;
  std::vector<float> X = make_activations(n, cols, 401, 5, 30.0);
  std::vector<float> Wq = randn(32 * cols, 402, 0.05), Wk = randn(16 * cols, 403, 0.2);
  for (int64_t t = 0; t < n; ++t) X[t * cols + 50] = 0;  // a silent channel: s clamps to 1e-5
  const std::vector<float> amax = channel_absmax(X.data(), n, cols, "x");
  for (double alpha : {0.0, 0.5, 0.8, 1.0}) {
    CAPTURE(alpha);
    const std::vector<float> s = smoothquant_scales(amax.data(), cols, {{Wq.data(), 32, "q"}, {Wk.data(), 16, "k"}}, alpha);
    for (int64_t j = 0; j < cols; ++j) {
      double a = 0, w = 0;
      for (int64_t t = 0; t < n; ++t) a = std::max(a, std::fabs(static_cast<double>(X[t * cols + j])));
      for (int64_t r = 0; r < 32; ++r) w = std::max(w, std::fabs(static_cast<double>(Wq[r * cols + j])));
      for (int64_t r = 0; r < 16; ++r) w = std::max(w, std::fabs(static_cast<double>(Wk[r * cols + j])));
      const double ref = std::max(std::pow(a, alpha) / std::pow(std::max(w, 1e-5), 1 - alpha), 1e-5);
      REQUIRE(s[j] == doctest::Approx(ref).epsilon(1e-6));
    }
  }
}

TEST_CASE("smoothing preserves the product and lowers W8A8 error on outlier activations") {
  const int64_t cols = 128, rows = 64, n = 96;
  std::vector<float> X = make_activations(n, cols, 411, 6, 60.0);
  std::vector<float> W = randn(rows * cols, 412, 0.05);
  const std::vector<float> amax = channel_absmax(X.data(), n, cols, "x");
  const std::vector<float> s = smoothquant_scales(amax.data(), cols, {{W.data(), rows, "fc"}}, 0.5);
  std::vector<float> Ws = W, Xs = X;
  apply_smoothing(Ws.data(), rows, cols, s);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < cols; ++j) Xs[t * cols + j] /= s[j];
  // (X/s)·(W·s)ᵀ = X·Wᵀ up to f32 rounding of the scaled operands
  double num = 0, den = 0;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double a = 0, b = 0;
      for (int64_t j = 0; j < cols; ++j) {
        a += static_cast<double>(X[t * cols + j]) * W[r * cols + j];
        b += static_cast<double>(Xs[t * cols + j]) * Ws[r * cols + j];
      }
      num += (a - b) * (a - b), den += a * a;
    }
  CHECK(std::sqrt(num / den) < 1e-6);

  std::vector<float> y_plain(n * rows), y_smooth(n * rows), y_static(n * rows);
  const QuantizedWeight q_plain = quantize_w8_per_channel(W.data(), rows, cols, "fc");
  const QuantizedWeight q_smooth = quantize_w8_per_channel(Ws.data(), rows, cols, "fc");
  kernels::cpu::linear_w8a8(X.data(), q_plain, nullptr, y_plain.data(), n, nullptr);
  kernels::cpu::linear_w8a8(Xs.data(), q_smooth, nullptr, y_smooth.data(), n, nullptr);
  float xs_max = 0;
  for (float v : Xs) xs_max = std::max(xs_max, std::fabs(v));
  const float act_scale = static_activation_scale(xs_max, "fc input");
  CHECK(act_scale == xs_max / 127.0f);
  kernels::cpu::linear_w8a8(Xs.data(), q_smooth, nullptr, y_static.data(), n, &act_scale);
  const double e_plain = w8a8_error(X, W, y_plain, n, rows, cols);
  const double e_smooth = w8a8_error(X, W, y_smooth, n, rows, cols);
  const double e_static = w8a8_error(X, W, y_static, n, rows, cols);
  MESSAGE("W8A8 relative error: plain " << e_plain << ", smoothed " << e_smooth << ", smoothed static " << e_static);
  CHECK(e_smooth < 0.5 * e_plain);
  CHECK(e_static < 0.05);
}

TEST_CASE("SmoothQuant refuses bad input") {
  std::vector<float> W = randn(8 * 16, 421);
  std::vector<float> amax(16, 1.0f);
  CHECK_THROWS_WITH_AS(smoothquant_scales(amax.data(), 16, {{W.data(), 8, "attn.q"}}, 1.5), doctest::Contains("attn.q"),
                       Error);
  amax[2] = NAN;
  CHECK_THROWS_AS(smoothquant_scales(amax.data(), 16, {{W.data(), 8, "attn.q"}}, 0.5), Error);
  amax[2] = 1.0f;
  auto Wn = W;
  Wn[0] = INFINITY;
  CHECK_THROWS_WITH_AS(smoothquant_scales(amax.data(), 16, {{W.data(), 8, "q"}, {Wn.data(), 8, "attn.v"}}, 0.5),
                       doctest::Contains("attn.v"), Error);
  CHECK_THROWS_AS(static_activation_scale(-1.0f, "x"), Error);
  CHECK(static_activation_scale(0.0f, "x") == 1.0f);
}
