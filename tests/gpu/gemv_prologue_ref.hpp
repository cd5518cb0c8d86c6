// Host references for the decode GEMVs' folded prologues (quant_gemv_fused.hpp's GemvPrologue):
// the activations the unfused path would store (RMSNorm or SwiGLU, rounded to f16), and a check
// of f32 outputs. Shared by the gemv_fused and gemv_sparse24_w4 tests.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/quant_gemm.hpp"
#include "runtime/ir/tensor.hpp"
#include "tests/gpu/gpu_test_util.hpp"

namespace llmc::test {

inline std::vector<float> random_floats(int64_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// x[m, k] = h / sqrt(mean(h²) + eps) · gamma rounded to f16, h rows ld apart.
inline std::vector<float> rmsnorm_staged(const std::vector<float>& h, int64_t ld, const std::vector<float>& gamma,
                                         int64_t m, int64_t k, float eps) {
  std::vector<float> x(m * k);
  for (int64_t r = 0; r < m; ++r) {
    float ss = 0;
    for (int64_t c = 0; c < k; ++c) ss += h[r * ld + c] * h[r * ld + c];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(k) + eps);
    for (int64_t c = 0; c < k; ++c) x[r * k + c] = f16_to_f32(f32_to_f16(h[r * ld + c] * inv * gamma[c]));
  }
  return x;
}

// x[m, k] = silu(gate) · up rounded to f16, gate = gu[:, 0..k), up = gu[:, k..2k) (rows 2k apart).
inline std::vector<float> swiglu_staged(const std::vector<float>& gu, int64_t m, int64_t k) {
  std::vector<float> x(m * k);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < k; ++c) {
      const float gv = gu[r * 2 * k + c], uv = gu[r * 2 * k + k + c];
      x[r * k + c] = f16_to_f32(f32_to_f16(gv / (1.0f + std::exp(-gv)) * uv));
    }
  return x;
}

// f32 outputs: |got − ref| ≤ rel_sum·Σ|x·w| + 2⁻²⁰·|ref| + 1e-6, NaN fails.
inline void check_close_f32(const std::vector<float>& got, const std::vector<float>& ref,
                            const std::vector<double>& abs_sum, double rel_sum, const std::string& what) {
  REQUIRE(got.size() == ref.size());
  int64_t bad = 0;
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::fabs(static_cast<double>(got[i]) - ref[i]);
    const double tol = rel_sum * abs_sum[i] + std::ldexp(std::fabs(ref[i]), -20) + 1e-6;
    if (!(d <= tol)) ++bad;
    if (std::isfinite(d)) worst = std::max(worst, d / tol);
  }
  INFO(what << ": worst error/tolerance " << worst);
  CHECK(bad == 0);
}

// One case of the RMSNorm prologue with bias and f32 residual: residual-stream rows h (m rows, ld
// apart), the residual res, and the host's y = linear(rmsnorm(h)) + bias + res with Σ|x·w| per
// output (the tolerance's scale). Draws h and res from `seed`, advancing it.
struct RmsCase {
  std::vector<float> h, res, ref;
  std::vector<double> abs_sum;
};
inline RmsCase rms_case(const QuantizedWeight& w, const std::vector<float>& wf, const std::vector<float>& gamma,
                        const std::vector<float>& bias, int64_t m, int64_t ld, uint32_t& seed) {
  const int64_t n = w.rows, k = w.cols;
  RmsCase c;
  c.h = random_floats(m * ld, ++seed, -3.0f, 3.0f);
  c.res = random_floats(m * n, ++seed, -2.0f, 2.0f);
  const std::vector<float> x = rmsnorm_staged(c.h, ld, gamma, m, k, 1e-5f);
  c.ref.resize(m * n);
  kernels::cpu::linear_quantized(x.data(), w, nullptr, c.ref.data(), m);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j) c.ref[r * n + j] += bias[j] + c.res[r * n + j];
  c.abs_sum = abs_products(x, wf, m, n, k);
  return c;
}

}  // namespace llmc::test
