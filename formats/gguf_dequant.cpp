// Dequantization kernels for the GGML block formats, transcribed from ggml-quants.c
// (dequantize_row_q4_0 .. dequantize_row_q6_k); block layouts are ggml-common.h's block_* structs.
#include "formats/gguf_dequant.hpp"

#include <cstring>

#include "runtime/ir/dtype.hpp"
#include "runtime/ir/error.hpp"

namespace llmc::formats {

namespace {

constexpr int64_t kQK = 32;    // QK4_0 = QK4_1 = QK8_0
constexpr int64_t kQK_K = 256;  // super-block size of the K-quants

struct Entry {
  uint32_t id;
  GgmlTypeInfo info;
};

// ggml's type_traits (ggml.c): block size and bytes per block. Layouts we do not dequantize are
// still listed so that a file holding them can be read and bounds-checked.
constexpr Entry kTypes[] = {
    {0, {"F32", 1, 4, true}},          {1, {"F16", 1, 2, true}},
    {2, {"Q4_0", 32, 18, true}},       {3, {"Q4_1", 32, 20, true}},
    {6, {"Q5_0", 32, 22, false}},      {7, {"Q5_1", 32, 24, false}},
    {8, {"Q8_0", 32, 34, true}},       {9, {"Q8_1", 32, 40, false}},
    {10, {"Q2_K", 256, 84, false}},    {11, {"Q3_K", 256, 110, false}},
    {12, {"Q4_K", 256, 144, true}},    {13, {"Q5_K", 256, 176, true}},
    {14, {"Q6_K", 256, 210, true}},    {15, {"Q8_K", 256, 292, false}},
    {16, {"IQ2_XXS", 256, 66, false}}, {17, {"IQ2_XS", 256, 74, false}},
    {18, {"IQ3_XXS", 256, 98, false}}, {19, {"IQ1_S", 256, 50, false}},
    {20, {"IQ4_NL", 32, 18, false}},   {21, {"IQ3_S", 256, 110, false}},
    {22, {"IQ2_S", 256, 82, false}},   {23, {"IQ4_XS", 256, 136, false}},
    {24, {"I8", 1, 1, false}},         {25, {"I16", 1, 2, false}},
    {26, {"I32", 1, 4, false}},        {27, {"I64", 1, 8, false}},
    {28, {"F64", 1, 8, false}},        {29, {"IQ1_M", 256, 56, false}},
    {30, {"BF16", 1, 2, true}},        {34, {"TQ1_0", 256, 54, false}},
    {35, {"TQ2_0", 256, 66, false}},   {39, {"MXFP4", 32, 17, false}},
    {40, {"NVFP4", 64, 36, false}},    {41, {"Q1_0", 128, 18, false}},
};

inline float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// ggml-quants.c get_scale_min_k4: eight 6-bit (scale, min) pairs packed into 12 bytes.
inline void scale_min_k4(int j, const uint8_t* q, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Parallel only when the work pays for waking the team.
constexpr int64_t kParallelBlocks = 256;

// Q4_K/Q5_K: the effective scale and min of sub-blocks `is` and `is + 1`, which share one 64-value
// stretch of the super-block (low nibbles, then high).
struct SubBlockPair {
  float d1, m1, d2, m2;
};
inline SubBlockPair sub_block_pair(int is, const uint8_t* scales, float d, float dmin) {
  int sc1, mn1, sc2, mn2;
  scale_min_k4(is, scales, sc1, mn1);
  scale_min_k4(is + 1, scales, sc2, mn2);
  return {d * static_cast<float>(sc1), dmin * static_cast<float>(mn1), d * static_cast<float>(sc2),
          dmin * static_cast<float>(mn2)};
}

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t type) {
  for (const auto& e : kTypes)
    if (e.id == type) return &e.info;
  return nullptr;
}

std::string ggml_type_name(uint32_t type) {
  const GgmlTypeInfo* t = ggml_type_info(type);
  return t ? std::string(t->name) : "type " + std::to_string(type);
}

void dequantize_f16(const uint8_t* src, float* dst, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelBlocks * kQK_K)
  for (int64_t i = 0; i < n; ++i) dst[i] = half(src + 2 * i);
}

void dequantize_bf16(const uint8_t* src, float* dst, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelBlocks * kQK_K)
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = bf16_to_f32(h);
  }
}

// block_q4_0: f16 d, 16 bytes of nibbles; element j in the low nibble of byte j, j+16 in the high.
void dequantize_q4_0(const uint8_t* src, float* dst, int64_t n) {
  const int64_t nb = n / kQK;
#pragma omp parallel for schedule(static) if (nb > kParallelBlocks)
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* b = src + i * 18;
    const float d = half(b);
    const uint8_t* qs = b + 2;
    float* y = dst + i * kQK;
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((qs[j] & 0xF) - 8) * d;
      y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
  }
}

// block_q4_1: f16 d, f16 m, 16 bytes of nibbles; x = q*d + m.
void dequantize_q4_1(const uint8_t* src, float* dst, int64_t n) {
  const int64_t nb = n / kQK;
#pragma omp parallel for schedule(static) if (nb > kParallelBlocks)
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* b = src + i * 20;
    const float d = half(b), m = half(b + 2);
    const uint8_t* qs = b + 4;
    float* y = dst + i * kQK;
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(qs[j] & 0xF) * d + m;
      y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
    }
  }
}

// block_q8_0: f16 d, 32 int8.
void dequantize_q8_0(const uint8_t* src, float* dst, int64_t n) {
  const int64_t nb = n / kQK;
#pragma omp parallel for schedule(static) if (nb > kParallelBlocks)
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* b = src + i * 34;
    const float d = half(b);
    const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
    float* y = dst + i * kQK;
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(qs[j]) * d;
  }
}

// block_q4_K: f16 d, f16 dmin, 12 bytes of 6-bit (scale, min) for 8 sub-blocks of 32, 128 bytes
// of nibbles (each 32-byte run holds two sub-blocks: low nibbles, then high).
void dequantize_q4_k(const uint8_t* src, float* dst, int64_t n) {
  const int64_t nb = n / kQK_K;
#pragma omp parallel for schedule(static) if (nb > kParallelBlocks / 8)
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* b = src + i * 144;
    const float d = half(b), dmin = half(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* q = b + 16;
    float* y = dst + i * kQK_K;
    for (int j = 0, is = 0; j < kQK_K; j += 64, is += 2, q += 32) {
      const auto [d1, m1, d2, m2] = sub_block_pair(is, scales, d, dmin);
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

// block_q5_K: as Q4_K plus 32 bytes qh whose bit (2k, 2k+1) is the fifth bit of sub-blocks 2k, 2k+1.
void dequantize_q5_k(const uint8_t* src, float* dst, int64_t n) {
  const int64_t nb = n / kQK_K;
#pragma omp parallel for schedule(static) if (nb > kParallelBlocks / 8)
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* b = src + i * 176;
    const float d = half(b), dmin = half(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* ql = b + 48;
    float* y = dst + i * kQK_K;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < kQK_K; j += 64, is += 2, ql += 32) {
      const auto [d1, m1, d2, m2] = sub_block_pair(is, scales, d, dmin);
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  }
}

// block_q6_K: 128 bytes ql (low 4 bits), 64 bytes qh (high 2 bits), 16 int8 scales (one per 16
// elements), f16 d; x = d * scale * (q - 32).
void dequantize_q6_k(const uint8_t* src, float* dst, int64_t n) {
  const int64_t nb = n / kQK_K;
#pragma omp parallel for schedule(static) if (nb > kParallelBlocks / 8)
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* b = src + i * 210;
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    const float d = half(b + 208);
    float* y = dst + i * kQK_K;
    for (int k = 0; k < kQK_K; k += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

void ggml_dequantize(uint32_t type, const void* src, float* dst, int64_t n) {
  const GgmlTypeInfo* t = ggml_type_info(type);
  if (!t || !t->dequantizable)
    throw Error("ggml_dequantize: no dequantizer for " + ggml_type_name(type) + " (id " + std::to_string(type) + ")");
  if (n < 0 || n % t->block_size != 0)
    throw Error("ggml_dequantize: " + std::to_string(n) + " elements is not a whole number of " + t->name +
                " blocks of " + std::to_string(t->block_size));
  const auto* s = static_cast<const uint8_t*>(src);
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::F32: std::memcpy(dst, s, static_cast<size_t>(n) * 4); return;
    case GgmlType::F16: dequantize_f16(s, dst, n); return;
    case GgmlType::BF16: dequantize_bf16(s, dst, n); return;
    case GgmlType::Q4_0: dequantize_q4_0(s, dst, n); return;
    case GgmlType::Q4_1: dequantize_q4_1(s, dst, n); return;
    case GgmlType::Q8_0: dequantize_q8_0(s, dst, n); return;
    case GgmlType::Q4_K: dequantize_q4_k(s, dst, n); return;
    case GgmlType::Q5_K: dequantize_q5_k(s, dst, n); return;
    case GgmlType::Q6_K: dequantize_q6_k(s, dst, n); return;
    default: break;
  }
  throw Error("ggml_dequantize: internal: " + ggml_type_name(type) + " marked dequantizable but not handled",
              ErrorKind::Runtime);
}

}  // namespace llmc::formats
