// Device pieces shared by the quantized GEMV kernels (quant_gemv.cu: split-K across blocks;
// quant_gemv_fused.cu and sparse_gemv.cu: K split across the warps of one block): the weight view,
// the act-order permutation's column indices, the prefetched batch of fragment chunks with their
// scales, the tensor-core work on one chunk, the in-block K reduction and the f16 store of a
// tile's outputs.
#pragma once
#include <cuda_fp16.h>

#include "kernels/cuda/mma_util.cuh"
#include "kernels/cuda/quant_gemv.hpp"

namespace llmc::kernels::cuda::detail {

constexpr int kGemvPrefetch = 4;  // chunks per batch; two batches in flight (double buffer)

// A repacked weight (quant_gemv.hpp's fragment layout) as the kernels see it.
struct QWeightView {
  const uint4* packed;
  const __half2* scales;
  const uchar2* zeros;
  int tiles, chunks, n_groups;
  GroupIndex groups;  // k32 → group: k32 >> shift, or with shift −1 umulhi(k32, magic) (quant_gemv.hpp)
};

inline QWeightView weight_view(const GpuQuantWeight& w) {
  const GemvLayout& l = w.layout();
  QWeightView v{};
  v.packed = reinterpret_cast<const uint4*>(w.packed());
  v.scales = reinterpret_cast<const __half2*>(w.scales());
  v.zeros = reinterpret_cast<const uchar2*>(w.zeros());
  v.tiles = static_cast<int>(l.tiles);
  v.chunks = static_cast<int>(l.chunks);
  v.n_groups = static_cast<int>(l.n_groups);
  v.groups = l.groups;
  return v;
}

// The group of 32-column block k32: a select between a shift and a multiply-high, no branch.
__device__ __forceinline__ int group_of(const QWeightView& w, int k32) {
  const int g = w.groups.shift >= 0 ? (k32 >> w.groups.shift)
                                    : static_cast<int>(__umulhi(static_cast<unsigned>(k32), w.groups.magic));
  return min(g, w.n_groups - 1);  // k32 blocks of column padding reuse the last group
}

// Entries c .. c + 7 (c a multiple of 8) of an act-order column permutation of K columns
// (GpuQuantWeight::perm or perm_inv), −1 past K.
__device__ __forceinline__ void load_perm8(const int32_t* perm, int k, int c, int (&col)[8]) {
  if (c + 8 <= k) {  // perm is a device allocation (256-byte aligned) and c a multiple of 8
    const int4 a = __ldg(reinterpret_cast<const int4*>(perm + c)), b = __ldg(reinterpret_cast<const int4*>(perm + c) + 1);
    col[0] = a.x, col[1] = a.y, col[2] = a.z, col[3] = a.w, col[4] = b.x, col[5] = b.y, col[6] = b.z, col[7] = b.w;
    return;
  }
#pragma unroll
  for (int e = 0; e < 8; ++e) col[e] = c + e < k ? __ldg(perm + c + e) : -1;
}

// kGemvPrefetch consecutive chunks of one 16-row tile: one 16-byte load per lane each, plus the
// group scales (and zero points) of rows g and g + 8 for each 32-column block.
template <int BITS, bool ASYM>
struct Batch {
  static constexpr int kSub = BITS == 4 ? 2 : 1;  // k32 blocks per chunk
  uint4 q[kGemvPrefetch];
  __half2 s[kGemvPrefetch][kSub];
  uchar2 z[kGemvPrefetch][ASYM ? kSub : 1];

  // Chunks cb .. cb + kGemvPrefetch − 1 below c1; wp points at this lane's 16 bytes of chunk 0.
  __device__ __forceinline__ void load(const QWeightView& w, const uint4* wp, int t, int g, int cb, int c1) {
#pragma unroll
    for (int i = 0; i < kGemvPrefetch; ++i) {
      const int c = cb + i;
      if (c < c1) {
        q[i] = load_stream(wp + static_cast<size_t>(c) * 32);
#pragma unroll
        for (int sb = 0; sb < kSub; ++sb) {
          const int idx = (group_of(w, c * kSub + sb) * w.tiles + t) * 8 + g;
          s[i][sb] = __ldg(w.scales + idx);
          if constexpr (ASYM) z[i][sb] = __ldg(w.zeros + idx);
        }
      }
    }
  }
};

// acc[nt] += Ŵ(tile, chunk) · x for prefetched chunk i of `b`. xr[nt] points at this lane's
// 8 activations of token row (8·nt + g) at the chunk's first column (+ tig·8), in shared memory.
template <int BITS, int NT, bool ASYM>
__device__ __forceinline__ void chunk_mma(const Batch<BITS, ASYM>& b, int i, const __half* const (&xr)[NT],
                                          float (&acc)[NT][4]) {
  constexpr int kSub = Batch<BITS, ASYM>::kSub;
  const uint32_t wv[4] = {b.q[i].x, b.q[i].y, b.q[i].z, b.q[i].w};
#pragma unroll
  for (int sb = 0; sb < kSub; ++sb) {
    uint4 xf[NT];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) xf[nt] = *reinterpret_cast<const uint4*>(xr[nt] + sb * 32);
    // 1024 + zero point of rows g and g + 8; INT4 high nibbles arrive as 1024 + 16·v and
    // become v − z as (1024 + 16·v)/16 − (64 + z).
    __half2 sub_g, sub_g8, add_g8;
    if constexpr (ASYM) {
      sub_g = __float2half2_rn(1024.0f + b.z[i][sb].x);
      sub_g8 = __float2half2_rn(1024.0f + b.z[i][sb].y);
      add_g8 = __float2half2_rn(-64.0f - b.z[i][sb].y);
    } else {
      sub_g = sub_g8 = __float2half2_rn(BITS == 4 ? 1032.0f : 1152.0f);
      add_g8 = __float2half2_rn(-72.0f);
    }
    float part[NT][4] = {};
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      uint32_t a[4];
      if constexpr (BITS == 4) {
        dequant_w4(wv[sb * 2 + h], sub_g, add_g8, a);
      } else {
        dequant_w8(wv[2 * h], wv[2 * h + 1], sub_g, sub_g8, a);
      }
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) mma_16816(part[nt], a, h ? xf[nt].z : xf[nt].x, h ? xf[nt].w : xf[nt].y);
    }
    // group scale applied to the f32 partial sum: Σ s·(q − z)·x = s·Σ (q − z)·x
    const float2 sf = __half22float2(b.s[i][sb]);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      acc[nt][0] += sf.x * part[nt][0];
      acc[nt][1] += sf.x * part[nt][1];
      acc[nt][2] += sf.y * part[nt][2];
      acc[nt][3] += sf.y * part[nt][3];
    }
  }
}

// The wpt warps of a tile (ks = 0 .. wpt − 1, consecutive warps) add their K ranges' partial sums
// through part ([warp][NT·4][32] floats) in fixed order, so the result is deterministic. Every
// thread of the block must call it (it holds a barrier); returns false for the warps that handed
// their sums to ks = 0, which holds the tile's total in acc afterwards.
template <int NT>
__device__ __forceinline__ bool add_tile_partials(float (&acc)[NT][4], float* part, int warp, int lane, int ks,
                                                  int wpt) {
  if (wpt == 1) return true;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) part[(warp * NT * 4 + nt * 4 + e) * 32 + lane] = acc[nt][e];
  __syncthreads();
  if (ks != 0) return false;
  for (int o = 1; o < wpt; ++o)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[nt][e] += part[((warp + o) * NT * 4 + nt * 4 + e) * 32 + lane];
  return true;
}

// Tile t's outputs y[m, n] (f16, row-major) from the C fragments: c0, c1 → (row g, tokens
// 8·nt + 2·tig + {0, 1}), c2, c3 → row g + 8; rows ≥ n and tokens ≥ m are not written.
template <int NT>
__device__ __forceinline__ void store_tile_f16(const float (&acc)[NT][4], __half* y, int m, int n, int t, int g,
                                               int tig) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int mm = nt * 8 + 2 * tig + (e & 1), row = t * 16 + g + (e >> 1) * 8;
      if (mm < m && row < n) y[static_cast<size_t>(mm) * n + row] = __float2half_rn(acc[nt][e]);
    }
}

}  // namespace llmc::kernels::cuda::detail
