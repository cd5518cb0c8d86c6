// Structured scores: the activation-aware FFN channel and head scores must equal the norm of the
// output change when that channel or head is removed, computed directly in float64.
#include <doctest/doctest.h>

#include "compress/prune.hpp"
#include "compress_test_util.hpp"

using namespace llmc;
using namespace llmc::compress;
using namespace llmc::test;

TEST_CASE("FFN channel scores equal each channel's contribution to the output") {
  const int64_t d = 32, f = 80, n = 50;
  std::vector<float> gate = randn(f * d, 501, 0.2), up = randn(f * d, 502, 0.2), down = randn(d * f, 503, 0.2);
  std::vector<float> X = make_activations(n, d, 504);
  // h = silu(gate·x)·(up·x), the input of down_proj
  std::vector<double> h(n * f);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < f; ++i) {
      double g = 0, u = 0;
      for (int64_t k = 0; k < d; ++k) {
        g += static_cast<double>(gate[i * d + k]) * X[t * d + k];
        u += static_cast<double>(up[i * d + k]) * X[t * d + k];
      }
      h[t * f + i] = g / (1 + std::exp(-g)) * u;
    }
  std::vector<float> sq(f, 0.0f);
  for (int64_t i = 0; i < f; ++i) {
    double s = 0;
    for (int64_t t = 0; t < n; ++t) s += h[t * f + i] * h[t * f + i];
    sq[i] = static_cast<float>(s);
  }
  const std::vector<double> act = ffn_channel_scores(gate.data(), up.data(), down.data(), d, f, sq.data(), "mlp");
  for (int64_t i = 0; i < f; ++i) {
    // ‖Y − Y_without_i‖_F where Y = H·downᵀ: only channel i's column of down matters
    double diff = 0;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t r = 0; r < d; ++r) diff += std::pow(h[t * f + i] * down[r * f + i], 2);
    REQUIRE(act[i] == doctest::Approx(std::sqrt(diff)).epsilon(1e-6));
  }
  const std::vector<double> wn = ffn_channel_scores(gate.data(), up.data(), down.data(), d, f, nullptr, "mlp");
  for (int64_t i = 0; i < f; ++i) {
    double s = 0;
    for (int64_t k = 0; k < d; ++k) s += std::pow(gate[i * d + k], 2) + std::pow(up[i * d + k], 2) + std::pow(down[k * f + i], 2);
    REQUIRE(wn[i] == doctest::Approx(std::sqrt(s)).epsilon(1e-9));
  }
  const std::vector<int64_t> keep = keep_top_k(act, 60, "mlp");
  REQUIRE(keep.size() == 60);
  CHECK(std::is_sorted(keep.begin(), keep.end()));
  double min_kept = 1e300, max_dropped = 0;
  for (int64_t i = 0; i < f; ++i)
    if (std::binary_search(keep.begin(), keep.end(), i))
      min_kept = std::min(min_kept, act[i]);
    else
      max_dropped = std::max(max_dropped, act[i]);
  CHECK(min_kept >= max_dropped);
}

TEST_CASE("head scores equal each head's contribution to o_proj's output") {
  const int64_t d = 48, heads = 6, hd = 8, n = 40;
  std::vector<float> wq = randn(heads * hd * d, 511, 0.1), wo = randn(d * heads * hd, 512, 0.1);
  std::vector<float> o_in = make_activations(n, heads * hd, 513);
  const std::vector<double> s = head_scores(wq.data(), wo.data(), d, heads, hd, o_in.data(), n, "attn");
  for (int64_t h = 0; h < heads; ++h) {
    double diff = 0;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t r = 0; r < d; ++r) {
        double full = 0, without = 0;
        for (int64_t c = 0; c < heads * hd; ++c) {
          const double p = static_cast<double>(o_in[t * heads * hd + c]) * wo[r * heads * hd + c];
          full += p;
          if (c / hd != h) without += p;
        }
        diff += (full - without) * (full - without);
      }
    REQUIRE(s[h] == doctest::Approx(std::sqrt(diff)).epsilon(1e-6));
  }
  const std::vector<double> w = head_scores(wq.data(), wo.data(), d, heads, hd, nullptr, 0, "attn");
  for (int64_t h = 0; h < heads; ++h) {
    double acc = 0;
    for (int64_t c = h * hd; c < (h + 1) * hd; ++c)
      for (int64_t k = 0; k < d; ++k) acc += std::pow(wq[c * d + k], 2) + std::pow(wo[k * heads * hd + c], 2);
    REQUIRE(w[h] == doctest::Approx(std::sqrt(acc)).epsilon(1e-9));
  }
}

TEST_CASE("keep_top_k breaks ties toward the lower index and refuses bad k") {
  CHECK(keep_top_k({1.0, 3.0, 3.0, 2.0, 3.0}, 2, "s") == std::vector<int64_t>{1, 2});
  CHECK(keep_top_k({1.0, 3.0, 3.0, 2.0, 3.0}, 0, "s").empty());
  CHECK_THROWS_WITH_AS(keep_top_k({1.0, 2.0}, 3, "layers.4.mlp"), doctest::Contains("layers.4.mlp"), Error);
  CHECK_THROWS_AS(keep_top_k({1.0, NAN}, 1, "s"), Error);
}
