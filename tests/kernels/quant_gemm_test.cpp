// Quantized CPU kernels against dequantize() + a float64 matmul (dequantizing GEMV/GEMM) and exact
// integer references (int8 GEMM, activation quantization, W8A8), on random weights of every layout.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "kernels/cpu/quant_gemm.hpp"

using namespace llmc;
namespace kc = llmc::kernels::cpu;

namespace {

constexpr double kEps32 = 1.0 / (1 << 23);

QuantizedWeight random_weight(int bits, bool sym, int64_t rows, int64_t cols, int64_t gs, bool act_order,
                              uint32_t seed) {
  std::mt19937 rng(seed);
  QuantizedWeight w = QuantizedWeight::allocate(bits, rows, cols, gs, sym);
  std::uniform_int_distribution<int> qd(w.qmin(), w.qmax()), zd(0, (1 << bits) - 1);
  std::uniform_real_distribution<float> sd(0.001f, 0.05f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) w.set_q(r, c, qd(rng));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < w.n_groups(); ++g) {
      w.scales[r * w.n_groups() + g] = f32_to_f16(sd(rng));
      if (!sym) w.set_zero(r, g, zd(rng));
    }
  if (act_order) {  // each group keeps its size, columns scattered as GPTQ's act-order leaves them
    std::vector<int32_t> perm(cols);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    w.g_idx.resize(cols);
    for (int64_t j = 0; j < cols; ++j) w.g_idx[perm[j]] = static_cast<int32_t>(j / w.group_len());
  }
  w.validate("w");
  return w;
}

std::vector<float> random_f32(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace

TEST_CASE("linear_quantized matches dequantize() and a float64 matmul for every layout") {
  struct Case {
    int bits;
    bool sym;
    int64_t cols, gs;
    bool act_order;
  };
  const Case cases[] = {{4, true, 256, 32, false}, {4, false, 256, 64, false}, {8, true, 256, 0, false},
                        {8, false, 256, 32, false}, {4, false, 256, 32, true},  {8, true, 128, 64, true},
                        {4, true, 75, 0, false},    {4, false, 75, 5, false},   {4, true, 1536, 128, false},
                        // a short last group: 576 = 4·128 + 64, 200 = 3·64 + 8, 75 = 2·32 + 11, 77 = 7·10 + 7
                        {4, true, 576, 128, false}, {4, false, 576, 128, false}, {4, false, 200, 64, false},
                        {8, true, 200, 64, false},  {8, false, 576, 128, false}, {4, true, 200, 64, true},
                        {4, false, 75, 32, false},  {4, true, 77, 10, false},   {8, false, 77, 10, true}};
  const int64_t rows = 70;
  uint32_t seed = 600;
  for (const Case& c : cases)
    for (int64_t m : {int64_t(1), int64_t(3), int64_t(37)})
      for (bool with_bias : {false, true}) {
        CAPTURE(c.bits);
        CAPTURE(c.sym);
        CAPTURE(c.cols);
        CAPTURE(c.gs);
        CAPTURE(c.act_order);
        CAPTURE(m);
        const QuantizedWeight w = random_weight(c.bits, c.sym, rows, c.cols, c.gs, c.act_order, ++seed);
        const std::vector<float> x = random_f32(m * c.cols, ++seed), bias = random_f32(rows, ++seed);
        const std::vector<float> wd = dequantize(w).f32_values();
        std::vector<float> y(m * rows, NAN);
        kc::linear_quantized(x.data(), w, with_bias ? bias.data() : nullptr, y.data(), m);
        // f32 accumulation of k products (the fused GEMV subtracts z·Σx per group, so bound by the
        // magnitudes of codes and zero points, each below 2^bits): |err| ≤ (k + 8)·eps·Σ|x|·s·2^bits
        for (int64_t t = 0; t < m; ++t)
          for (int64_t r = 0; r < rows; ++r) {
            double ref = with_bias ? bias[r] : 0.0, mag = with_bias ? std::fabs(bias[r]) : 0.0;
            for (int64_t j = 0; j < c.cols; ++j) {
              ref += static_cast<double>(x[t * c.cols + j]) * wd[r * c.cols + j];
              mag += std::fabs(x[t * c.cols + j]) * w.scale(r, w.group_of(j)) * (1 << c.bits);
            }
            REQUIRE(std::isfinite(y[t * rows + r]));
            REQUIRE(std::fabs(y[t * rows + r] - ref) <= (c.cols + 8) * kEps32 * mag);
          }
      }
}

TEST_CASE("int8 GEMM accumulates exactly in int32") {
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{5, 37, 300}, {64, 64, 256}, {1, 9, 4096}}) {
    std::mt19937 rng(static_cast<uint32_t>(m * 131 + n));
    std::uniform_int_distribution<int> d(-128, 127);
    std::vector<int8_t> a(m * k), b(n * k);
    for (auto& v : a) v = static_cast<int8_t>(d(rng));
    for (auto& v : b) v = static_cast<int8_t>(d(rng));
    a[0] = b[0] = -128;  // the corner a symmetric [-127, 127] range never hits
    std::vector<int32_t> c(m * n, 12345);
    kc::gemm_s8s8s32(a.data(), b.data(), c.data(), m, n, k);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        int64_t ref = 0;
        for (int64_t l = 0; l < k; ++l) ref += static_cast<int64_t>(a[i * k + l]) * b[j * k + l];
        REQUIRE(c[i * n + j] == ref);
      }
  }
}

TEST_CASE("activation quantizers and the W8A8 linear") {
  const int64_t m = 9, k = 160, n = 33;
  std::vector<float> x = random_f32(m * k, 700);
  x[3 * k + 7] = 40.0f;                                    // an outlier token
  std::fill(x.begin() + 5 * k, x.begin() + 6 * k, 0.0f);  // an all-zero token
  x[1] = 2.5f * (3.0f / 127.0f);                          // lands near a rounding tie
  std::vector<int8_t> q(m * k);
  std::vector<float> s(m);
  kc::quantize_per_token_s8(x.data(), q.data(), s.data(), m, k);
  auto rhe = [](double v) {  // round half to even
    const double f = std::floor(v), d = v - f;
    return d > 0.5 ? f + 1 : d < 0.5 ? f : (std::fmod(f, 2.0) == 0 ? f : f + 1);
  };
  for (int64_t t = 0; t < m; ++t) {
    float amax = 0;
    for (int64_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(x[t * k + j]));
    const float ref_s = amax > 0 ? amax / 127.0f : 1.0f;
    REQUIRE(s[t] == ref_s);
    for (int64_t j = 0; j < k; ++j)
      REQUIRE(q[t * k + j] == std::clamp(rhe(x[t * k + j] / ref_s), -127.0, 127.0));
  }
  const float stat = 0.02f;  // clips the outlier
  std::vector<int8_t> qs(m * k);
  kc::quantize_static_s8(x.data(), qs.data(), stat, m * k);
  CHECK(qs[3 * k + 7] == 127);
  for (int64_t i = 0; i < m * k; ++i) REQUIRE(qs[i] == std::clamp(rhe(x[i] / stat), -127.0, 127.0));

  const QuantizedWeight w = random_weight(8, true, n, k, 0, false, 701);
  const std::vector<float> bias = random_f32(n, 702);
  for (const float* act : {static_cast<const float*>(nullptr), &stat}) {
    std::vector<float> y(m * n);
    kc::linear_w8a8(x.data(), w, bias.data(), y.data(), m, act);
    for (int64_t t = 0; t < m; ++t)
      for (int64_t j = 0; j < n; ++j) {
        const std::vector<int8_t>& qx = act ? qs : q;
        const double sx = act ? stat : s[t];
        int64_t acc = 0;
        for (int64_t l = 0; l < k; ++l) acc += static_cast<int64_t>(qx[t * k + l]) * w.q(j, l);
        const double ref = sx * w.scale(j, 0) * static_cast<double>(acc) + bias[j];
        // two f32 products and one sum: a few ulps of the magnitudes involved
        REQUIRE(std::fabs(y[t * n + j] - ref) <= 4 * kEps32 * (std::fabs(ref - bias[j]) + std::fabs(bias[j])) + 1e-30);
      }
  }
  const QuantizedWeight w4 = random_weight(4, true, n, k, 32, false, 703);
  std::vector<float> y(m * n);
  CHECK_THROWS_AS(kc::linear_w8a8(x.data(), w4, nullptr, y.data(), m, nullptr), Error);
  CHECK_THROWS_AS(kc::quantize_static_s8(x.data(), qs.data(), 0.0f, m * k), Error);
}
