// The fused decode GEMV (quant_gemv_fused.hpp). Each block of W warps (8 or 16) owns `tpb` 16-row
// tiles; the W/tpb warps of a tile split its K range and add their tensor-core partial sums in shared memory,
// so one launch does the whole product with no global workspace, arrival counter or second pass
// (the fixed cost that dominates gemv_quantized at 2-12 MB, docs/perf/cuda.md). The block stages
// all of x (m·K f16) once, producing it from the prologue's input on the way.
#include <cuda_fp16.h>

#include <string>

#include "kernels/cuda/act_util.cuh"
#include "kernels/cuda/quant_gemv_fused.hpp"
#include "kernels/cuda/quant_gemv_tile.cuh"

namespace llmc::kernels::cuda {

namespace {

using namespace detail;

constexpr size_t kMaxStageBytes = 96 * 1024;
enum Pro : int { kPlain = 0, kRms = 1, kSwiglu = 2 };

struct FusedArgs {
  QWeightView w;
  int m, n, k;
  int tpb, wpt, cpw, xs_stride;
  const void* in;
  int64_t ld_in, up_col;
  bool in_f32, vec;
  const float* norm_w;
  float eps;
  void* y;
  int64_t ldy;
  bool y_f32;
  const float* bias;
  const void* res;
  int64_t ldr;
  bool res_f32;
};

// Eight consecutive inputs of row mm from column c (c a multiple of 8), zero past K; 16-byte
// loads when the host found the view aligned (p.vec).
__device__ __forceinline__ void load8(const FusedArgs& p, const void* base, int mm, int c, float (&v)[8]) {
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

// x[0..m, 0..Kp) into shared memory (f16, zero past K), from the prologue's input. Every load of
// a round (kRound vectors of 8 per thread) is issued before any is used: staging costs about one
// L2 round trip per round (two for RMSNorm: the statistics first), not one per element.
template <int PRO, int KC, int kRound, int W>
__device__ __forceinline__ void stage(const FusedArgs& p, __half* xs, float* red, float* inv) {
  constexpr int kThreads = W * 32;
  const int vpr = p.w.chunks * KC / 8, total = p.m * vpr;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if constexpr (PRO == kRms) {
    for (int mm = 0; mm < p.m; ++mm) {
      float s = 0;
      for (int v0 = threadIdx.x; v0 < vpr; v0 += kThreads * kRound) {
        float x[kRound][8];
#pragma unroll
        for (int r = 0; r < kRound; ++r) {
          const int v = v0 + r * kThreads;
          if (v < vpr) load8(p, p.in, mm, v * 8, x[r]);
        }
#pragma unroll
        for (int r = 0; r < kRound; ++r)
          if (v0 + r * kThreads < vpr)
#pragma unroll
            for (int e = 0; e < 8; ++e) s += x[r][e] * x[r][e];
      }
      s = warp_sum(s);
      if (lane == 0) red[mm * W + warp] = s;
    }
    __syncthreads();
    if (threadIdx.x < p.m) {
      float t = 0;
#pragma unroll
      for (int w = 0; w < W; ++w) t += red[threadIdx.x * W + w];
      inv[threadIdx.x] = rsqrtf(t / p.k + p.eps);
    }
    __syncthreads();
  }
  for (int i0 = threadIdx.x; i0 < total; i0 += kThreads * kRound) {
    float x[kRound][8], u[PRO == kPlain ? 1 : kRound][8];  // u: up (SwiGLU) or the norm weights
#pragma unroll
    for (int r = 0; r < kRound; ++r) {
      const int i = i0 + r * kThreads;
      if (i < total) {
        const int mm = i / vpr, c = (i - mm * vpr) * 8;
        load8(p, p.in, mm, c, x[r]);
        if constexpr (PRO == kSwiglu) load8(p, static_cast<const __half*>(p.in) + p.up_col, mm, c, u[r]);
        if constexpr (PRO == kRms) {
#pragma unroll
          for (int e = 0; e < 8; ++e) u[r][e] = c + e < p.k ? __ldg(p.norm_w + c + e) : 0.0f;
        }
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
        if constexpr (PRO == kRms) {
          a = a * inv[mm] * u[r][e];  // zero past K: x and the weight are
          b = b * inv[mm] * u[r][e + 1];
        } else if constexpr (PRO == kSwiglu) {
          // fast exp and reciprocal: a few f32 ulps, far below the f16 rounding of the result
          a = __fdividef(a, 1.0f + __expf(-a)) * u[r][e];
          b = __fdividef(b, 1.0f + __expf(-b)) * u[r][e + 1];
        }
        h[e / 2] = as_u32(__floats2half2_rn(a, b));
      }
      *reinterpret_cast<uint4*>(xs + mm * p.xs_stride + c) = make_uint4(h[0], h[1], h[2], h[3]);
    }
  }
}

// W = 8: two blocks per SM, W = 16: one; either way at most 128 registers per thread.
template <int BITS, int NT, bool ASYM, int PRO, int W>
__global__ void __launch_bounds__(W * 32, 16 / W) fused_kernel(const FusedArgs p) {
  constexpr int KC = BITS == 4 ? 64 : 32;
  using B = Batch<BITS, ASYM>;
  extern __shared__ uint4 smem[];
  __half* xs = reinterpret_cast<__half*>(smem);
  float* part = reinterpret_cast<float*>(xs + p.m * p.xs_stride);  // [warp][NT·4][32], 16-byte aligned
  __shared__ float red[16 * W], inv[16];

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, tig = lane & 3;
  const int t = blockIdx.x * p.tpb + warp / p.wpt, ks = warp % p.wpt;
  const bool tile_ok = t < p.w.tiles;
  const int c0 = min(ks * p.cpw, p.w.chunks), c1 = min(c0 + p.cpw, p.w.chunks);
  const uint4* wp = p.w.packed + static_cast<size_t>(t) * p.w.chunks * 32 + lane;

  // Two batches of weights in flight before the wait: they overlap the previous kernel's tail
  // (launch overlap) and the staging below.
  B b0, b1;
  if (tile_ok) {
    b0.load(p.w, wp, t, g, c0, c1);
    b1.load(p.w, wp, t, g, c0 + kGemvPrefetch, c1);
  }
  grid_dependency_wait();  // the input and output may belong to the kernel before this one
  stage<PRO, KC, ASYM ? 1 : 2, W>(p, xs, red, inv);  // one round in flight where zero points take the registers
  __syncthreads();

  // The epilogue's addends, loaded before the main loop so that their latency hides under it
  // (after it where 16 tokens of asymmetric INT4 leave no registers for them).
  constexpr bool kEarlyAdd = !(NT == 2 && ASYM);
  // This lane's outputs in the C fragment: c0,c1 → (row g, token 2·tig + {0,1}), c2,c3 → row g + 8.
  auto for_outputs = [&](auto&& f) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int m = nt * 8 + 2 * tig + (e & 1), row = t * 16 + g + (e >> 1) * 8;
        if (m < p.m && row < p.n) f(nt, e, m, row);
      }
  };
  float add[NT][4] = {};
  auto load_add = [&] {
    if (!tile_ok || ks != 0 || !(p.bias || p.res)) return;
    for_outputs([&](int nt, int e, int m, int row) {
      if (p.bias) add[nt][e] = __ldg(p.bias + row);
      if (p.res) {
        const int64_t r = m * p.ldr + row;
        add[nt][e] += p.res_f32 ? static_cast<const float*>(p.res)[r] : __half2float(static_cast<const __half*>(p.res)[r]);
      }
    });
  };
  if constexpr (kEarlyAdd) load_add();

  float acc[NT][4] = {};
  const __half* xrow[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) xrow[nt] = xs + min(nt * 8 + g, p.m - 1) * p.xs_stride + tig * 8;  // rows ≥ m: any valid row
  auto consume = [&](B& b, int cb) {  // chunks cb .. of batch b, then b refills 2 batches ahead
#pragma unroll
    for (int i = 0; i < kGemvPrefetch; ++i) {
      const int c = cb + i;
      if (c >= c1) break;
      const __half* xr[NT];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) xr[nt] = xrow[nt] + c * KC;
      chunk_mma<BITS, NT, ASYM>(b, i, xr, acc);
    }
    b.load(p.w, wp, t, g, cb + 2 * kGemvPrefetch, c1);
  };
  if (tile_ok) {
    for (int cb = c0; cb < c1; cb += 2 * kGemvPrefetch) {
      consume(b0, cb);
      if (cb + kGemvPrefetch < c1) consume(b1, cb + kGemvPrefetch);
    }
  }
  launch_dependents();

  if (!add_tile_partials<NT>(acc, part, warp, lane, ks, p.wpt) || !tile_ok) return;
  if constexpr (!kEarlyAdd) load_add();
  for_outputs([&](int nt, int e, int m, int row) {
    const float v = acc[nt][e] + add[nt][e];
    const int64_t o = m * p.ldy + row;
    if (p.y_f32)
      static_cast<float*>(p.y)[o] = v;
    else
      static_cast<__half*>(p.y)[o] = __float2half_rn(v);
  });
}

int64_t stage_stride(const GemvLayout& l) {
  // Halves per staged row: the padded K, rounded to 64 and offset by 32 so that the 16-byte B
  // loads of rows g and g + 1 fall in different halves of the 128-byte bank window.
  const int64_t kp = l.chunks * l.chunk_k;
  return (kp + 63) / 64 * 64 + 32;
}

size_t smem_for(const GemvLayout& l, int64_t m, int warps) {
  const int nt = m > 8 ? 2 : 1;
  return static_cast<size_t>(m * stage_stride(l) * 2) + static_cast<size_t>(warps * nt * 4 * 32 * 4);
}

template <int BITS, int NT, bool ASYM, int PRO>
void launch(const FusedArgs& a, int warps, unsigned blocks, size_t smem, bool overlap, cudaStream_t stream) {
  if (warps == 16)
    launch_kernel(fused_kernel<BITS, NT, ASYM, PRO, 16>, dim3(blocks), dim3(16 * 32), smem, overlap, stream, a);
  else
    launch_kernel(fused_kernel<BITS, NT, ASYM, PRO, 8>, dim3(blocks), dim3(8 * 32), smem, overlap, stream, a);
}

template <int BITS, bool ASYM, int PRO>
void launch_nt(const FusedArgs& a, int warps, unsigned blocks, size_t smem, bool overlap, cudaStream_t stream) {
  if (a.m > 8)
    launch<BITS, 2, ASYM, PRO>(a, warps, blocks, smem, overlap, stream);
  else
    launch<BITS, 1, ASYM, PRO>(a, warps, blocks, smem, overlap, stream);
}

template <int PRO>
void launch_format(const GemvLayout& l, const FusedArgs& a, int warps, unsigned blocks, size_t smem, bool overlap,
                   cudaStream_t stream) {
  if (l.bits == 4)
    l.symmetric ? launch_nt<4, false, PRO>(a, warps, blocks, smem, overlap, stream)
                : launch_nt<4, true, PRO>(a, warps, blocks, smem, overlap, stream);
  else
    l.symmetric ? launch_nt<8, false, PRO>(a, warps, blocks, smem, overlap, stream)
                : launch_nt<8, true, PRO>(a, warps, blocks, smem, overlap, stream);
}

}  // namespace

bool gemv_fused_fits(const GemvLayout& l, int64_t m) {
  return m >= 1 && m <= 16 && static_cast<size_t>(m * stage_stride(l) * 2) <= kMaxStageBytes;
}

GemvFusedConfig gemv_fused_config(const GemvLayout& l, int64_t m, int sm_count) {
  // Every warp's time is its chain of dependent instructions (ncu: about 7 cycles per issued
  // instruction at two warps per scheduler, so the SM's issue rate is not the limit): its K slice
  // of chunks, its share of staging x, and a fixed cost per block (staging's L2 round trips, the
  // barriers, the K reduction and the stores; worth about 5 chunks in the H200 sweep of
  // docs/perf/cuda.md), times the waves the grid needs. Pick the shape with the least of that; on
  // a tie the one with more blocks (more SMs pulling weights).
  constexpr int64_t kBlockCost = 5;
  const int64_t vectors = m * l.chunks * l.chunk_k / 8;  // 8 staged inputs per vector
  GemvFusedConfig best{8, 1};
  int64_t best_cost = -1, best_blocks = 0;
  for (int warps : {8, 16})
    for (int tpb = 1; tpb <= warps; tpb *= 2) {
      const int64_t wpt = warps / tpb, blocks = (l.tiles + tpb - 1) / tpb;
      const int64_t waves = (blocks + int64_t{sm_count} * (16 / warps) - 1) / (int64_t{sm_count} * (16 / warps));
      const int64_t cost =
          waves * ((l.chunks + wpt - 1) / wpt + (vectors + warps * 32 - 1) / (warps * 32) + kBlockCost);
      if (best_cost < 0 || cost < best_cost || (cost == best_cost && blocks > best_blocks)) {
        best = {warps, tpb};
        best_cost = cost;
        best_blocks = blocks;
      }
    }
  return best;
}

void gemv_fused(const GpuQuantWeight& w, const GemvPrologue& pro, const GemvEpilogue& epi, int64_t m,
                cudaStream_t stream, GemvFusedConfig cfg) {
  const GemvLayout& l = w.layout();
  if (!gemv_fused_fits(l, m))  // not check(): its message would be built on every call
    throw Error("gemv_fused: " + std::to_string(m) + " tokens of " + std::to_string(l.cols) +
                " inputs do not fit (1..16 tokens, m·K f16 within 96 KiB)");
  if (cfg.warps == 0 || cfg.tiles_per_block == 0) {
    const GemvFusedConfig own = gemv_fused_config(l, m, w.sm_count());
    if (cfg.warps == 0) cfg.warps = own.warps;
    if (cfg.tiles_per_block == 0) cfg.tiles_per_block = cfg.warps == own.warps ? own.tiles_per_block : 1;
  }
  const int tpb = cfg.tiles_per_block;
  check(cfg.warps == 8 || cfg.warps == 16, "gemv_fused: warps per block must be 8 or 16");
  check(tpb >= 1 && tpb <= cfg.warps && (tpb & (tpb - 1)) == 0,
        "gemv_fused: tiles_per_block must be a power of two up to the warps per block");
  check(pro.in.ptr && epi.y.ptr, "gemv_fused: null input or output");
  const bool rms = pro.kind == GemvPrologue::Kind::RmsNorm, swiglu = pro.kind == GemvPrologue::Kind::SwiGLU;
  check(!rms || pro.norm_weight, "gemv_fused: RMSNorm prologue without its weight");
  check(!swiglu || pro.in.type == ActType::F16, "gemv_fused: the SwiGLU prologue takes f16 gate/up");
  FusedArgs a{};
  a.w = weight_view(w);
  a.m = static_cast<int>(m);
  a.n = static_cast<int>(l.rows);
  a.k = static_cast<int>(l.cols);
  a.tpb = tpb;
  a.wpt = cfg.warps / tpb;
  a.cpw = static_cast<int>((l.chunks + a.wpt - 1) / a.wpt);
  a.xs_stride = static_cast<int>(stage_stride(l));
  a.in = pro.in.ptr;
  a.ld_in = pro.in.ld;
  a.up_col = pro.up_col;
  a.in_f32 = pro.in.type == ActType::F32;
  // 16-byte loads of 8 inputs: the view (and up's columns) aligned to them.
  const int64_t align = a.in_f32 ? 4 : 8;
  a.vec = reinterpret_cast<uintptr_t>(pro.in.ptr) % 16 == 0 && pro.in.ld % align == 0 && pro.up_col % align == 0;
  a.norm_w = pro.norm_weight;
  a.eps = pro.eps;
  a.y = epi.y.ptr;
  a.ldy = epi.y.ld;
  a.y_f32 = epi.y.type == ActType::F32;
  a.bias = epi.bias;
  a.res = epi.residual.ptr;
  a.ldr = epi.residual.ld;
  a.res_f32 = epi.residual.type == ActType::F32;
  const unsigned blocks = static_cast<unsigned>((l.tiles + tpb - 1) / tpb);
  const size_t smem = smem_for(l, m, cfg.warps);
  const bool overlap = w.compute_major() >= 9;
  if (rms)
    launch_format<kRms>(l, a, cfg.warps, blocks, smem, overlap, stream);
  else if (swiglu)
    launch_format<kSwiglu>(l, a, cfg.warps, blocks, smem, overlap, stream);
  else
    launch_format<kPlain>(l, a, cfg.warps, blocks, smem, overlap, stream);
  LLMC_CUDA_CHECK_LAUNCH("gemv_fused");
}

}  // namespace llmc::kernels::cuda
