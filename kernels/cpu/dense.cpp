#include "kernels/cpu/dense.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <Eigen/Core>

namespace llmc::kernels::cpu {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapC = Eigen::Map<const RowMat>;
using Map = Eigen::Map<RowMat>;

void linear_f32(const float* x, const float* w, const float* bias, float* y, int64_t m, int64_t n, int64_t k) {
  Map Y(y, m, n);
  MapC X(x, m, k), W(w, n, k);
  if (m == 1) {
    // GEMV: rows of W in parallel, each a contiguous dot product (bandwidth bound)
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; ++j) {
      Eigen::Map<const Eigen::VectorXf> wr(w + j * k, k), xr(x, k);
      y[j] = wr.dot(xr) + (bias ? bias[j] : 0.0f);
    }
    return;
  }
  Y.noalias() = X * W.transpose();
  if (bias) Y.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias, n);
}

void matmul_f32(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k, bool accumulate) {
  Map C(c, m, n);
  MapC A(a, m, k), B(b, k, n);
  if (accumulate)
    C.noalias() += A * B;
  else
    C.noalias() = A * B;
}

void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t d, float eps) {
#pragma omp parallel for schedule(static) if (rows > 4)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    double ss = 0;
    for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    float inv = static_cast<float>(1.0 / std::sqrt(ss / d + eps));
    for (int64_t i = 0; i < d; ++i) y[r * d + i] = xr[i] * inv * w[i];
  }
}

void layer_norm(const float* x, const float* w, const float* b, float* y, int64_t rows, int64_t d, float eps) {
#pragma omp parallel for schedule(static) if (rows > 4)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < d; ++i) mean += xr[i];
    mean /= d;
    for (int64_t i = 0; i < d; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= d;
    float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
    for (int64_t i = 0; i < d; ++i)
      y[r * d + i] = static_cast<float>(xr[i] - mean) * inv * w[i] + (b ? b[i] : 0.0f);
  }
}

void rotary(float* x, int64_t tokens, int64_t heads, int64_t head_dim, int64_t rot_dim, int64_t pos0, double theta,
            bool neox) {
  const int64_t half = rot_dim / 2;
  std::vector<double> inv_freq(half);
  // HF computes the frequencies in f32: 1 / theta^(2i/rot)
  for (int64_t i = 0; i < half; ++i)
    inv_freq[i] = static_cast<float>(1.0 / std::pow(theta, static_cast<double>(2 * i) / rot_dim));
  for (int64_t t = 0; t < tokens; ++t) {
    const float pos = static_cast<float>(pos0 + t);
    for (int64_t i = 0; i < half; ++i) {
      float ang = pos * static_cast<float>(inv_freq[i]);
      float c = std::cos(ang), s = std::sin(ang);
      for (int64_t h = 0; h < heads; ++h) {
        float* xh = x + (t * heads + h) * head_dim;
        int64_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        float x0 = xh[a], x1 = xh[b];
        xh[a] = x0 * c - x1 * s;
        xh[b] = x1 * c + x0 * s;
      }
    }
  }
}

void attention(const float* q, const float* k, const float* v, float* out, int64_t t, int64_t s, int64_t hq,
               int64_t hkv, int64_t d, float scale, bool causal) {
  const int64_t group = hq / hkv;
#pragma omp parallel
  {
    std::vector<float> p(s);
#pragma omp for collapse(2) schedule(static)
    for (int64_t h = 0; h < hq; ++h) {
      for (int64_t i = 0; i < t; ++i) {
        const int64_t kvh = h / group;
        const int64_t last = causal ? s - t + i : s - 1;
        const float* qi = q + (i * hq + h) * d;
        float mx = -INFINITY;
        for (int64_t j = 0; j <= last; ++j) {
          const float* kj = k + (j * hkv + kvh) * d;
          float dot = 0;
          for (int64_t e = 0; e < d; ++e) dot += qi[e] * kj[e];
          p[j] = dot * scale;
          mx = std::max(mx, p[j]);
        }
        float sum = 0;
        for (int64_t j = 0; j <= last; ++j) {
          p[j] = std::exp(p[j] - mx);
          sum += p[j];
        }
        float* o = out + (i * hq + h) * d;
        std::fill(o, o + d, 0.0f);
        for (int64_t j = 0; j <= last; ++j) {
          const float* vj = v + (j * hkv + kvh) * d;
          const float pj = p[j] / sum;
          for (int64_t e = 0; e < d; ++e) o[e] += pj * vj[e];
        }
      }
    }
  }
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void gelu(const float* x, float* y, int64_t n, bool tanh_approx) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    y[i] = tanh_approx ? 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)))
                       : 0.5f * v * (1.0f + std::erf(v * 0.7071067811865476f));
  }
}

void softmax_rows(float* x, int64_t rows, int64_t d) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * d;
    float mx = *std::max_element(xr, xr + d), sum = 0;
    for (int64_t i = 0; i < d; ++i) sum += (xr[i] = std::exp(xr[i] - mx));
    for (int64_t i = 0; i < d; ++i) xr[i] /= sum;
  }
}

}  // namespace llmc::kernels::cpu
