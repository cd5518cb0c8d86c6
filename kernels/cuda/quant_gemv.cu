// W4A16 / W8A16 GEMV kernel (decode, 1..16 tokens) over the fragment layout of quant_gemv.hpp:
// tensor-core mma with the weight as the 16-row A operand and the tokens as the n8 B operand
// ("swap AB"), so each weight is dequantized once whatever m is; split-K across blocks.
#include <cuda_fp16.h>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/quant_gemv.hpp"
#include "kernels/cuda/quant_gemv_tile.cuh"

namespace llmc::kernels::cuda {

namespace {

using namespace detail;

constexpr int kPrefetch = kGemvPrefetch;

struct GemvArgs {
  QWeightView w;
  const __half* x;
  __half* y;
  float* ws;
  unsigned* counters;
  int m, n, k, np;
  int splits, chunks_per_split, xs_stride;
  bool x_vec;           // x rows can be read 16 bytes at a time
  const int32_t* perm;  // act-order: staged column c is x's column perm[c] (GpuQuantWeight::perm)
};

// Stages x[0..m, c0·KC ..) into shared memory as [MP][xs_stride] f16, zero past m and past K;
// GATHER (act-order, a template argument so that kernels without it keep their registers): staged
// column c from x's column p.perm[c].
template <int MP, bool GATHER, int W>
__device__ __forceinline__ void stage_x(const GemvArgs& p, __half* xs, int kbeg, int kslice) {
  const int vecs = kslice / 8;
  for (int i = threadIdx.x; i < MP * vecs; i += W * 32) {
    const int mm = i / vecs, kk = (i - mm * vecs) * 8, kg = kbeg + kk;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (GATHER && mm < p.m) {
      const __half* row = p.x + static_cast<size_t>(mm) * p.k;
      int col[8];
      load_perm8(p.perm, p.k, kg, col);
      __half h[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) h[e] = col[e] >= 0 ? row[col[e]] : __float2half(0.0f);
      memcpy(&v, h, 16);
    } else if (mm < p.m) {
      const __half* src = p.x + static_cast<size_t>(mm) * p.k + kg;
      if (p.x_vec && kg + 8 <= p.k) {
        v = *reinterpret_cast<const uint4*>(src);
      } else {
        __half h[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) h[e] = kg + e < p.k ? src[e] : __float2half(0.0f);
        memcpy(&v, h, 16);
      }
    }
    *reinterpret_cast<uint4*>(xs + mm * p.xs_stride + kk) = v;
  }
}

// W warps, one 16-row tile each: 8 (two blocks per SM) or 16 (one; more than 8 tokens of a tall
// weight, where every block stages its K slice of all 16 rows of x and taller blocks stage it
// fewer times: plan_gemv).
template <int BITS, int NT, bool ASYM, bool GATHER, int W>
__global__ void __launch_bounds__(W * 32, 16 / W) gemv_kernel(const GemvArgs p) {
  constexpr int MP = 8 * NT;
  constexpr int KC = BITS == 4 ? 64 : 32;
  using B = Batch<BITS, ASYM>;
  extern __shared__ uint4 smem[];
  __half* xs = reinterpret_cast<__half*>(smem);
  __shared__ bool last_block;

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, tig = lane & 3;
  const int rb = blockIdx.x, split = blockIdx.y;
  const int t = rb * W + warp;
  const bool tile_ok = t < p.w.tiles;
  const int c0 = split * p.chunks_per_split;
  const int c1 = min(c0 + p.chunks_per_split, p.w.chunks);
  const uint4* wp = p.w.packed + static_cast<size_t>(t) * p.w.chunks * 32 + lane;

  B cur;
  if (tile_ok) cur.load(p.w, wp, t, g, c0, c1);  // in flight while the activations are staged
  // Programmatic dependent launch (sm_90): everything above reads only the weight; x, y and the
  // workspace may still be in use by the kernel before this one in the stream.
  grid_dependency_wait();
  launch_dependents();  // the next kernel's blocks may start prefetching beside ours (gemv_fused)
  stage_x<MP, GATHER, W>(p, xs, c0 * KC, (c1 - c0) * KC);
  __syncthreads();

  float acc[NT][4] = {};
  if (tile_ok) {
    for (int cb = c0; cb < c1; cb += kPrefetch) {
      B nxt;
      nxt.load(p.w, wp, t, g, cb + kPrefetch, c1);
#pragma unroll
      for (int i = 0; i < kPrefetch; ++i) {
        const int c = cb + i;
        if (c >= c1) break;
        const __half* xr[NT];
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) xr[nt] = xs + (nt * 8 + g) * p.xs_stride + (c - c0) * KC + tig * 8;
        chunk_mma<BITS, NT, ASYM>(cur, i, xr, acc);
      }
      cur = nxt;
    }
  }

  // C fragment: c0,c1 → (row g, token 2·tig + {0,1}), c2,c3 → row g + 8.
  if (p.splits == 1) {
    if (tile_ok) store_tile_f16<NT>(acc, p.y, p.m, p.n, t, g, tig);
    return;
  }

  // Split-K: partial sums to the workspace; the last block of this row block to arrive adds them
  // in split order (deterministic) and writes f16 (threadFenceReduction, CUDA samples).
  if (tile_ok) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int m = nt * 8 + 2 * tig + (e & 1), row = t * 16 + g + (e >> 1) * 8;
        if (m < p.m) p.ws[(static_cast<size_t>(split) * MP + m) * p.np + row] = acc[nt][e];
      }
  }
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last_block = atomicAdd(p.counters + rb, 1u) == static_cast<unsigned>(p.splits - 1);
  __syncthreads();
  if (!last_block) return;
  __threadfence();
  // Thread → one row and every other token; all loads of a group of splits are independent, so
  // the reduction costs about one L2 round trip per kUnroll splits (4 at 16 tokens keeps the
  // kernel under its 128-register cap without spills).
  constexpr int kPer = MP / 2, kUnroll = NT == 2 ? 4 : 8;
  const int row = rb * W * 16 + threadIdx.x % (W * 16), m0 = threadIdx.x / (W * 16);  // 2·W·16 threads
  if (row < p.n) {
    float sum[kPer] = {};
    const float* src = p.ws + row;
#pragma unroll kUnroll
    for (int sp = 0; sp < p.splits; ++sp)
#pragma unroll
      for (int i = 0; i < kPer; ++i)
        if (m0 + 2 * i < p.m) sum[i] += __ldcg(src + (static_cast<size_t>(sp) * MP + m0 + 2 * i) * p.np);
#pragma unroll
    for (int i = 0; i < kPer; ++i)
      if (m0 + 2 * i < p.m) p.y[static_cast<size_t>(m0 + 2 * i) * p.n + row] = __float2half_rn(sum[i]);
  }
  if (threadIdx.x == 0) p.counters[rb] = 0;  // ready for the next launch (stream order)
}

template <int BITS, int NT, bool ASYM, int W>
void launch_warps(const GemvArgs& a, size_t smem, bool overlap, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((a.w.tiles + W - 1) / W), static_cast<unsigned>(a.splits));
  if (a.perm)
    launch_kernel(gemv_kernel<BITS, NT, ASYM, true, W>, grid, dim3(W * 32), smem, overlap, stream, a);
  else
    launch_kernel(gemv_kernel<BITS, NT, ASYM, false, W>, grid, dim3(W * 32), smem, overlap, stream, a);
  LLMC_CUDA_CHECK_LAUNCH("gemv_quantized");
}

template <int BITS, int NT, bool ASYM>
void launch(const GemvArgs& a, int warps, size_t smem, bool overlap, cudaStream_t stream) {
  // 16-warp blocks only above 8 tokens (plan_gemv), so the one-token kernels are built for 8 only.
  if constexpr (NT == 2)
    if (warps == 16) return launch_warps<BITS, NT, ASYM, 16>(a, smem, overlap, stream);
  launch_warps<BITS, NT, ASYM, 8>(a, smem, overlap, stream);
}

}  // namespace

void gemv_quantized(const GpuQuantWeight& w, const uint16_t* x, uint16_t* y, int64_t m, GemvWorkspace& ws,
                    cudaStream_t stream, int forced_splits) {
  const GemvLayout& l = w.layout();
  check(l.padded_rows() <= ws.max_rows(), "gemv_quantized: the workspace covers " + std::to_string(ws.max_rows()) +
                                              " rows, the weight has " + std::to_string(l.rows));
  const GemvPlan plan = plan_gemv(l, m, w.sm_count(), ws.max_splits(), forced_splits);
  GemvArgs a{};
  a.w = weight_view(w);
  a.x = reinterpret_cast<const __half*>(x);
  a.y = reinterpret_cast<__half*>(y);
  a.ws = ws.partials();
  a.counters = ws.counters();
  a.m = static_cast<int>(m);
  a.n = static_cast<int>(l.rows);
  a.k = static_cast<int>(l.cols);
  a.np = static_cast<int>(l.padded_rows());
  a.splits = plan.splits;
  a.chunks_per_split = plan.chunks_per_split;
  a.xs_stride = plan.xs_stride;
  a.x_vec = l.cols % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  a.perm = w.perm();
  const size_t smem = plan.smem_bytes;
  const int wp = plan.warps;
  const bool nt2 = m > 8;
  const bool overlap = w.compute_major() >= 9 && ws.options().overlap_launches;
  if (l.bits == 4) {
    if (l.symmetric)
      nt2 ? launch<4, 2, false>(a, wp, smem, overlap, stream) : launch<4, 1, false>(a, wp, smem, overlap, stream);
    else
      nt2 ? launch<4, 2, true>(a, wp, smem, overlap, stream) : launch<4, 1, true>(a, wp, smem, overlap, stream);
  } else {
    if (l.symmetric)
      nt2 ? launch<8, 2, false>(a, wp, smem, overlap, stream) : launch<8, 1, false>(a, wp, smem, overlap, stream);
    else
      nt2 ? launch<8, 2, true>(a, wp, smem, overlap, stream) : launch<8, 1, true>(a, wp, smem, overlap, stream);
  }
}

}  // namespace llmc::kernels::cuda
