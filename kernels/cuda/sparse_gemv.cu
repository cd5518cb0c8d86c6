// The 2:4 sparse INT4 decode GEMV (sparse_gemv.hpp). Each 8-warp block owns `tpb` 16-row tiles;
// the 8/tpb warps of a tile split its K range (in supers of 128 inputs) and add their partial
// sums in shared memory, as gemv_fused does. Per 32 inputs a lane dequantizes one word of eight
// kept codes into the A fragment and issues one mma.sp.m16n8k32 whose metadata comes from the
// lane pair the sparsity selector names. x is staged once per block in the order the m16n8k32 B
// fragment wants: lane t's eight inputs of a chunk (2t + 8j + {0, 1}, j = 0..3) side by side, one
// 16-byte shared-memory load.
#include <cuda_fp16.h>

#include <algorithm>
#include <string>

#include "kernels/cuda/dense_gemm.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/quant_gemv_stage.cuh"
#include "kernels/cuda/quant_gemv_tile.cuh"
#include "kernels/cuda/sparse_gemv.hpp"

namespace llmc::kernels::cuda {

namespace {

using namespace detail;

constexpr size_t kMaxStageBytes = 96 * 1024;
constexpr int kSuperPrefetch = 2;  // supers per batch; two batches in flight (double buffer)

struct SparseArgs {
  QWeightView w;  // packed = the codes [tile][super][lane], chunks = 4 per super
  const uint2* meta;
  int supers, n;
  int tpb, wpt, spw;
  StageArgs x;
  OutArgs o;
};

// d += A·B for a 2:4 sparse A (16×32 as 16×16 kept values + metadata e from the lanes SEL picks).
template <int SEL>
__device__ __forceinline__ void mma_sp_16832(float (&d)[4], const uint32_t (&a)[4], const uint4& b, uint32_t e) {
  asm("mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9, %10, %11}, {%0, %1, %2, %3}, %12, %13;"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b.x), "r"(b.y), "r"(b.z), "r"(b.w), "r"(e), "n"(SEL));
}

// kSuperPrefetch consecutive supers of one tile for this lane: per super four code words, two
// metadata words, four chunks' scales (and zero points) of rows g and g + 8.
template <bool ASYM>
struct SuperBatchW4 {
  static constexpr int kSupers = kSuperPrefetch;
  uint4 q[kSuperPrefetch];
  uint2 e[kSuperPrefetch];
  __half2 s[kSuperPrefetch][4];
  uchar2 z[kSuperPrefetch][ASYM ? 4 : 1];

  // Supers sb .. sb + kSuperPrefetch − 1 below s1.
  __device__ __forceinline__ void load(const SparseArgs& p, int t, int g, int lane, int sb, int s1) {
#pragma unroll
    for (int i = 0; i < kSuperPrefetch; ++i) {
      const int si = sb + i;
      if (si >= s1) break;
      const size_t at = (static_cast<size_t>(t) * p.supers + si) * 32 + lane;
      q[i] = load_stream(p.w.packed + at);
      e[i] = __ldg(p.meta + at);
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int idx = (group_of(p.w, si * 4 + c) * p.w.tiles + t) * 8 + g;
        s[i][c] = __ldg(p.w.scales + idx);
        if constexpr (ASYM) z[i][c] = __ldg(p.w.zeros + idx);
      }
    }
  }

  // acc[nt] += Ŵ(tile, super si) · x for super i of this batch: per 32-input chunk one
  // dequantized word of eight kept codes and one mma.sp per 8 tokens, the group scale on the f32
  // partial sum.
  template <int NT>
  __device__ __forceinline__ void mma(int i, int si, const __half* const (&xrow)[NT], float (&acc)[NT][4]) const {
    const uint32_t words[4] = {q[i].x, q[i].y, q[i].z, q[i].w};
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      __half2 sub_g, add_g8;
      if constexpr (ASYM) {
        sub_g = __float2half2_rn(1024.0f + z[i][c].x);
        add_g8 = __float2half2_rn(-64.0f - z[i][c].y);
      } else {
        sub_g = __float2half2_rn(1032.0f);
        add_g8 = __float2half2_rn(-72.0f);
      }
      uint32_t a[4];
      dequant_w4(words[c], sub_g, add_g8, a);
      const uint32_t ec = c < 2 ? e[i].x : e[i].y;
      const float2 sf = __half22float2(s[i][c]);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const uint4 bx = *reinterpret_cast<const uint4*>(xrow[nt] + (si * 4 + c) * 32);
        float d[4] = {};
        if (c & 1)
          mma_sp_16832<1>(d, a, bx, ec);
        else
          mma_sp_16832<0>(d, a, bx, ec);
        acc[nt][0] += sf.x * d[0];
        acc[nt][1] += sf.x * d[1];
        acc[nt][2] += sf.y * d[2];
        acc[nt][3] += sf.y * d[3];
      }
    }
  }
};

// One super of 2:4 f16 for this lane: four 16-byte A fragments (a0..a7 per chunk, register
// order; each chunk's 32 lanes contiguous, so every load is one 512-byte line) and two metadata
// words; 64 + 8 bytes, so one super per batch keeps as many bytes in flight as gemv_fused's.
struct SuperBatchF16 {
  static constexpr int kSupers = 1;
  uint4 v[4];
  uint2 e;

  __device__ __forceinline__ void load(const SparseArgs& p, int t, int /*g*/, int lane, int sb, int s1) {
    if (sb >= s1) return;
    const size_t at = (static_cast<size_t>(t) * p.supers + sb) * 32;
#pragma unroll
    for (int c = 0; c < 4; ++c) v[c] = load_stream(p.w.packed + (at + c * 8) * 4 + lane);
    e = __ldg(p.meta + at + lane);
  }

  template <int NT>
  __device__ __forceinline__ void mma(int /*i*/, int si, const __half* const (&xrow)[NT], float (&acc)[NT][4]) const {
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const uint32_t a[4] = {v[c].x, v[c].y, v[c].z, v[c].w};
      const uint32_t ec = c < 2 ? e.x : e.y;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const uint4 bx = *reinterpret_cast<const uint4*>(xrow[nt] + (si * 4 + c) * 32);
        if (c & 1)
          mma_sp_16832<1>(acc[nt], a, bx, ec);
        else
          mma_sp_16832<0>(acc[nt], a, bx, ec);
      }
    }
  }
};

// W = 8: two blocks per SM, W = 16: one; either way at most 128 registers per thread. B: the
// weight format's batch (SuperBatchW4<ASYM> or SuperBatchF16); EARLY_ADD: the epilogue's addends
// loaded before the main loop (not where 16 tokens of asymmetric INT4 leave no registers).
template <class B, int NT, int PRO, int W, bool EARLY_ADD>
__global__ void __launch_bounds__(W * 32, 16 / W) sparse24_kernel(const SparseArgs p) {
  constexpr int kP = B::kSupers;
  extern __shared__ uint4 smem[];
  __half* xs = reinterpret_cast<__half*>(smem);
  float* part = reinterpret_cast<float*>(xs + p.x.m * p.x.xs_stride);  // [warp][NT·4][32]
  __shared__ float red[16], inv[16];

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, tig = lane & 3;
  const int t = blockIdx.x * p.tpb + warp / p.wpt, ks = warp % p.wpt;
  const bool tile_ok = t < p.w.tiles;
  const int s0 = min(ks * p.spw, p.supers), s1 = min(s0 + p.spw, p.supers);

  // Two batches of weights in flight before the wait (they are constant): they overlap the
  // previous kernel's tail and the staging below.
  B b0, b1;
  if (tile_ok) {
    b0.load(p, t, g, lane, s0, s1);
    b1.load(p, t, g, lane, s0 + kP, s1);
  }
  grid_dependency_wait();  // the input and output may belong to the kernel before this one
  launch_dependents();     // their weights stream in beside ours, as in gemv_fused

  // x in the order the m16n8k32 B fragment wants: lane tig's eight inputs of a chunk
  // (2·tig + 8j + {0, 1}, j = 0..3) side by side, so pair (2·tig + 8j) of chunk ch sits at word
  // 16·ch + 4·tig + j and one 16-byte load fetches them. Inputs c .. c + 7 (c = 32·ch + 8j) are
  // pairs j of tig = 0..3: words 16·ch + j + 4·tig.
  stage<PRO, EARLY_ADD ? 2 : 1, W>(p.x, p.supers * 128, xs, red, inv, [](__half* row, int c, const uint32_t (&h)[4]) {
    uint32_t* w = reinterpret_cast<uint32_t*>(row) + (c >> 5) * 16 + ((c >> 3) & 3);
    w[0] = h[0], w[4] = h[1], w[8] = h[2], w[12] = h[3];
  });
  __syncthreads();

  // The epilogue's addends before the main loop where registers allow, as gemv_fused.
  float add[NT][4] = {};
  if constexpr (EARLY_ADD)
    if (tile_ok && ks == 0) load_addends<NT>(p.o, add, p.x.m, p.n, t, g, tig);  // the warp that stores the tile

  float acc[NT][4] = {};
  const __half* xrow[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) xrow[nt] = xs + min(nt * 8 + g, p.x.m - 1) * p.x.xs_stride + tig * 8;
  auto consume = [&](B& b, int sb) {  // supers sb .. of batch b, then b refills 2 batches ahead
#pragma unroll
    for (int i = 0; i < kP; ++i) {
      if (sb + i >= s1) break;
      b.template mma<NT>(i, sb + i, xrow, acc);
    }
    b.load(p, t, g, lane, sb + 2 * kP, s1);
  };
  if (tile_ok) {
    for (int sb = s0; sb < s1; sb += 2 * kP) {
      consume(b0, sb);
      if (sb + kP < s1) consume(b1, sb + kP);
    }
  }

  if (!add_tile_partials<NT>(acc, part, warp, lane, ks, p.wpt) || !tile_ok) return;
  if constexpr (!EARLY_ADD) load_addends<NT>(p.o, add, p.x.m, p.n, t, g, tig);
  store_outputs<NT>(p.o, acc, add, p.x.m, p.n, t, g, tig);
}

// Halves per staged row: the padded K plus 32 (64 bytes) so that rows g and g + 1 fall in
// different halves of the 128-byte bank window.
int64_t stage_stride(const Sparse24QLayout& l) { return l.supers * 128 + 32; }

template <class B, int NT, int PRO, bool EARLY_ADD>
void launch(const SparseArgs& a, int warps, unsigned blocks, size_t smem, bool overlap, cudaStream_t stream) {
  if (warps == 16)
    launch_kernel(sparse24_kernel<B, NT, PRO, 16, EARLY_ADD>, dim3(blocks), dim3(16 * 32), smem, overlap, stream, a);
  else
    launch_kernel(sparse24_kernel<B, NT, PRO, 8, EARLY_ADD>, dim3(blocks), dim3(8 * 32), smem, overlap, stream, a);
}

// fmt: 0 = INT4 symmetric, 1 = INT4 asymmetric, 2 = f16.
template <int PRO>
void launch_pro(const SparseArgs& a, int fmt, int warps, unsigned blocks, size_t smem, bool overlap,
                cudaStream_t stream) {
  if (a.x.m > 8) {
    if (fmt == 0) launch<SuperBatchW4<false>, 2, PRO, true>(a, warps, blocks, smem, overlap, stream);
    if (fmt == 1) launch<SuperBatchW4<true>, 2, PRO, false>(a, warps, blocks, smem, overlap, stream);
    if (fmt == 2) launch<SuperBatchF16, 2, PRO, true>(a, warps, blocks, smem, overlap, stream);
  } else {
    if (fmt == 0) launch<SuperBatchW4<false>, 1, PRO, true>(a, warps, blocks, smem, overlap, stream);
    if (fmt == 1) launch<SuperBatchW4<true>, 1, PRO, true>(a, warps, blocks, smem, overlap, stream);
    if (fmt == 2) launch<SuperBatchF16, 1, PRO, true>(a, warps, blocks, smem, overlap, stream);
  }
}

// The shared host side of both GEMVs: checks, block shape, staging and epilogue, launch (the
// caller checks the launch, naming itself).
void gemv_sparse24(SparseArgs a, const Sparse24QLayout& l, int fmt, int sm_count, int compute_major,
                   const GemvPrologue& pro, const GemvEpilogue& epi, int64_t m, cudaStream_t stream,
                   GemvFusedConfig cfg, const char* who) {
  if (!gemv_sparse24_fits(l, m))  // not check(): its message would be built on every call
    throw Error(std::string(who) + ": " + std::to_string(m) + " tokens of " + std::to_string(l.cols) +
                " inputs do not fit (1..16 tokens, m·K f16 within 96 KiB)");
  if (compute_major < 8) throw Error(std::string(who) + ": sparse tensor cores need sm_80 or newer");
  if (cfg.warps == 0 || cfg.tiles_per_block == 0) {
    const GemvFusedConfig own = gemv_sparse24_config(l, m, sm_count);
    if (cfg.warps == 0) cfg.warps = own.warps;
    if (cfg.tiles_per_block == 0) cfg.tiles_per_block = cfg.warps == own.warps ? own.tiles_per_block : 1;
  }
  const int tpb = cfg.tiles_per_block;
  if (!(cfg.warps == 8 || cfg.warps == 16)) throw Error(std::string(who) + ": warps per block must be 8 or 16");
  if (!(tpb >= 1 && tpb <= cfg.warps && (tpb & (tpb - 1)) == 0))
    throw Error(std::string(who) + ": tiles_per_block must be a power of two up to the warps per block");
  a.tpb = tpb;
  a.wpt = cfg.warps / tpb;
  a.spw = static_cast<int>((l.supers + a.wpt - 1) / a.wpt);
  a.x = stage_args(pro, m, l.cols, stage_stride(l), who);
  a.o = out_args(epi, who);
  const int nt = m > 8 ? 2 : 1;
  const size_t smem = static_cast<size_t>(m * stage_stride(l) * 2) + static_cast<size_t>(cfg.warps * nt * 4 * 32 * 4);
  const unsigned blocks = static_cast<unsigned>((l.tiles + tpb - 1) / tpb);
  const bool overlap = compute_major >= 9;
  const int kind = pro_kind(pro);
  if (kind == kRms)
    launch_pro<kRms>(a, fmt, cfg.warps, blocks, smem, overlap, stream);
  else if (kind == kSwiglu)
    launch_pro<kSwiglu>(a, fmt, cfg.warps, blocks, smem, overlap, stream);
  else
    launch_pro<kPlain>(a, fmt, cfg.warps, blocks, smem, overlap, stream);
}

// One warp per (tile, super): each lane decodes its four code words into the groups of four they
// cover (rows g and g + 8, groups tig and tig + 4 of each chunk), zero at the pruned inputs, the
// kept positions read from the metadata of the lanes that hold them (sparse_gemv.hpp). The values
// go through a per-warp shared-memory tile of 16 rows × 128 inputs so that global stores are whole
// 16-byte row segments, as dequantize_to_f16's.
// F16: the kept values themselves (gemv_sparse24_f16's layout), no scales.
template <bool F16>
__global__ void __launch_bounds__(256) dequant_sparse24_kernel(const SparseArgs p, __half* out, int64_t k) {
  constexpr int kStride = 128 + 8;  // +8: fewer bank conflicts
  __shared__ __align__(16) __half tile_smem[8][16 * kStride];
  const int lane = threadIdx.x & 31, g = lane >> 2, tig = lane & 3;
  __half* tile = tile_smem[threadIdx.x >> 5];
  const int64_t items = static_cast<int64_t>(p.w.tiles) * p.supers;
  for (int64_t it = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32; it < items;
       it += static_cast<int64_t>(gridDim.x) * blockDim.x / 32) {
    const int t = static_cast<int>(it / p.supers), si = static_cast<int>(it % p.supers);
    uint32_t words[4];  // INT4: one word of eight codes per chunk
    uint4 vals[F16 ? 4 : 1];  // f16: one A fragment per chunk
    if constexpr (F16) {
#pragma unroll
      for (int c = 0; c < 4; ++c) vals[c] = load_stream(p.w.packed + (it * 4 + c) * 32 + lane);
    } else {
      const uint4 q = load_stream(p.w.packed + it * 32 + lane);
      words[0] = q.x, words[1] = q.y, words[2] = q.z, words[3] = q.w;
    }
    const uint2 e = __ldg(p.meta + it * 32 + lane);
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const uint32_t mine = c < 2 ? e.x : e.y;
      const int holder = g * 4 + (c & 1) * 2;
      const uint32_t meta[2] = {__shfl_sync(0xffffffffu, mine, holder), __shfl_sync(0xffffffffu, mine, holder + 1)};
      float2 sc = make_float2(1.0f, 1.0f);
      float zero[2] = {8.0f, 8.0f};
      if constexpr (!F16) {
        const int idx = (group_of(p.w, si * 4 + c) * p.w.tiles + t) * 8 + g;
        sc = __half22float2(__ldg(p.w.scales + idx));
        if (p.w.zeros) {
          const uchar2 z = __ldg(p.w.zeros + idx);
          zero[0] = z.x, zero[1] = z.y;
        }
      }
#pragma unroll
      for (int ro = 0; ro < 2; ++ro)
#pragma unroll
        for (int gh = 0; gh < 2; ++gh) {
          const uint32_t bits = (ro ? meta[gh] >> 16 : meta[gh]) & 0xffffu;
          // the four inputs of the group as one 64-bit word: each kept value shifted to its
          // position (no indexed register array, which would live in local memory)
          uint64_t quad = 0;
#pragma unroll
          for (int kept = 0; kept < 2; ++kept) {
            const int i = gh << 2 | ro << 1 | kept;  // fragment element
            const int pos = static_cast<int>(bits >> (4 * tig + 2 * kept) & 3u);
            uint32_t h;
            if constexpr (F16) {
              const uint32_t w = (&vals[c].x)[i >> 1];
              h = i & 1 ? w >> 16 : w & 0xffffu;
            } else {
              const int nib = (i & 1) * 4 + (i >> 1);  // the nibble order a0 a2 a4 a6 a1 a3 a5 a7
              const float code = static_cast<float>(words[c] >> (4 * nib) & 0xfu);
              h = __half_as_ushort(__float2half_rn((ro ? sc.y : sc.x) * (code - zero[ro])));  // (q − z) exact: one rounding
            }
            quad |= static_cast<uint64_t>(h) << (16 * pos);
          }
          *reinterpret_cast<uint2*>(tile + (g + 8 * ro) * kStride + c * 32 + (tig + 4 * gh) * 4) =
              make_uint2(static_cast<uint32_t>(quad), static_cast<uint32_t>(quad >> 32));
        }
    }
    __syncwarp();
#pragma unroll
    for (int j = 0; j < 16 * 16 / 32; ++j) {  // 16 rows × 16 segments of 8 inputs
      const int i = j * 32 + lane, r = i / 16, seg = i % 16;
      const int64_t row = int64_t{t} * 16 + r, k0 = int64_t{si} * 128 + seg * 8;
      if (row >= p.n || k0 >= k) continue;
      const __half* src = tile + r * kStride + seg * 8;
      __half* dst = out + row * k + k0;
      if ((k & 7) == 0) {  // k0 + 8 ≤ K and 16-byte aligned
        *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
      } else {
        for (int e2 = 0; e2 < 8 && k0 + e2 < k; ++e2) dst[e2] = src[e2];
      }
    }
    __syncwarp();  // the tile is rewritten by the next item
  }
}

// The plain product's prologue and epilogue: x [m, K] in, y [m, N] out, contiguous f16.
GemvPrologue plain_prologue(const uint16_t* x, const Sparse24QLayout& l) {
  GemvPrologue pro;
  pro.in = Act{const_cast<uint16_t*>(x), l.cols, ActType::F16};
  return pro;
}
GemvEpilogue plain_epilogue(uint16_t* y, const Sparse24QLayout& l) {
  GemvEpilogue epi;
  epi.y = Act{y, l.rows, ActType::F16};
  return epi;
}

// One warp per (tile, super) item, eight a block, at most eight blocks an SM (grid-stride).
template <bool F16>
void launch_dequant(const SparseArgs& a, const Sparse24QLayout& l, int sm_count, uint16_t* out, cudaStream_t stream) {
  const int64_t items = l.tiles * l.supers, per_block = 8;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((items + per_block - 1) / per_block, int64_t{sm_count} * 8));
  dequant_sparse24_kernel<F16><<<blocks, 256, 0, stream>>>(a, reinterpret_cast<__half*>(out), l.cols);
}

SparseArgs weight_args(const GpuSparse24F16Weight& w) {
  SparseArgs a{};
  a.w.packed = reinterpret_cast<const uint4*>(w.values());
  a.w.tiles = static_cast<int>(w.layout().tiles);
  a.w.chunks = static_cast<int>(w.layout().chunks());
  a.meta = reinterpret_cast<const uint2*>(w.meta());
  a.supers = static_cast<int>(w.layout().supers);
  a.n = static_cast<int>(w.layout().rows);
  return a;
}

SparseArgs weight_args(const GpuSparse24QWeight& w) {
  const Sparse24QLayout& l = w.layout();
  SparseArgs a{};
  a.w.packed = reinterpret_cast<const uint4*>(w.codes());
  a.w.scales = reinterpret_cast<const __half2*>(w.scales());
  a.w.zeros = reinterpret_cast<const uchar2*>(w.zeros());
  a.w.tiles = static_cast<int>(l.tiles);
  a.w.chunks = static_cast<int>(l.chunks());
  a.w.n_groups = static_cast<int>(l.n_groups);
  a.w.groups = l.groups;
  a.meta = reinterpret_cast<const uint2*>(w.meta());
  a.supers = static_cast<int>(l.supers);
  a.n = static_cast<int>(l.rows);
  return a;
}

}  // namespace

bool gemv_sparse24_fits(const Sparse24QLayout& l, int64_t m) {
  return m >= 1 && m <= 16 && static_cast<size_t>(m * stage_stride(l) * 2) <= kMaxStageBytes;
}

GemvFusedConfig gemv_sparse24_config(const Sparse24QLayout& l, int64_t m, int sm_count) {
  return fused_block_shape(l.tiles, l.supers, m * l.supers * 16, m, sm_count);  // 16 staged vectors of 8 per super
}

void gemv_sparse24_w4(const GpuSparse24QWeight& w, const GemvPrologue& pro, const GemvEpilogue& epi, int64_t m,
                      cudaStream_t stream, GemvFusedConfig cfg) {
  gemv_sparse24(weight_args(w), w.layout(), w.layout().symmetric ? 0 : 1, w.sm_count(), w.compute_major(), pro, epi, m,
                stream, cfg, "gemv_sparse24_w4");
  LLMC_CUDA_CHECK_LAUNCH("gemv_sparse24_w4");
}

void gemv_sparse24_f16(const GpuSparse24F16Weight& w, const GemvPrologue& pro, const GemvEpilogue& epi, int64_t m,
                       cudaStream_t stream, GemvFusedConfig cfg) {
  gemv_sparse24(weight_args(w), w.layout(), 2, w.sm_count(), w.compute_major(), pro, epi, m, stream, cfg, "gemv_sparse24_f16");
  LLMC_CUDA_CHECK_LAUNCH("gemv_sparse24_f16");
}

void gemv_sparse24_f16(const GpuSparse24F16Weight& w, const uint16_t* x, uint16_t* y, int64_t m, cudaStream_t stream) {
  gemv_sparse24_f16(w, plain_prologue(x, w.layout()), plain_epilogue(y, w.layout()), m, stream);
}

void gemv_sparse24_w4(const GpuSparse24QWeight& w, const uint16_t* x, uint16_t* y, int64_t m, cudaStream_t stream) {
  gemv_sparse24_w4(w, plain_prologue(x, w.layout()), plain_epilogue(y, w.layout()), m, stream);
}

void dequantize_sparse24_w4_to_f16(const GpuSparse24QWeight& w, uint16_t* out, cudaStream_t stream) {
  check(out, "dequantize_sparse24_w4_to_f16: null output");
  launch_dequant<false>(weight_args(w), w.layout(), w.sm_count(), out, stream);
  LLMC_CUDA_CHECK_LAUNCH("dequantize_sparse24_w4_to_f16");
}

void decompress_sparse24_f16(const GpuSparse24F16Weight& w, uint16_t* out, cudaStream_t stream) {
  check(out, "decompress_sparse24_f16: null output");
  launch_dequant<true>(weight_args(w), w.layout(), w.sm_count(), out, stream);
  LLMC_CUDA_CHECK_LAUNCH("decompress_sparse24_f16");
}

void linear_sparse24_f16_prefill(const GpuSparse24F16Weight& w, const CublasHandle& h, const uint16_t* x, uint16_t* y,
                                 int64_t m, uint16_t* scratch, cudaStream_t stream) {
  decompress_sparse24_f16(w, scratch, stream);
  linear_f16(h, x, scratch, y, m, w.layout().rows, w.layout().cols, stream);
}

void linear_sparse24_w4_prefill(const GpuSparse24QWeight& w, const CublasHandle& h, const uint16_t* x, uint16_t* y,
                                int64_t m, uint16_t* scratch, cudaStream_t stream) {
  dequantize_sparse24_w4_to_f16(w, scratch, stream);
  linear_f16(h, x, scratch, y, m, w.layout().rows, w.layout().cols, stream);
}

}  // namespace llmc::kernels::cuda
