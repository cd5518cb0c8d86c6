// The fused decode GEMV (quant_gemv_fused.hpp). Each block of W warps (8 or 16) owns `tpb` 16-row
// tiles; the W/tpb warps of a tile split its K range and add their tensor-core partial sums in shared memory,
// so one launch does the whole product with no global workspace, arrival counter or second pass
// (the fixed cost that dominates gemv_quantized at 2-12 MB, docs/perf/cuda.md). The block stages
// all of x (m·K f16) once, producing it from the prologue's input on the way.
#include <cuda_fp16.h>

#include <string>

#include "kernels/cuda/quant_gemv_fused.hpp"
#include "kernels/cuda/quant_gemv_stage.cuh"
#include "kernels/cuda/quant_gemv_tile.cuh"

namespace llmc::kernels::cuda {

namespace {

using namespace detail;

constexpr size_t kMaxStageBytes = 96 * 1024;

struct FusedArgs {
  QWeightView w;
  int n;
  int tpb, wpt, cpw;
  StageArgs x;
  OutArgs o;
};

// W = 8: two blocks per SM, W = 16: one; either way at most 128 registers per thread. SCATTER:
// the weight is act-order, its inputs staged at the positions p.x.scatter gives them.
template <int BITS, int NT, bool ASYM, int PRO, int W, bool SCATTER>
__global__ void __launch_bounds__(W * 32, 16 / W) fused_kernel(const FusedArgs p) {
  constexpr int KC = BITS == 4 ? 64 : 32;
  using B = Batch<BITS, ASYM>;
  extern __shared__ uint4 smem[];
  __half* xs = reinterpret_cast<__half*>(smem);
  float* part = reinterpret_cast<float*>(xs + p.x.m * p.x.xs_stride);  // [warp][NT·4][32], 16-byte aligned
  __shared__ float red[16], inv[16];

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
  // The next kernel's blocks may now become resident beside ours (a block of 8 warps takes half
  // an SM) and stream their weights while this one stages, multiplies and stores; they wait for
  // all of it at their own grid_dependency_wait.
  launch_dependents();
  // Several tokens' RMSNorm statistics take twice the loads per round where 16 tokens (NT = 2)
  // leave the registers; the kernels of up to 8 tokens, one-token decode among them, keep theirs.
  constexpr int kStat = (ASYM ? 1 : 2) * (NT == 2 ? 2 : 1);
  if (PRO == kPlain && !p.x.in_f32 && p.x.vec && !SCATTER) {
    stage_copy<W>(p.x, p.w.chunks * KC, xs);
  } else {
    // one round in flight where zero points take the registers
    stage<PRO, ASYM ? 1 : 2, W, kStat, SCATTER>(p.x, p.w.chunks * KC, xs, red, inv,
                                       [](__half* row, int c, const uint32_t (&h)[4]) {
                                         *reinterpret_cast<uint4*>(row + c) = make_uint4(h[0], h[1], h[2], h[3]);
                                       });
  }
  __syncthreads();

  // The epilogue's addends, loaded before the main loop so that their latency hides under it
  // (after it where 16 tokens of asymmetric INT4 leave no registers for them).
  constexpr bool kEarlyAdd = !(NT == 2 && ASYM);
  float add[NT][4] = {};
  if constexpr (kEarlyAdd)
    if (tile_ok && ks == 0) load_addends<NT>(p.o, add, p.x.m, p.n, t, g, tig);  // the warp that stores the tile

  float acc[NT][4] = {};
  const __half* xrow[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) xrow[nt] = xs + min(nt * 8 + g, p.x.m - 1) * p.x.xs_stride + tig * 8;  // rows ≥ m: any valid row
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

  if (!add_tile_partials<NT>(acc, part, warp, lane, ks, p.wpt) || !tile_ok) return;
  if constexpr (!kEarlyAdd) load_addends<NT>(p.o, add, p.x.m, p.n, t, g, tig);
  store_outputs<NT>(p.o, acc, add, p.x.m, p.n, t, g, tig);
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

template <int BITS, int NT, bool ASYM, int PRO, bool SCATTER>
void launch(const FusedArgs& a, int warps, unsigned blocks, size_t smem, bool overlap, cudaStream_t stream) {
  if (warps == 16)
    launch_kernel(fused_kernel<BITS, NT, ASYM, PRO, 16, SCATTER>, dim3(blocks), dim3(16 * 32), smem, overlap, stream, a);
  else
    launch_kernel(fused_kernel<BITS, NT, ASYM, PRO, 8, SCATTER>, dim3(blocks), dim3(8 * 32), smem, overlap, stream, a);
}

template <int BITS, bool ASYM, int PRO>
void launch_nt(const FusedArgs& a, int warps, unsigned blocks, size_t smem, bool overlap, cudaStream_t stream) {
  if (a.x.m > 8)
    a.x.scatter ? launch<BITS, 2, ASYM, PRO, true>(a, warps, blocks, smem, overlap, stream)
             : launch<BITS, 2, ASYM, PRO, false>(a, warps, blocks, smem, overlap, stream);
  else
    a.x.scatter ? launch<BITS, 1, ASYM, PRO, true>(a, warps, blocks, smem, overlap, stream)
             : launch<BITS, 1, ASYM, PRO, false>(a, warps, blocks, smem, overlap, stream);
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

GemvFusedConfig fused_block_shape(int64_t tiles, int64_t units, int64_t vectors, int64_t m, int sm_count) {
  // Every warp's time is its chain of dependent instructions (ncu: about 7 cycles per issued
  // instruction at two warps per scheduler, so the SM's issue rate is not the limit): its K slice
  // of units, its share of staging x, and a fixed cost per block (staging's L2 round trips, the
  // barriers, the K reduction and the stores; worth about 5 chunks in the H200 sweep of
  // docs/perf/cuda.md), times the waves the grid needs. Pick the shape with the least of that; on
  // a tie the one with more blocks (more SMs pulling weights).
  // One token: 8-warp blocks only. They take half an SM's registers, so the next kernel of a
  // decode step, launched early (PDL), becomes resident beside them and streams its weights
  // meanwhile; 16-warp blocks fill the SM and shut it out (H100, TinyLlama decode: +1.2-2.3 % end
  // to end). With more tokens a kernel's own time dominates: forcing 8 warps at 16 tokens cost
  // 43 % (docs/perf/cuda.md, "Launch overlap").
  constexpr int64_t kBlockCost = 5;
  GemvFusedConfig best{8, 1};
  int64_t best_cost = -1, best_blocks = 0;
  for (int warps : {8, 16}) {
    if (warps == 16 && m == 1) continue;
    for (int tpb = 1; tpb <= warps; tpb *= 2) {
      const int64_t wpt = warps / tpb, blocks = (tiles + tpb - 1) / tpb;
      const int64_t waves = (blocks + int64_t{sm_count} * (16 / warps) - 1) / (int64_t{sm_count} * (16 / warps));
      const int64_t cost = waves * ((units + wpt - 1) / wpt + (vectors + warps * 32 - 1) / (warps * 32) + kBlockCost);
      if (best_cost < 0 || cost < best_cost || (cost == best_cost && blocks > best_blocks)) {
        best = {warps, tpb};
        best_cost = cost;
        best_blocks = blocks;
      }
    }
  }
  return best;
}

GemvFusedConfig gemv_fused_config(const GemvLayout& l, int64_t m, int sm_count) {
  return fused_block_shape(l.tiles, l.chunks, m * l.chunks * l.chunk_k / 8, m, sm_count);  // 8 staged inputs per vector
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
  if (!(cfg.warps == 8 || cfg.warps == 16)) throw Error("gemv_fused: warps per block must be 8 or 16");
  if (!(tpb >= 1 && tpb <= cfg.warps && (tpb & (tpb - 1)) == 0))
    throw Error("gemv_fused: tiles_per_block must be a power of two up to the warps per block");
  FusedArgs a{};
  a.w = weight_view(w);
  a.n = static_cast<int>(l.rows);
  a.tpb = tpb;
  a.wpt = cfg.warps / tpb;
  a.cpw = static_cast<int>((l.chunks + a.wpt - 1) / a.wpt);
  a.x = stage_args(pro, m, l.cols, stage_stride(l), "gemv_fused", w.perm_inv());
  a.o = out_args(epi, "gemv_fused");
  const unsigned blocks = static_cast<unsigned>((l.tiles + tpb - 1) / tpb);
  const size_t smem = smem_for(l, m, cfg.warps);
  const bool overlap = w.compute_major() >= 9;
  const int kind = pro_kind(pro);
  if (kind == kRms)
    launch_format<kRms>(l, a, cfg.warps, blocks, smem, overlap, stream);
  else if (kind == kSwiglu)
    launch_format<kSwiglu>(l, a, cfg.warps, blocks, smem, overlap, stream);
  else
    launch_format<kPlain>(l, a, cfg.warps, blocks, smem, overlap, stream);
  LLMC_CUDA_CHECK_LAUNCH("gemv_fused");
}

}  // namespace llmc::kernels::cuda
