// The synthetic benchmark models (runtime/cuda/synthetic.hpp) on the host: the shape each name
// promises, and what each scheme does to the decoder linears (2:4 pattern, LinearQ formats). No
// GPU needed: this runs wherever the CUDA backend is built.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "kernels/cuda/sparse_gemm.hpp"
#include "kernels/cuda/sparse_gemv.hpp"
#include "runtime/cuda/synthetic.hpp"

using namespace llmc;

namespace {

bool decoder_linear(const std::string& name) {
  return name.find(".self_attn.") != std::string::npos || name.find(".mlp.") != std::string::npos;
}

}  // namespace

TEST_CASE("synthetic smollm2 sparse24: every decoder linear is 2:4 with random kept values, the rest dense") {
  const Model m = runtime::synthetic_model("smollm2", "sparse24", 3);
  const nlohmann::json cfg = runtime::synthetic_config("smollm2");
  CHECK(cfg["hidden_size"] == 576);
  CHECK(cfg["num_hidden_layers"] == 30);
  CHECK(m.graph.quantized.empty());
  int linears = 0;
  for (const auto& [name, t] : m.graph.weights) {
    if (t.rank() != 2 || !decoder_linear(name)) continue;
    ++linears;
    CAPTURE(name);
    REQUIRE(t.dtype() == DType::F32);
    kernels::cuda::check_2to4(t.data<float>(), t.dim(0), t.dim(1), name);  // throws where a group has > 2
    int64_t zeros = 0, patterns[16] = {};
    double sum_sq = 0;
    const float* p = t.data<float>();
    for (int64_t g = 0; g < t.numel() / 4; ++g) {
      int mask = 0;
      for (int e = 0; e < 4; ++e) {
        if (p[g * 4 + e] == 0.0f) ++zeros;
        else mask |= 1 << e;
        sum_sq += static_cast<double>(p[g * 4 + e]) * p[g * 4 + e];
      }
      ++patterns[mask];
    }
    CHECK(zeros == t.numel() / 2);  // exactly two of four: the kept values are never 0
    for (int mask : {0b0011, 0b0101, 0b1001, 0b0110, 0b1010, 0b1100}) CHECK(patterns[mask] > 0);
    // kept values uniform in [−0.0346, 0.0346): mean square 0.0346²/3 = 4.0e-4 over half the entries
    // (relative spread of that mean over n ≥ 55 296 kept values, k/v: 0.89/√n ≤ 0.4 %; 2 % allowed)
    CHECK(sum_sq / (t.numel() / 2) == doctest::Approx(0.0346 * 0.0346 / 3).epsilon(0.02));
  }
  CHECK(linears == 30 * 7);
  const Tensor& head = m.graph.weights.at("lm_head.weight");
  int64_t head_zeros = 0;
  for (int64_t i = 0; i < head.numel(); ++i) head_zeros += head.data<float>()[i] == 0.0f;
  CHECK(head_zeros < head.numel() / 1000);  // the head stays dense
}

TEST_CASE("synthetic sparse24-w4a16: INT4 decoder linears with exactly two zero codes in every four, all six patterns") {
  const Model q = runtime::synthetic_model("smollm2", "sparse24-w4a16", 2);
  CHECK(q.graph.quantized.size() == 30 * 7);
  for (const auto& [name, w] : q.graph.quantized) {
    CAPTURE(name);
    REQUIRE(w.bits == 4);
    CHECK(w.symmetric);
    CHECK(w.group_size == 128);
    CHECK(kernels::cuda::is_sparse24_w4(w));
    int64_t zeros = 0, patterns[16] = {};
    for (int64_t r = 0; r < w.rows; ++r)
      for (int64_t c0 = 0; c0 < w.cols; c0 += 4) {
        int mask = 0;
        for (int e = 0; e < 4; ++e) mask |= (w.q(r, c0 + e) != 0) << e;
        zeros += 4 - __builtin_popcount(mask);
        ++patterns[mask];
      }
    // the kept codes are uniform over [−8, 7]: 1 in 16 is 0 on its own
    CHECK(static_cast<double>(zeros) / (w.rows * w.cols) == doctest::Approx(0.5 + 0.5 / 16).epsilon(0.05));
    for (int mask : {0b0011, 0b0101, 0b1001, 0b0110, 0b1010, 0b1100}) CHECK(patterns[mask] > 0);
  }
  // the plain w4a16 codes are dense
  CHECK_FALSE(kernels::cuda::is_sparse24_w4(runtime::synthetic_model("smollm2", "w4a16", 2).graph.quantized.begin()->second));
}

TEST_CASE("synthetic models: w4a16 quantizes every decoder linear, w4a16-head the head too; unknown names are usage errors") {
  const Model q = runtime::synthetic_model("smollm2", "w4a16", 1);
  CHECK(q.graph.quantized.size() == 30 * 7);
  for (const auto& [name, w] : q.graph.quantized) {
    CAPTURE(name);
    CHECK(w.bits == 4);
    CHECK(w.group_size == 128);
  }
  CHECK(q.graph.weights.count("lm_head.weight") == 1);
  const Model h = runtime::synthetic_model("smollm2", "w4a16-head", 1);
  CHECK(h.graph.quantized.size() == 30 * 7 + 1);
  CHECK_THROWS_WITH_AS(runtime::synthetic_model("smollm2", "w3", 1), doctest::Contains("known: f16, sparse24"), Error);
  CHECK_THROWS_WITH_AS(runtime::synthetic_config("gpt9"), doctest::Contains("known: tinyllama, smollm2"), Error);
}
