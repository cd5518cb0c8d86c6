#include "kernels/cpu/quant_gemm.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <Eigen/Core>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace llmc::kernels::cpu {

namespace {

using RowMatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Stored code at flat index i: the int8 value for symmetric INT8, the unsigned code otherwise.
inline int code_at(const QuantizedWeight& w, int64_t i) {
  if (w.bits == 8) return w.symmetric ? static_cast<int8_t>(w.packed[i]) : w.packed[i];
  return (w.packed[i >> 1] >> ((i & 1) << 2)) & 0xf;
}

// The value a code is measured from: symmetric INT4 stores q + 8.
inline int code_zero(const QuantizedWeight& w, int64_t r, int64_t g) {
  if (w.symmetric) return w.bits == 4 ? 8 : 0;
  return w.zero(r, g);
}

// Σ x[i]·code[idx + i] over len values; eight partial sums so that the compiler can vectorise.
// xe/xo, when given, hold x's even and odd elements (INT4 with idx and len even): low nibbles
// pair with xe and high nibbles with xo, so both streams are contiguous.
float dot_codes(const QuantizedWeight& w, int64_t idx, int64_t len, const float* x, const float* xe, const float* xo) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  const uint8_t* p = w.packed.data();
  if (w.bits == 8 && w.symmetric) {
    const int8_t* q = reinterpret_cast<const int8_t*>(p) + idx;
    for (; i + 8 <= len; i += 8)
      for (int l = 0; l < 8; ++l) acc[l] += x[i + l] * static_cast<float>(q[i + l]);
  } else if (w.bits == 8) {
    const uint8_t* q = p + idx;
    for (; i + 8 <= len; i += 8)
      for (int l = 0; l < 8; ++l) acc[l] += x[i + l] * static_cast<float>(q[i + l]);
  } else if (xe) {
    const uint8_t* q = p + idx / 2;
    const int64_t nb = len / 2;
    int64_t b = 0;
#if defined(__AVX2__) && defined(__FMA__)
    // GCC does not vectorise the nibble split on its own: 8 bytes → 8 low and 8 high codes
    __m256 lo_acc = _mm256_setzero_ps(), hi_acc = _mm256_setzero_ps();
    const __m256i mask = _mm256_set1_epi32(0xf);
    for (; b + 8 <= nb; b += 8) {
      const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + b)));
      lo_acc = _mm256_fmadd_ps(_mm256_loadu_ps(xe + b), _mm256_cvtepi32_ps(_mm256_and_si256(v, mask)), lo_acc);
      hi_acc = _mm256_fmadd_ps(_mm256_loadu_ps(xo + b), _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4)), hi_acc);
    }
    _mm256_storeu_ps(acc, _mm256_add_ps(lo_acc, hi_acc));
#endif
    for (; b < nb; ++b) {
      acc[b % 8] += xe[b] * static_cast<float>(q[b] & 0xf);
      acc[b % 8] += xo[b] * static_cast<float>(q[b] >> 4);
    }
    i = len;
  }
  for (; i < len; ++i) acc[0] += x[i] * static_cast<float>(code_at(w, idx + i));
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Row r of Ŵ into out[cols].
void dequant_row(const QuantizedWeight& w, int64_t r, float* out) {
  const int64_t k = w.cols, ng = w.n_groups(), base = r * k;
  if (!w.g_idx.empty()) {
    for (int64_t c = 0; c < k; ++c) {
      const int64_t g = w.g_idx[c];
      out[c] = w.scale(r, g) * static_cast<float>(code_at(w, base + c) - code_zero(w, r, g));
    }
    return;
  }
  for (int64_t g = 0; g < ng; ++g) {
    const float s = w.scale(r, g);
    const int z = code_zero(w, r, g);
    for (int64_t c = w.group_begin(g); c < w.group_end(g); ++c) out[c] = s * static_cast<float>(code_at(w, base + c) - z);
  }
}

}  // namespace

void linear_quantized(const float* x, const QuantizedWeight& w, const float* bias, float* y, int64_t m) {
  const int64_t n = w.rows, k = w.cols;
  check(w.bits == 4 || w.bits == 8, "linear_quantized: bits must be 4 or 8");
  if (m == 1 && w.g_idx.empty()) {
    // per group: s·(Σ x·code − z·Σ x); the group sums of x are shared by every row
    // (the last group may be shorter: group_end clips it to k)
    const int64_t gl = w.group_len(), ng = w.n_groups();
    std::vector<float> xsum(ng, 0.0f);
    for (int64_t g = 0; g < ng; ++g)
      for (int64_t c = w.group_begin(g); c < w.group_end(g); ++c) xsum[g] += x[c];
    // even k and group length: every group starts and ends on a byte boundary of every row
    const bool split = w.bits == 4 && k % 2 == 0 && gl % 2 == 0;
    std::vector<float> xe(split ? k / 2 : 0), xo(split ? k / 2 : 0);
    for (int64_t i = 0; i < static_cast<int64_t>(xe.size()); ++i) xe[i] = x[2 * i], xo[i] = x[2 * i + 1];
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0;
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t c0 = w.group_begin(g), len = w.group_end(g) - c0;
        acc += w.scale(j, g) * (dot_codes(w, j * k + c0, len, x + c0, split ? &xe[c0 / 2] : nullptr,
                                          split ? &xo[c0 / 2] : nullptr) -
                                static_cast<float>(code_zero(w, j, g)) * xsum[g]);
      }
      y[j] = acc + (bias ? bias[j] : 0.0f);
    }
    return;
  }
  constexpr int64_t kTile = 32;
  const int64_t tiles = (n + kTile - 1) / kTile;
  Eigen::Map<const RowMatF> X(x, m, k);
#pragma omp parallel
  {
    RowMatF T(kTile, k);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t j0 = t * kTile, nr = std::min(kTile, n - j0);
      for (int64_t j = 0; j < nr; ++j) dequant_row(w, j0 + j, T.row(j).data());
      Eigen::Map<RowMatF, 0, Eigen::OuterStride<>> Y(y + j0, m, nr, Eigen::OuterStride<>(n));
      Y.noalias() = X * T.topRows(nr).transpose();
      if (bias)
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < nr; ++j) Y(i, j) += bias[j0 + j];
    }
  }
}

void gemm_s8s8s32(const int8_t* a, const int8_t* b, int32_t* c, int64_t m, int64_t n, int64_t k) {
#pragma omp parallel for schedule(static) collapse(2) if (m * n * k > 65536)
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const int8_t* ar = a + i * k;
      const int8_t* br = b + j * k;
      int32_t acc = 0;
      for (int64_t l = 0; l < k; ++l) acc += static_cast<int32_t>(static_cast<int16_t>(ar[l]) * br[l]);
      c[i * n + j] = acc;
    }
}

void quantize_static_s8(const float* x, int8_t* q, float scale, int64_t n) {
  check(std::isfinite(scale) && scale > 0, "quantize_static_s8: activation scale must be finite and positive");
  for (int64_t i = 0; i < n; ++i)
    q[i] = static_cast<int8_t>(std::clamp(std::nearbyint(x[i] / scale), -127.0f, 127.0f));
}

void quantize_per_token_s8(const float* x, int8_t* q, float* scales, int64_t m, int64_t k) {
  for (int64_t t = 0; t < m; ++t) {
    float amax = 0;
    for (int64_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(x[t * k + j]));
    scales[t] = amax > 0 ? amax / 127.0f : 1.0f;
    quantize_static_s8(x + t * k, q + t * k, scales[t], k);
  }
}

void linear_w8a8(const float* x, const QuantizedWeight& w, const float* bias, float* y, int64_t m,
                 const float* act_scale) {
  check(w.bits == 8 && w.symmetric && w.n_groups() == 1 && w.g_idx.empty(),
        "linear_w8a8: the weight must be INT8, symmetric, per channel");
  const int64_t n = w.rows, k = w.cols;
  std::vector<int8_t> qx(m * k);
  std::vector<float> sx(m);
  if (act_scale) {
    quantize_static_s8(x, qx.data(), *act_scale, m * k);
    std::fill(sx.begin(), sx.end(), *act_scale);
  } else {
    quantize_per_token_s8(x, qx.data(), sx.data(), m, k);
  }
  std::vector<int32_t> acc(m * n);
  gemm_s8s8s32(qx.data(), reinterpret_cast<const int8_t*>(w.packed.data()), acc.data(), m, n, k);
  for (int64_t t = 0; t < m; ++t)
    for (int64_t j = 0; j < n; ++j)
      y[t * n + j] = sx[t] * w.scale(j, 0) * static_cast<float>(acc[t * n + j]) + (bias ? bias[j] : 0.0f);
}

}  // namespace llmc::kernels::cpu
