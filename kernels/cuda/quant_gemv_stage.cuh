// The decode GEMVs' neighbours folded into them (quant_gemv_fused.hpp's GemvPrologue and
// GemvEpilogue), shared by gemv_fused (quant_gemv_fused.cu) and gemv_sparse24_w4 (sparse_gemv.cu):
// staging x[m, 0..Kp) in shared memory from the prologue's input (plain, RMSNorm, SwiGLU), and
// the epilogue's addends (bias, residual) and stores. The kernels differ only in where a vector of
// eight staged inputs goes (`store` below) and in the tile work between the two.
#pragma once
#include <cuda_fp16.h>

#include <cstdint>
#include <string>

#include "kernels/cuda/act_util.cuh"
#include "kernels/cuda/mma_util.cuh"
#include "kernels/cuda/quant_gemv_fused.hpp"
#include "kernels/cuda/quant_gemv_tile.cuh"

namespace llmc::kernels::cuda::detail {

enum Pro : int { kPlain = 0, kRms = 1, kSwiglu = 2 };

// The prologue as the kernels read it.
struct StageArgs {
  const void* in;
  int64_t ld_in, up_col;
  bool in_f32, vec;
  const float* norm_w;
  float eps;
  int m, k, xs_stride;  // tokens, real K, halves per staged row
  const int32_t* scatter;  // act-order: input column j is staged at column scatter[j] (GpuQuantWeight::perm_inv)
};

// The epilogue as the kernels read it: y[m, n] = acc [+ bias[n]] [+ res[m, n]].
struct OutArgs {
  void* y;
  int64_t ldy;
  bool y_f32;
  const float* bias;
  const void* res;
  int64_t ldr;
  bool res_f32;
};

inline int pro_kind(const GemvPrologue& pro) {
  return pro.kind == GemvPrologue::Kind::RmsNorm ? kRms : pro.kind == GemvPrologue::Kind::SwiGLU ? kSwiglu : kPlain;
}

// Checks the prologue and epilogue (errors start with `who`) and flattens them for the kernels.
inline StageArgs stage_args(const GemvPrologue& pro, int64_t m, int64_t k, int64_t xs_stride, const char* who,
                            const int32_t* scatter = nullptr) {
  // Messages built only on failure: this runs on every decode call.
  if (!pro.in.ptr) throw Error(std::string(who) + ": null input");
  if (pro.kind == GemvPrologue::Kind::RmsNorm && !pro.norm_weight)
    throw Error(std::string(who) + ": RMSNorm prologue without its weight");
  if (pro.kind == GemvPrologue::Kind::SwiGLU && pro.in.type != ActType::F16)
    throw Error(std::string(who) + ": the SwiGLU prologue takes f16 gate/up");
  StageArgs a{};
  a.in = pro.in.ptr;
  a.ld_in = pro.in.ld;
  a.up_col = pro.up_col;
  a.in_f32 = pro.in.type == ActType::F32;
  // 16-byte loads of 8 inputs: the view (and up's columns) aligned to them.
  const int64_t align = a.in_f32 ? 4 : 8;
  a.vec = reinterpret_cast<uintptr_t>(pro.in.ptr) % 16 == 0 && pro.in.ld % align == 0 && pro.up_col % align == 0;
  a.norm_w = pro.norm_weight;
  a.eps = pro.eps;
  a.m = static_cast<int>(m);
  a.k = static_cast<int>(k);
  a.xs_stride = static_cast<int>(xs_stride);
  a.scatter = scatter;
  return a;
}

inline OutArgs out_args(const GemvEpilogue& epi, const char* who) {
  if (!epi.y.ptr) throw Error(std::string(who) + ": null output");
  OutArgs o{};
  o.y = epi.y.ptr;
  o.ldy = epi.y.ld;
  o.y_f32 = epi.y.type == ActType::F32;
  o.bias = epi.bias;
  o.res = epi.residual.ptr;
  o.ldr = epi.residual.ld;
  o.res_f32 = epi.residual.type == ActType::F32;
  return o;
}

// The RMSNorm weights of columns c .. c + 7, zero past K.
__device__ __forceinline__ void load_norm8(const StageArgs& p, int c, float (&u)[8]) {
#pragma unroll
  for (int e = 0; e < 8; ++e) u[e] = c + e < p.k ? __ldg(p.norm_w + c + e) : 0.0f;
}

// Eight consecutive inputs of row mm from column c (c a multiple of 8), zero past K; 16-byte
// loads when the host found the view aligned (p.vec).
__device__ __forceinline__ void load8(const StageArgs& p, const void* base, int mm, int c, float (&v)[8]) {
  const int64_t at = mm * p.ld_in + c;
  if (p.vec && c + 8 <= p.k) {
    if (p.in_f32) {
      const float4* q = reinterpret_cast<const float4*>(static_cast<const float*>(base) + at);
      const float4 a = q[0], b = q[1];
      v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    } else {
      const uint4 u = *reinterpret_cast<const uint4*>(static_cast<const __half*>(base) + at);
      const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 f = __half22float2(as_h2(w[e]));
        v[2 * e] = f.x, v[2 * e + 1] = f.y;
      }
    }
    return;
  }
#pragma unroll
  for (int e = 0; e < 8; ++e)
    v[e] = c + e >= p.k ? 0.0f
           : p.in_f32 ? static_cast<const float*>(base)[at + e]
                      : __half2float(static_cast<const __half*>(base)[at + e]);
}

// Act-order (SCATTER): the staged positions of input columns c .. c + 7 (p.scatter, −1 past K),
// loaded beside the inputs themselves, which are read in their own order (coalesced, 16 bytes at
// a time) and written to shared memory one by one where the kernel's fragments expect them. A
// gather from global memory instead (staged column c read from input column perm[c]) cost 2.9 µs
// per linear of a TinyLlama decode step on an H100 (up to 32 sectors per load instruction).
template <bool SCATTER>
__device__ __forceinline__ void load_pos8(const StageArgs& p, int c, int (&pos)[8]) {
  if constexpr (SCATTER) load_perm8(p.scatter, p.k, c, pos);
}

// Puts the eight staged inputs (four half2 words h) of input columns c .. c + 7 into the staged
// row: at c .. c + 7 through store() without act-order, else each at its position pos[e] (a column
// past K at itself: the padding stays zero).
template <bool SCATTER, class Store>
__device__ __forceinline__ void put8(Store& store, __half* row, int c, const uint32_t (&h)[4], const int (&pos)[8]) {
  if constexpr (SCATTER) {
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const __half2 two = as_h2(h[e / 2]);
      row[pos[e] >= 0 ? pos[e] : c + e] = e % 2 ? __high2half(two) : __low2half(two);
    }
  } else {
    store(row, c, h);
  }
}

// x[0..m, 0..kp) into shared memory (f16, zero past K), from the prologue's input;
// store(row, c, h) puts the eight inputs c .. c + 7 (four half2 words h) of a staged row where the
// kernel's fragments read them. Every load of a round (kRound vectors of 8 per thread) is issued
// before any is used: staging costs about one L2 round trip per round (two for RMSNorm: the
// statistics first, except for one token whose row fits one round), not one per element.
// red, inv: [16] floats (W ≤ 16). SCATTER (act-order, a template argument so that kernels without
// act-order keep their code and registers): input column j goes to staged column p.scatter[j].
template <int PRO, int kRound, int W, int kStat = kRound, bool SCATTER = false, class Store>
__device__ __forceinline__ void stage(const StageArgs& p, int kp, __half* xs, float* red, float* inv, Store store) {
  constexpr int kThreads = W * 32;
  const int vpr = kp / 8, total = p.m * vpr;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if constexpr (PRO == kRms) {
    // One token whose row fits one round (decode): the row stays in registers between the
    // statistics and the scaling, so staging costs one L2 round trip instead of two, and every
    // thread adds the warps' sums itself instead of waiting at a second barrier. The general
    // path below adds the squares in another order, so the two may differ in the last bits of
    // the norm (both are checked against the host's RMSNorm).
    if (p.m == 1 && vpr <= kThreads * kRound) {
      float x[kRound][8], u[kRound][8];
      int pos[kRound][8];
#pragma unroll
      for (int r = 0; r < kRound; ++r) {
        const int v = threadIdx.x + r * kThreads;
        if (v < vpr) {
          load8(p, p.in, 0, v * 8, x[r]);
          load_norm8(p, v * 8, u[r]);
          load_pos8<SCATTER>(p, v * 8, pos[r]);
        }
      }
      float s = 0;
#pragma unroll
      for (int r = 0; r < kRound; ++r)
        if (threadIdx.x + r * kThreads < vpr)
#pragma unroll
          for (int e = 0; e < 8; ++e) s += x[r][e] * x[r][e];
      s = warp_sum(s);
      if (lane == 0) red[warp] = s;
      __syncthreads();
      float t = 0;
#pragma unroll
      for (int w = 0; w < W; ++w) t += red[w];
      const float iv = rsqrtf(t / p.k + p.eps);
#pragma unroll
      for (int r = 0; r < kRound; ++r) {
        const int v = threadIdx.x + r * kThreads;
        if (v >= vpr) break;
        uint32_t h[4];
#pragma unroll
        for (int e = 0; e < 8; e += 2)
          h[e / 2] = as_u32(__floats2half2_rn(x[r][e] * iv * u[r][e], x[r][e + 1] * iv * u[r][e + 1]));
        put8<SCATTER>(store, xs, v * 8, h, pos[r]);
      }
      return;
    }
    // The general case: S = W / m warps per token (1 from m = W on), each a segment of the row
    // with kStat vectors per lane in flight at a time (the registers of the scaling pass below),
    // so the statistics cost about one L2 round trip per 32·S·kStat vectors and token of a warp
    // (K = 2048, 16 tokens on 16 warps, kStat = 4: 2 round trips; the order before this took one
    // per token of the block). The segments' sums add in segment order: deterministic.
    const int S = p.m >= W ? 1 : W / p.m, seg = warp % S;
    for (int mm = warp / S; mm < p.m; mm += W / S) {
      float s = 0;
      for (int v0 = seg * 32 + lane; v0 < vpr; v0 += 32 * S * kStat) {
        float x[kStat][8];
#pragma unroll
        for (int r = 0; r < kStat; ++r)
          if (v0 + r * 32 * S < vpr) load8(p, p.in, mm, (v0 + r * 32 * S) * 8, x[r]);
#pragma unroll
        for (int r = 0; r < kStat; ++r)
          if (v0 + r * 32 * S < vpr)
#pragma unroll
            for (int e = 0; e < 8; ++e) s += x[r][e] * x[r][e];
      }
      s = warp_sum(s);
      if (lane == 0) red[mm * S + seg] = s;
    }
    __syncthreads();
    if (threadIdx.x < p.m) {
      float t = 0;
      for (int j = 0; j < S; ++j) t += red[threadIdx.x * S + j];
      inv[threadIdx.x] = rsqrtf(t / p.k + p.eps);
    }
    __syncthreads();
    // Scaling, column-major: a thread keeps one vector's norm weights and scales that column of
    // kTok tokens per round; where a row has fewer vectors than the block has threads, `groups`
    // threads share a column, each a different set of tokens. Every round trip then carries
    // kTok·8 inputs per thread and the weights come once (K = 2048, 16 tokens, 16 warps: 2 rounds
    // at kTok = 4; 4 in the row-major order of the other prologues below, which would load the
    // weights per vector). kTok keeps x and the weights in about the registers of 2·kStat vectors.
    constexpr int kTok = kStat == kRound ? 2 * kRound - 1 : kStat;
    const int groups = vpr < kThreads ? kThreads / vpr : 1, gi = vpr < kThreads ? threadIdx.x / vpr : 0;
    if (gi >= groups) return;  // threads past groups·vpr: nothing to stage
    for (int v = threadIdx.x - gi * vpr; v < vpr; v += kThreads) {
      const int c = v * 8;
      float u[8];
      int pos[8];
      load_norm8(p, c, u);
      load_pos8<SCATTER>(p, c, pos);
      for (int m0 = gi * kTok; m0 < p.m; m0 += groups * kTok) {
        float x[kTok][8];
#pragma unroll
        for (int r = 0; r < kTok; ++r)
          if (m0 + r < p.m) load8(p, p.in, m0 + r, c, x[r]);
#pragma unroll
        for (int r = 0; r < kTok; ++r) {
          if (m0 + r >= p.m) break;
          const float iv = inv[m0 + r];
          uint32_t h[4];
#pragma unroll
          for (int e = 0; e < 8; e += 2)  // zero past K: x and the weight are
            h[e / 2] = as_u32(__floats2half2_rn(x[r][e] * iv * u[e], x[r][e + 1] * iv * u[e + 1]));
          put8<SCATTER>(store, xs + (m0 + r) * p.xs_stride, c, h, pos);
        }
      }
    }
    return;
  } else {
    for (int i0 = threadIdx.x; i0 < total; i0 += kThreads * kRound) {
      float x[kRound][8], u[PRO == kPlain ? 1 : kRound][8];  // u: up (SwiGLU)
      int pos[kRound][8];
#pragma unroll
      for (int r = 0; r < kRound; ++r) {
        const int i = i0 + r * kThreads;
        if (i < total) {
          const int mm = i / vpr, c = (i - mm * vpr) * 8;
          load8(p, p.in, mm, c, x[r]);
          if constexpr (PRO == kSwiglu) load8(p, static_cast<const __half*>(p.in) + p.up_col, mm, c, u[r]);
          load_pos8<SCATTER>(p, c, pos[r]);
        }
      }
#pragma unroll
      for (int r = 0; r < kRound; ++r) {
        const int i = i0 + r * kThreads;
        if (i >= total) break;
        const int mm = i / vpr, c = (i - mm * vpr) * 8;
        uint32_t h[4];
#pragma unroll
        for (int e = 0; e < 8; e += 2) {
          float a = x[r][e], b = x[r][e + 1];
          if constexpr (PRO == kSwiglu) {
            // fast exp and reciprocal: a few f32 ulps, far below the f16 rounding of the result
            a = __fdividef(a, 1.0f + __expf(-a)) * u[r][e];
            b = __fdividef(b, 1.0f + __expf(-b)) * u[r][e + 1];
          }
          h[e / 2] = as_u32(__floats2half2_rn(a, b));
        }
        put8<SCATTER>(store, xs + mm * p.xs_stride, c, h, pos[r]);
      }
    }
  }
}

// The plain prologue's f16 input copied as it is into rows of xs (xs_stride halves apart, zero
// past K) through cp.async: every copy of the block in flight at once, one L2 round trip whatever
// m is (16 tokens of 2048 inputs are 8 vectors per thread of 16 warps, 4 rounds of stage()'s
// register path). Needs an f16 input aligned for 16-byte loads (p.vec), no act-order
// scatter, and a kernel that reads x in its original column order; the caller's barrier
// follows.
template <int W>
__device__ __forceinline__ void stage_copy(const StageArgs& p, int kp, __half* xs) {
  const int vpr = kp / 8, total = p.m * vpr;
  const __half* in = static_cast<const __half*>(p.in);
  for (int i = threadIdx.x; i < total; i += W * 32) {
    const int mm = i / vpr, c = (i - mm * vpr) * 8;
    const int bytes = min(max(p.k - c, 0), 8) * 2;  // the inputs inside K; zeros after them
    cp_async16(xs + mm * p.xs_stride + c, bytes ? in + mm * p.ld_in + c : in, bytes);
  }
  cp_async_wait_all();
}

// The outputs of tile t this lane holds in the C fragments: c0, c1 → (row g, tokens
// 8·nt + 2·tig + {0, 1}), c2, c3 → row g + 8; f(nt, e, token, row) for those inside [m, n).
template <int NT, class F>
__device__ __forceinline__ void for_tile_outputs(int m, int n, int t, int g, int tig, F&& f) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int mm = nt * 8 + 2 * tig + (e & 1), row = t * 16 + g + (e >> 1) * 8;
      if (mm < m && row < n) f(nt, e, mm, row);
    }
}

// The epilogue's addends of this lane's outputs (bias, residual); zero where none.
template <int NT>
__device__ __forceinline__ void load_addends(const OutArgs& o, float (&add)[NT][4], int m, int n, int t, int g,
                                             int tig) {
  if (!(o.bias || o.res)) return;
  for_tile_outputs<NT>(m, n, t, g, tig, [&](int nt, int e, int mm, int row) {
    if (o.bias) add[nt][e] = __ldg(o.bias + row);
    if (o.res) {
      const int64_t r = mm * o.ldr + row;
      add[nt][e] += o.res_f32 ? static_cast<const float*>(o.res)[r] : __half2float(static_cast<const __half*>(o.res)[r]);
    }
  });
}

// y = acc + add for this lane's outputs, stored as y's type.
template <int NT>
__device__ __forceinline__ void store_outputs(const OutArgs& o, const float (&acc)[NT][4], const float (&add)[NT][4],
                                              int m, int n, int t, int g, int tig) {
  for_tile_outputs<NT>(m, n, t, g, tig, [&](int nt, int e, int mm, int row) {
    const float v = acc[nt][e] + add[nt][e];
    const int64_t at = mm * o.ldy + row;
    if (o.y_f32)
      static_cast<float*>(o.y)[at] = v;
    else
      static_cast<__half*>(o.y)[at] = __float2half_rn(v);
  });
}

}  // namespace llmc::kernels::cuda::detail
