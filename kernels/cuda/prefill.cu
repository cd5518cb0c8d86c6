// Dequantization of the repacked weight to dense f16, and the prefill linear built on it.
#include <cuda_fp16.h>

#include <algorithm>

#include "kernels/cuda/mma_util.cuh"
#include "kernels/cuda/quant_gemv_tile.cuh"
#include "kernels/cuda/prefill.hpp"

namespace llmc::kernels::cuda {

namespace {

using namespace detail;

struct DequantArgs {
  const uint4* packed;
  const __half2* scales;
  const uchar2* zeros;
  __half* out;
  int n, k, tiles, chunks, n_groups, k32_per_group;
  int tile_begin, tile_end;  // the row tiles this launch dequantizes
};

// One warp per (tile, chunk) 512-byte block, grid-stride. The A fragment registers hold
// (row g: k, k+1), (row g+8: k, k+1), (row g: k+2, k+3), (row g+8: k+2, k+3) with k = kb; they
// go through a per-warp shared-memory tile so that global stores are whole 16-byte row segments.
template <int BITS, bool ASYM>
__global__ void __launch_bounds__(256) dequant_kernel(const DequantArgs p) {
  constexpr int kSub = BITS == 4 ? 2 : 1, KC = 32 * kSub, kStride = KC + 8;  // +8: fewer conflicts
  __shared__ __align__(16) __half tile_smem[8][16 * kStride];
  const int lane = threadIdx.x & 31, g = lane >> 2, tig = lane & 3;
  __half* tile = tile_smem[threadIdx.x >> 5];
  const long total = static_cast<long>(p.tile_end) * p.chunks;
  for (long blk = static_cast<long>(p.tile_begin) * p.chunks + (static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
       blk < total;
       blk += static_cast<long>(gridDim.x) * blockDim.x / 32) {
    const int t = static_cast<int>(blk / p.chunks), c = static_cast<int>(blk % p.chunks);
    const uint4 q = load_stream(p.packed + blk * 32 + lane);
    const uint32_t wv[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int sb = 0; sb < kSub; ++sb) {
      const int k32 = c * kSub + sb;
      const int grp = p.k32_per_group == 0 ? 0 : min(k32 / p.k32_per_group, p.n_groups - 1);
      const int idx = (grp * p.tiles + t) * 8 + g;
      const __half2 s = __ldg(p.scales + idx);
      const __half2 s_g = __low2half2(s), s_g8 = __high2half2(s);
      __half2 sub_g, sub_g8, add_g8;
      if constexpr (ASYM) {
        const uchar2 z = __ldg(p.zeros + idx);
        sub_g = __float2half2_rn(1024.0f + z.x);
        sub_g8 = __float2half2_rn(1024.0f + z.y);
        add_g8 = __float2half2_rn(-64.0f - z.y);
      } else {
        sub_g = sub_g8 = __float2half2_rn(BITS == 4 ? 1032.0f : 1152.0f);
        add_g8 = __float2half2_rn(-72.0f);
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        uint32_t a[4];
        if constexpr (BITS == 4)
          dequant_w4(wv[sb * 2 + h], sub_g, add_g8, a);
        else
          dequant_w8(wv[2 * h], wv[2 * h + 1], sub_g, sub_g8, a);
        // (q − z) is exact in f16; one rounding of s·(q − z), as the f32 reference rounded to f16.
        const int col = sb * 32 + tig * 8 + h * 4;
        *reinterpret_cast<uint2*>(tile + g * kStride + col) =
            make_uint2(as_u32(__hmul2(as_h2(a[0]), s_g)), as_u32(__hmul2(as_h2(a[2]), s_g)));
        *reinterpret_cast<uint2*>(tile + (g + 8) * kStride + col) =
            make_uint2(as_u32(__hmul2(as_h2(a[1]), s_g8)), as_u32(__hmul2(as_h2(a[3]), s_g8)));
      }
    }
    __syncwarp();
    constexpr int kSegs = KC / 8;  // 16-byte segments per tile row
#pragma unroll
    for (int j = 0; j < 16 * kSegs / 32; ++j) {
      const int i = j * 32 + lane, r = i / kSegs, seg = i % kSegs;
      const int row = t * 16 + r, k0 = c * KC + seg * 8;
      if (row >= p.n || k0 >= p.k) continue;
      const __half* src = tile + r * kStride + seg * 8;
      __half* dst = p.out + static_cast<size_t>(row) * p.k + k0;
      if ((p.k & 7) == 0) {  // k0 + 8 ≤ K and 16-byte aligned
        *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
      } else {
        for (int e = 0; e < 8 && k0 + e < p.k; ++e) dst[e] = src[e];
      }
    }
    __syncwarp();  // the tile is rewritten by the next block
  }
}

template <int BITS, bool ASYM>
void launch(const DequantArgs& a, int sm_count, cudaStream_t stream) {
  const long blocks_needed = (static_cast<long>(a.tile_end - a.tile_begin) * a.chunks + 7) / 8;
  const unsigned grid = static_cast<unsigned>(std::min<long>(blocks_needed, 8L * sm_count));
  dequant_kernel<BITS, ASYM><<<grid, 256, 0, stream>>>(a);
  LLMC_CUDA_CHECK_LAUNCH("dequantize_to_f16");
}

// out[r, c] = x[r, perm[c]] (the act-order permutation of a prefill's input): block r copies row
// r into shared memory as it is, then writes out's row from shared memory at perm[c]; with
// `vec` (K a multiple of 8, rows 16-byte aligned) a thread moves 8 columns per 16-byte access
// and reads 8 indices per two, every access of its columns issued before any is used (one round
// trip each way where K ≤ 2048, instead of one per column). Rows over the default 48 KiB of
// shared memory read x at perm[c] directly.
__global__ void __launch_bounds__(256) permute_rows_kernel(const __half* x, const int32_t* perm, __half* out, int m,
                                                           int k, bool staged, bool vec) {
  extern __shared__ uint4 row4[];
  __half* row = reinterpret_cast<__half*>(row4);
  for (int r = blockIdx.x; r < m; r += gridDim.x) {
    const __half* src = x + static_cast<size_t>(r) * k;
    __half* dst = out + static_cast<size_t>(r) * k;
    if (vec) {
      const int k8 = k / 8;
#pragma unroll 4
      for (int v = threadIdx.x; v < k8; v += blockDim.x) row4[v] = reinterpret_cast<const uint4*>(src)[v];
      __syncthreads();
#pragma unroll 2
      for (int v = threadIdx.x; v < k8; v += blockDim.x) {
        int col[8];
        detail::load_perm8(perm, k, v * 8, col);
        __half h[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) h[e] = row[col[e]];
        uint4 u;
        memcpy(&u, h, 16);
        reinterpret_cast<uint4*>(dst)[v] = u;
      }
    } else {
      if (staged) {
        for (int c = threadIdx.x; c < k; c += blockDim.x) row[c] = src[c];
        __syncthreads();
      }
      for (int c = threadIdx.x; c < k; c += blockDim.x) {
        const int j = __ldg(perm + c);
        dst[c] = staged ? row[j] : src[j];
      }
    }
    __syncthreads();  // the row is rewritten by the next r
  }
}

}  // namespace

namespace {

// Where the permuted input starts in the scratch: after the dequantized weight, 256-byte aligned.
int64_t permuted_input_offset(int64_t n, int64_t k) { return (n * k + 127) / 128 * 128; }

// The input of an act-order weight's GEMM: x[:, perm] into the scratch after the dequantized
// weight; x itself otherwise.
const uint16_t* gemm_input(const GpuQuantWeight& w, const uint16_t* x, int64_t m, uint16_t* scratch,
                           cudaStream_t stream) {
  if (!w.perm()) return x;
  const GemvLayout& l = w.layout();
  uint16_t* xg = scratch + permuted_input_offset(l.rows, l.cols);
  const bool staged = l.cols * 2 <= 48 * 1024;
  const bool vec = staged && l.cols % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;  // xg: 256-byte aligned
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(m, 8 * int64_t{w.sm_count()}));
  permute_rows_kernel<<<grid, 256, staged ? l.cols * 2 : 0, stream>>>(reinterpret_cast<const __half*>(x), w.perm(),
                                                                      reinterpret_cast<__half*>(xg), static_cast<int>(m),
                                                                      static_cast<int>(l.cols), staged, vec);
  LLMC_CUDA_CHECK_LAUNCH("permute_rows (act-order prefill input)");
  return xg;
}

// Dequantizes row tiles [t0, t1) of w into out (the whole N×K matrix's storage).
void dequantize_tiles(const GpuQuantWeight& w, int64_t t0, int64_t t1, uint16_t* out, cudaStream_t stream) {
  const GemvLayout& l = w.layout();
  DequantArgs a{};
  a.packed = reinterpret_cast<const uint4*>(w.packed());
  a.scales = reinterpret_cast<const __half2*>(w.scales());
  a.zeros = reinterpret_cast<const uchar2*>(w.zeros());
  a.out = reinterpret_cast<__half*>(out);
  a.n = static_cast<int>(l.rows);
  a.k = static_cast<int>(l.cols);
  a.tiles = static_cast<int>(l.tiles);
  a.chunks = static_cast<int>(l.chunks);
  a.n_groups = static_cast<int>(l.n_groups);
  a.k32_per_group = static_cast<int>(l.k32_per_group);
  a.tile_begin = static_cast<int>(t0);
  a.tile_end = static_cast<int>(t1);
  if (t1 <= t0) return;
  if (l.bits == 4)
    l.symmetric ? launch<4, false>(a, w.sm_count(), stream) : launch<4, true>(a, w.sm_count(), stream);
  else
    l.symmetric ? launch<8, false>(a, w.sm_count(), stream) : launch<8, true>(a, w.sm_count(), stream);
}

}  // namespace

void dequantize_to_f16(const GpuQuantWeight& w, uint16_t* out, cudaStream_t stream) {
  dequantize_tiles(w, 0, w.layout().tiles, out, stream);
}

int64_t quantized_prefill_scratch(int64_t n, int64_t k, bool act_order, int64_t m) {
  return act_order ? permuted_input_offset(n, k) + m * k : n * k;
}

void linear_quantized_prefill(const GpuQuantWeight& w, const CublasHandle& h, const uint16_t* x, uint16_t* y,
                              int64_t m, uint16_t* scratch, cudaStream_t stream) {
  const uint16_t* xin = gemm_input(w, x, m, scratch, stream);
  dequantize_to_f16(w, scratch, stream);
  linear_f16(h, xin, scratch, y, m, w.layout().rows, w.layout().cols, stream);
}

PrefillPipeline::PrefillPipeline() {
  LLMC_CUDA_CHECK(cudaStreamCreateWithFlags(&aux_, cudaStreamNonBlocking));
  LLMC_CUDA_CHECK(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming));
  for (auto& e : done_) LLMC_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
}

PrefillPipeline::~PrefillPipeline() {
  for (auto& e : done_)
    if (e) cudaEventDestroy(e);
  if (fork_) cudaEventDestroy(fork_);
  if (aux_) cudaStreamDestroy(aux_);
}

void linear_quantized_prefill_pipelined(const GpuQuantWeight& w, const CublasHandle& h, PrefillPipeline& pp,
                                        const uint16_t* x, uint16_t* y, int64_t m, uint16_t* scratch,
                                        cudaStream_t stream) {
  const GemvLayout& l = w.layout();
  constexpr int kC = PrefillPipeline::kChunks;
  x = gemm_input(w, x, m, scratch, stream);
  // The fork orders the auxiliary stream after everything already queued on `stream` (the
  // previous call's GEMMs still reading scratch included); waiting on each chunk's event joins it
  // back, which also makes the pair capturable in one CUDA graph.
  LLMC_CUDA_CHECK(cudaEventRecord(pp.fork(), stream));
  LLMC_CUDA_CHECK(cudaStreamWaitEvent(pp.aux(), pp.fork(), 0));
  int64_t bounds[kC + 1];
  for (int c = 0; c <= kC; ++c) bounds[c] = l.tiles * c / kC;
  for (int c = 0; c < kC; ++c) {
    dequantize_tiles(w, bounds[c], bounds[c + 1], scratch, pp.aux());
    LLMC_CUDA_CHECK(cudaEventRecord(pp.done(c), pp.aux()));
  }
  for (int c = 0; c < kC; ++c) {
    LLMC_CUDA_CHECK(cudaStreamWaitEvent(stream, pp.done(c), 0));
    const int64_t r0 = 16 * bounds[c], r1 = std::min<int64_t>(16 * bounds[c + 1], l.rows);
    if (r1 > r0) linear_f16(h, x, scratch + r0 * l.cols, y + r0, m, r1 - r0, l.cols, stream, l.rows);
  }
}

}  // namespace llmc::kernels::cuda
