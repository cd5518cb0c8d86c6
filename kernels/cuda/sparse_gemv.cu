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

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/quant_gemv_tile.cuh"
#include "kernels/cuda/sparse_gemv.hpp"

namespace llmc::kernels::cuda {

namespace {

using namespace detail;

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr size_t kMaxStageBytes = 96 * 1024;

struct SparseArgs {
  QWeightView w;  // packed = the codes [tile][super][lane], chunks = 4 per super
  const uint2* meta;
  int supers;
  int m, n, k;
  int tpb, wpt, spw, xs_stride;
  const __half* x;
  __half* y;
};

// d += A·B for a 2:4 sparse A (16×32 as 16×16 kept values + metadata e from the lanes SEL picks).
template <int SEL>
__device__ __forceinline__ void mma_sp_16832(float (&d)[4], const uint32_t (&a)[4], const uint4& b, uint32_t e) {
  asm("mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9, %10, %11}, {%0, %1, %2, %3}, %12, %13;"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b.x), "r"(b.y), "r"(b.z), "r"(b.w), "r"(e), "n"(SEL));
}

// One super's weights for this lane: four code words, two metadata words, four chunks' scales.
template <bool ASYM>
struct Super {
  uint4 q;
  uint2 e;
  __half2 s[4];
  uchar2 z[ASYM ? 4 : 1];

  __device__ __forceinline__ void load(const SparseArgs& p, int t, int g, int lane, int s_idx) {
    const size_t at = (static_cast<size_t>(t) * p.supers + s_idx) * 32 + lane;
    q = load_stream(p.w.packed + at);
    e = __ldg(p.meta + at);
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int idx = (group_of(p.w, s_idx * 4 + c) * p.w.tiles + t) * 8 + g;
      s[c] = __ldg(p.w.scales + idx);
      if constexpr (ASYM) z[c] = __ldg(p.w.zeros + idx);
    }
  }
};

template <int NT, bool ASYM>
__global__ void __launch_bounds__(kThreads, 2) sparse24_w4_kernel(const SparseArgs p) {
  extern __shared__ uint4 smem[];
  __half* xs = reinterpret_cast<__half*>(smem);
  float* part = reinterpret_cast<float*>(xs + p.m * p.xs_stride);  // [warp][NT·4][32]

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, tig = lane & 3;
  const int t = blockIdx.x * p.tpb + warp / p.wpt, ks = warp % p.wpt;
  const bool tile_ok = t < p.w.tiles;
  const int s0 = min(ks * p.spw, p.supers), s1 = min(s0 + p.spw, p.supers);

  Super<ASYM> cur;
  if (tile_ok && s0 < s1) cur.load(p, t, g, lane, s0);  // weights are constant: before the wait
  grid_dependency_wait();

  // x[0..m, 0..Kp) into shared memory, zero past K, pair (2t + 8j, +1) of each 32-input chunk at
  // pair position 4t + j.
  const int pairs = p.supers * 64, total = p.m * pairs;
  for (int i = threadIdx.x; i < total; i += kThreads) {
    const int mm = i / pairs, pp = i - mm * pairs, col = 2 * pp;
    const __half lo = col < p.k ? p.x[static_cast<int64_t>(mm) * p.k + col] : __float2half(0.0f);
    const __half hi = col + 1 < p.k ? p.x[static_cast<int64_t>(mm) * p.k + col + 1] : __float2half(0.0f);
    const int chunk = pp >> 4, pr = pp & 15;
    const int phys = chunk * 16 + (pr & 3) * 4 + (pr >> 2);
    *reinterpret_cast<__half2*>(xs + mm * p.xs_stride + 2 * phys) = __halves2half2(lo, hi);
  }
  __syncthreads();

  float acc[NT][4] = {};
  const __half* xrow[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) xrow[nt] = xs + min(nt * 8 + g, p.m - 1) * p.xs_stride + tig * 8;
  if (tile_ok) {
    for (int s = s0; s < s1; ++s) {
      Super<ASYM> next;
      if (s + 1 < s1) next.load(p, t, g, lane, s + 1);
      const uint32_t words[4] = {cur.q.x, cur.q.y, cur.q.z, cur.q.w};
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        __half2 sub_g, add_g8;
        if constexpr (ASYM) {
          sub_g = __float2half2_rn(1024.0f + cur.z[c].x);
          add_g8 = __float2half2_rn(-64.0f - cur.z[c].y);
        } else {
          sub_g = __float2half2_rn(1032.0f);
          add_g8 = __float2half2_rn(-72.0f);
        }
        uint32_t a[4];
        dequant_w4(words[c], sub_g, add_g8, a);
        const uint32_t e = c < 2 ? cur.e.x : cur.e.y;
        const float2 sf = __half22float2(cur.s[c]);
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          const uint4 b = *reinterpret_cast<const uint4*>(xrow[nt] + (s * 4 + c) * 32);
          float d[4] = {};
          if (c & 1)
            mma_sp_16832<1>(d, a, b, e);
          else
            mma_sp_16832<0>(d, a, b, e);
          acc[nt][0] += sf.x * d[0];
          acc[nt][1] += sf.x * d[1];
          acc[nt][2] += sf.y * d[2];
          acc[nt][3] += sf.y * d[3];
        }
      }
      cur = next;
    }
  }
  launch_dependents();

  if (!add_tile_partials<NT>(acc, part, warp, lane, ks, p.wpt) || !tile_ok) return;
  store_tile_f16<NT>(acc, p.y, p.m, p.n, t, g, tig);
}

int64_t stage_stride(const Sparse24QLayout& l) { return l.supers * 128 + 32; }  // + 64 bytes: rows g, g + 1 apart in the banks

}  // namespace

bool gemv_sparse24_w4_fits(const Sparse24QLayout& l, int64_t m) {
  return m >= 1 && m <= 16 && static_cast<size_t>(m * stage_stride(l) * 2) <= kMaxStageBytes;
}

void gemv_sparse24_w4(const GpuSparse24QWeight& w, const uint16_t* x, uint16_t* y, int64_t m, cudaStream_t stream) {
  const Sparse24QLayout& l = w.layout();
  if (!gemv_sparse24_w4_fits(l, m))
    throw Error("gemv_sparse24_w4: " + std::to_string(m) + " tokens of " + std::to_string(l.cols) +
                " inputs do not fit (1..16 tokens, m·K f16 within 96 KiB)");
  check(x && y, "gemv_sparse24_w4: null input or output");
  int tpb = 1;  // the fewest tiles per block that still give every SM a block
  while (tpb < kWarps && (l.tiles + 2 * tpb - 1) / (2 * tpb) >= w.sm_count()) tpb *= 2;
  SparseArgs a{};
  a.w.packed = reinterpret_cast<const uint4*>(w.codes());
  a.w.scales = reinterpret_cast<const __half2*>(w.scales());
  a.w.zeros = reinterpret_cast<const uchar2*>(w.zeros());
  a.w.tiles = static_cast<int>(l.tiles);
  a.w.chunks = static_cast<int>(l.chunks());
  a.w.n_groups = static_cast<int>(l.n_groups);
  a.w.k32_per_group = static_cast<int>(l.k32_per_group);
  a.w.group_shift = group_shift_of(l.k32_per_group);
  a.meta = reinterpret_cast<const uint2*>(w.meta());
  a.supers = static_cast<int>(l.supers);
  a.m = static_cast<int>(m);
  a.n = static_cast<int>(l.rows);
  a.k = static_cast<int>(l.cols);
  a.tpb = tpb;
  a.wpt = kWarps / tpb;
  a.spw = static_cast<int>((l.supers + a.wpt - 1) / a.wpt);
  a.xs_stride = static_cast<int>(stage_stride(l));
  a.x = reinterpret_cast<const __half*>(x);
  a.y = reinterpret_cast<__half*>(y);
  const int nt = m > 8 ? 2 : 1;
  const size_t smem = static_cast<size_t>(m * stage_stride(l) * 2) + static_cast<size_t>(kWarps * nt * 4 * 32 * 4);
  const dim3 grid(static_cast<unsigned>((l.tiles + tpb - 1) / tpb));
  check(w.compute_major() >= 8, "gemv_sparse24_w4: sparse tensor cores need sm_80 or newer");
  const bool overlap = w.compute_major() >= 9;
  if (nt == 2)
    l.symmetric ? launch_kernel(sparse24_w4_kernel<2, false>, grid, dim3(kThreads), smem, overlap, stream, a)
                : launch_kernel(sparse24_w4_kernel<2, true>, grid, dim3(kThreads), smem, overlap, stream, a);
  else
    l.symmetric ? launch_kernel(sparse24_w4_kernel<1, false>, grid, dim3(kThreads), smem, overlap, stream, a)
                : launch_kernel(sparse24_w4_kernel<1, true>, grid, dim3(kThreads), smem, overlap, stream, a);
  LLMC_CUDA_CHECK_LAUNCH("gemv_sparse24_w4");
}

}  // namespace llmc::kernels::cuda
