// Shared by the compress tests: seeded random weights and activations (with outlier channels and
// correlated inputs), and float64 reference pieces written from the documented conventions.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "runtime/ir/dtype.hpp"

namespace llmc::test {

using Mat = std::vector<double>;  // row-major float64 matrix

inline std::vector<float> randn(int64_t n, uint32_t seed, double sd = 1.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d(0.0, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(d(rng));
  return v;
}

// X [n, cols]: channels mixed through a random banded matrix (so inputs are correlated, as real
// activations are), plus a few outlier channels scaled up by `outlier_gain`.
inline std::vector<float> make_activations(int64_t n, int64_t cols, uint32_t seed, int n_outliers = 4,
                                           double outlier_gain = 20.0, bool correlated = true) {
  std::vector<float> z = randn(n * cols, seed);
  std::vector<float> x(n * cols);
  std::mt19937 rng(seed + 7);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  const int band = correlated ? 6 : 0;
  std::vector<double> mix((2 * band + 1) * cols);
  for (auto& m : mix) m = u(rng);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < cols; ++j) {
      double acc = z[t * cols + j];
      for (int b = -band; b <= band; ++b) {
        const int64_t k = j + b;
        if (b != 0 && k >= 0 && k < cols) acc += 0.6 * mix[(b + band) * cols + j] * z[t * cols + k];
      }
      x[t * cols + j] = static_cast<float>(acc);
    }
  for (int o = 0; o < n_outliers; ++o) {
    const int64_t j = (o * 37 + 11) % cols;
    for (int64_t t = 0; t < n; ++t) x[t * cols + j] *= static_cast<float>(outlier_gain);
  }
  return x;
}

// Σ_t Σ_r (x_t · (w_r − ŵ_r))²: the squared output error of a linear layer on X.
inline double output_error(const std::vector<float>& W, const std::vector<float>& What, const std::vector<float>& X,
                           int64_t rows, int64_t cols) {
  const int64_t n = static_cast<int64_t>(X.size()) / cols;
  double err = 0;
  std::vector<double> d(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) d[j] = static_cast<double>(W[r * cols + j]) - What[r * cols + j];
    for (int64_t t = 0; t < n; ++t) {
      double o = 0;
      for (int64_t j = 0; j < cols; ++j) o += X[t * cols + j] * d[j];
      err += o * o;
    }
  }
  return err;
}

// H = 2·XᵀX / n in float64.
inline Mat hessian_f64(const std::vector<float>& X, int64_t cols) {
  const int64_t n = static_cast<int64_t>(X.size()) / cols;
  Mat H(cols * cols, 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j) H[i * cols + j] += static_cast<double>(X[t * cols + i]) * X[t * cols + j];
  for (double& h : H) h *= 2.0 / static_cast<double>(n);
  return H;
}

// Round half to even, spelled out.
inline double round_half_even(double x) {
  const double f = std::floor(x), frac = x - f;
  if (frac > 0.5) return f + 1;
  if (frac < 0.5) return f;
  return std::fmod(f, 2.0) == 0 ? f : f + 1;
}

// Reference grid (documented in compress/quantizer.hpp): scale via f32 to f16, zero point, codes.
struct RefGrid {
  double scale;
  int zero;
};
inline double ref_f16(double s) {
  if (s == 0) return 1.0;
  uint16_t h = f32_to_f16(static_cast<float>(s));
  if ((h & 0x7fff) == 0) h = 1;
  return f16_to_f32(h);
}
inline RefGrid ref_fit_range(double lo, double hi, int bits, bool sym) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  if (sym) return {ref_f16(std::max(std::fabs(lo), hi) / ((1 << (bits - 1)) - 1)), 0};
  const int qmax = (1 << bits) - 1;
  const double s = ref_f16((hi - lo) / qmax);
  const double z = std::clamp(round_half_even(-lo / s), 0.0, static_cast<double>(qmax));
  return {s, static_cast<int>(z)};
}
inline int ref_quant(double w, const RefGrid& g, int bits, bool sym) {
  const double lo = sym ? -(1 << (bits - 1)) : 0, hi = sym ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
  return static_cast<int>(std::clamp(round_half_even(w / g.scale) + g.zero, lo, hi));
}
inline double ref_deq(int q, const RefGrid& g) { return g.scale * (q - g.zero); }
inline RefGrid ref_fit_values(const std::vector<double>& v, int bits, bool sym) {
  double lo = 0, hi = 0;
  for (double x : v) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  return ref_fit_range(lo, hi, bits, sym);
}

// Upper-triangular U with UᵀU = (H + λI)⁻¹ by the textbook route: Cholesky of H, the inverse by
// solving against the identity, then the upper Cholesky factor of the inverse.
inline Mat ref_inverse_upper(Mat H, int64_t n, double percdamp) {
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += H[i * n + i];
  mean /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) H[i * n + i] += percdamp * mean;
  Mat L(n * n, 0.0);
  for (int64_t j = 0; j < n; ++j) {
    double s = H[j * n + j];
    for (int64_t k = 0; k < j; ++k) s -= L[j * n + k] * L[j * n + k];
    L[j * n + j] = std::sqrt(s);
    for (int64_t i = j + 1; i < n; ++i) {
      double t = H[i * n + j];
      for (int64_t k = 0; k < j; ++k) t -= L[i * n + k] * L[j * n + k];
      L[i * n + j] = t / L[j * n + j];
    }
  }
  Mat inv(n * n, 0.0);
  std::vector<double> y(n);
  for (int64_t c = 0; c < n; ++c) {
    for (int64_t i = 0; i < n; ++i) {  // L y = e_c
      double t = i == c ? 1.0 : 0.0;
      for (int64_t k = 0; k < i; ++k) t -= L[i * n + k] * y[k];
      y[i] = t / L[i * n + i];
    }
    for (int64_t i = n - 1; i >= 0; --i) {  // Lᵀ x = y
      double t = y[i];
      for (int64_t k = i + 1; k < n; ++k) t -= L[k * n + i] * inv[k * n + c];
      inv[i * n + c] = t / L[i * n + i];
    }
  }
  Mat U(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double s = inv[i * n + i];
    for (int64_t k = 0; k < i; ++k) s -= U[k * n + i] * U[k * n + i];
    U[i * n + i] = std::sqrt(s);
    for (int64_t j = i + 1; j < n; ++j) {
      double t = inv[i * n + j];
      for (int64_t k = 0; k < i; ++k) t -= U[k * n + i] * U[k * n + j];
      U[i * n + j] = t / U[i * n + i];
    }
  }
  return U;
}

}  // namespace llmc::test
