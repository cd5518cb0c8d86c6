// Shared by the CudaSession tests: random token ids, the logits comparison against the CPU
// Session (tolerance argued from f16 rounding), prefill + decode and perplexity side by side, and
// the message of an expected Error.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "runtime/cuda/cuda_session.hpp"
#include "runtime/eval.hpp"
#include "runtime/session.hpp"

namespace llmc::test {

inline std::vector<int64_t> random_ids(size_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int64_t> t(n);
  for (auto& x : t) x = static_cast<int64_t>(rng() % static_cast<uint32_t>(vocab));
  return t;
}

// The GPU keeps weights and activations in f16 (2⁻¹¹ relative rounding each), the CPU in f32;
// through two blocks and the head that compounds to a few 1e-3 of the logits' scale. A wrong
// position, mask, cache row or weight layout moves logits by O(1) of that scale.
inline void expect_logits_close(const Tensor& gpu, const Tensor& cpu, const std::string& what, double rel_tol = 5e-3) {
  REQUIRE(gpu.shape() == cpu.shape());
  const float* g = gpu.data<float>();
  const float* c = cpu.data<float>();
  double err2 = 0, ref2 = 0, worst = 0, refmax = 0;
  for (int64_t i = 0; i < cpu.numel(); ++i) {
    REQUIRE(std::isfinite(g[i]));
    err2 += (g[i] - c[i]) * static_cast<double>(g[i] - c[i]);
    ref2 += c[i] * static_cast<double>(c[i]);
    worst = std::max(worst, std::fabs(static_cast<double>(g[i]) - c[i]));
    refmax = std::max(refmax, std::fabs(static_cast<double>(c[i])));
  }
  const double rel = std::sqrt(err2 / ref2);
  INFO(what << ": relative l2 error " << rel << ", max abs error " << worst << " (max |logit| " << refmax << ")");
  CHECK(rel < rel_tol);
  CHECK(worst < 4 * rel_tol * refmax);
  CHECK(refmax > 0);
}

// Prefill of a prompt, then single-token steps, CPU and GPU side by side.
inline void compare_prefill_decode(const Model& m, const runtime::CudaOptions& opt, int64_t prompt_len,
                                   int decode_steps, uint32_t seed, double rel_tol = 5e-3) {
  runtime::Session cpu(m);
  runtime::CudaSession gpu(m, opt);
  const int64_t V = m.config.value("vocab_size", int64_t{0});
  const auto prompt = random_ids(prompt_len, V, seed);
  expect_logits_close(gpu.forward(prompt), cpu.forward(prompt), "prefill", rel_tol);
  const auto next = random_ids(decode_steps, V, seed + 1);
  for (int s = 0; s < decode_steps; ++s) {
    CAPTURE(s);
    expect_logits_close(gpu.forward({next[s]}), cpu.forward({next[s]}), "decode step", rel_tol);
  }
  CHECK(gpu.past() == cpu.past());
}

// Perplexity of random ids over 4 windows of 64: equal to 3 significant digits.
inline void compare_perplexity(const Model& m, uint32_t seed, double rel_tol = 5e-4,
                               const runtime::CudaOptions& opt = {}) {
  runtime::Session cpu(m);
  runtime::CudaSession gpu(m, opt);
  const auto ids = random_ids(4 * 64, m.config.value("vocab_size", int64_t{0}), seed);
  runtime::EvalOptions eo;
  eo.ctx = 64;
  const double pc = runtime::evaluate(cpu, ids, eo).perplexity();
  const double pg = runtime::evaluate(gpu, ids, eo).perplexity();
  INFO("perplexity cpu " << pc << " gpu " << pg);
  CHECK(std::fabs(pg / pc - 1) < rel_tol);
}

// The message of the llmc::Error that f throws ("" and a failed check when it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL_CHECK("no error was thrown");
  return "";
}
inline bool has(const std::string& msg, const char* part) { return msg.find(part) != std::string::npos; }
inline bool has(const std::string& msg, const std::string& part) { return msg.find(part) != std::string::npos; }

}  // namespace llmc::test
