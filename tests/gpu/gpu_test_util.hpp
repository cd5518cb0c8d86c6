// Shared by the GPU tests: skipping without a device, seeded random data (f16-rounded where the
// kernels take f16), and the comparison whose tolerance the tests argue from the arithmetic.
#pragma once
#include <cuda_runtime_api.h>
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "runtime/ir/dtype.hpp"
#include "runtime/ir/quantized.hpp"

namespace llmc::test {

// Empty when a CUDA device is usable, else why not (CI has none: the tests print this and pass).
inline std::string gpu_missing_reason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) return std::string("no usable CUDA device: ") + cudaGetErrorString(e);
  if (n == 0) return "no CUDA device";
  return "";
}

#define LLMC_REQUIRE_GPU()                                  \
  do {                                                      \
    const std::string llmc_why_ = ::llmc::test::gpu_missing_reason(); \
    if (!llmc_why_.empty()) {                               \
      MESSAGE("skipped, " << llmc_why_);                    \
      return;                                               \
    }                                                       \
  } while (0)

// Normal(0, 1) values rounded to f16: `bits` for the device, `vals` the same numbers as f32.
struct HalfData {
  std::vector<uint16_t> bits;
  std::vector<float> vals;
};
inline HalfData random_half(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  HalfData h;
  h.bits.resize(n);
  h.vals.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    h.bits[i] = f32_to_f16(d(rng));
    h.vals[i] = f16_to_f32(h.bits[i]);
  }
  return h;
}

inline QuantizedWeight random_quantized(int bits, bool sym, int64_t rows, int64_t cols, int64_t gs, uint32_t seed) {
  std::mt19937 rng(seed);
  QuantizedWeight w = QuantizedWeight::allocate(bits, rows, cols, gs, sym);
  std::uniform_int_distribution<int> qd(w.qmin(), w.qmax()), zd(0, (1 << bits) - 1);
  std::uniform_real_distribution<float> sd(0.002f, 0.05f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) w.set_q(r, c, qd(rng));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < w.n_groups(); ++g) {
      w.scales[r * w.n_groups() + g] = f32_to_f16(sd(rng));
      if (!sym) w.set_zero(r, g, zd(rng));
    }
  return w;
}

// Act-order groups as GPTQ's act-order writes them: the columns taken in a random order, each
// run of group_len of them one group (g_idx[π[j]] = j / group_len; the last group the rest).
inline void set_act_order(QuantizedWeight& w, uint32_t seed) {
  std::vector<int32_t> order(static_cast<size_t>(w.cols));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(seed));
  w.g_idx.assign(static_cast<size_t>(w.cols), 0);
  for (int64_t j = 0; j < w.cols; ++j) w.g_idx[static_cast<size_t>(order[j])] = static_cast<int32_t>(j / w.group_len());
}

// abs_sum[i, j] = Σ_k |x[i, k]·w[j, k]| in float64: the scale of the summation error of output
// (i, j), and what a tolerance on it is measured against.
inline std::vector<double> abs_products(const std::vector<float>& x, const std::vector<float>& w, int64_t m,
                                        int64_t n, int64_t k) {
  std::vector<double> out(m * n);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t c = 0; c < k; ++c) s += std::fabs(static_cast<double>(x[i * k + c]) * w[j * k + c]);
      out[i * n + j] = s;
    }
  return out;
}

// Compares f16 device output against the f32 CPU twin. Per element:
//   |got − ref| ≤ 2⁻¹¹·|ref| (rounding of the output to f16, half an ulp) + rel_sum·Σ|x·w|
//   (summation error of the two f32 accumulations, and weight rounding where the path has it)
//   + 1e-7 (f16 subnormal spacing 6e-8);
// and over the whole output ‖got − ref‖ ≤ 1e-3·‖ref‖. NaN/Inf (e.g. a never-written, poisoned
// element) fails.
inline void check_close(const std::vector<uint16_t>& got_bits, const std::vector<float>& ref,
                        const std::vector<double>& abs_sum, double rel_sum, const std::string& what) {
  REQUIRE(got_bits.size() == ref.size());
  double err2 = 0, ref2 = 0, worst = 0;
  int64_t bad = 0, nonfinite = 0, first_bad = -1;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double g = f16_to_f32(got_bits[i]), r = ref[i];
    if (!std::isfinite(g)) {
      ++nonfinite;
      if (first_bad < 0) first_bad = static_cast<int64_t>(i);
      continue;
    }
    const double d = std::fabs(g - r), tol = std::ldexp(std::fabs(r), -11) + rel_sum * abs_sum[i] + 1e-7;
    err2 += d * d;
    ref2 += r * r;
    worst = std::max(worst, d / tol);
    if (d > tol) {
      ++bad;
      if (first_bad < 0) first_bad = static_cast<int64_t>(i);
    }
  }
  const double rel = std::sqrt(err2 / std::max(ref2, 1e-300));
  INFO(what << ": rel l2 error " << rel << ", worst error/tolerance " << worst << ", first bad index " << first_bad);
  INFO("first bad: got " << (first_bad >= 0 ? f16_to_f32(got_bits[first_bad]) : 0.0f) << ", ref "
                         << (first_bad >= 0 ? ref[first_bad] : 0.0f));
  CHECK(nonfinite == 0);
  CHECK(bad == 0);
  CHECK(rel <= 1e-3);
  CHECK(ref2 > 0);  // a vacuous comparison against all zeros proves nothing
}

}  // namespace llmc::test
