// Split-over-keys attention for few queries (attention.hpp). head_dim 32, 64, 128: a GQA group's
// q heads per block on tensor cores with the slice count taken from the device-side length
// (attention_decode_mma.cuh). Any other even head_dim ≤ 256: one warp per key at a time with the
// head's dimensions spread over the lanes, an online softmax per warp, a merge across the block's
// warps in shared memory, and across the slices by the last block to finish (threadFenceReduction).
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/cuda/act_util.cuh"
#include "kernels/cuda/attention.hpp"
#include "kernels/cuda/cuda_check.hpp"

namespace llmc::kernels::cuda {

namespace {

using namespace detail;
constexpr int kWarps = 4;
constexpr int kUnroll = 4;
constexpr int kMaxSplits = 32;  // the merge keeps one split per lane of a warp
constexpr float kLog2e = 1.4426950408889634f;

struct DecodeArgs {
  const __half* q;
  int64_t ldq;
  const __half* kc;
  const __half* vc;
  __half* out;
  int64_t ldo;
  float* ws;
  unsigned* counters;
  const int32_t* past;
  int64_t rows, cap;
  int tokens, hq, hkv, d, splits;
  int group, chunks;  // q heads per KV head; blocks per KV head (tensor-core kernel)
  float scale_log2;
  bool causal;
  // FUSE (one token per sequence): the new key and value rows, rotated (when inv_freq is set)
  // and written to the cache by this kernel; q is rotated in shared memory, not in place.
  const __half* kn;
  int64_t ldk;
  const __half* vn;
  int64_t ldv;
  __half* kcw;
  __half* vcw;
  const float* inv_freq;
  int rot, half;
  bool neox;
};

// exp2 of a − b where a may be −inf (weight 0) and b is finite.
__device__ __forceinline__ float weight(float a, float b) { return a == -INFINITY ? 0.0f : exp2f(a - b); }

// E half2 pairs per lane: head_dim ≤ 64·E; dims 2·(lane + 32·e), 2·(lane + 32·e) + 1.
// Rotates pairs (a, b) of one head held in shared memory, in place, at position pos, then rounds
// every value to f16 as the unfused path stores it; threads stride over the pairs.
__device__ __forceinline__ void rotate_smem(float* x, const DecodeArgs& a, float pos) {
  for (int i = threadIdx.x; i < a.half; i += blockDim.x) {
    const int ia = a.neox ? i : 2 * i, ib = a.neox ? i + a.half : 2 * i + 1;
    float sn, cs;
    sincosf(pos * a.inv_freq[i], &sn, &cs);
    const float x0 = x[ia], x1 = x[ib];
    x[ia] = x0 * cs - x1 * sn;
    x[ib] = x1 * cs + x0 * sn;
  }
}

template <int E, bool FUSE>
__global__ void __launch_bounds__(kWarps * 32) decode_kernel(const DecodeArgs a) {
  __shared__ float sm_m[kWarps], sm_l[kWarps];
  __shared__ float sm_acc[kWarps][64 * E];
  __shared__ float sm_q[FUSE ? 64 * E : 1], sm_k[FUSE ? 64 * E : 1], sm_v[FUSE ? 64 * E : 1];
  __shared__ float sm_w[kMaxSplits];
  __shared__ bool last_block;
  pdl_begin();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int h = blockIdx.x, s = blockIdx.y;
  const int kvh = h / (a.hq / a.hkv);
  const int past = *a.past;
  for (int64_t row = blockIdx.z; row < a.rows; row += gridDim.z) {
    const int64_t b = row / a.tokens;
    const int i = static_cast<int>(row % a.tokens);
    const int len = a.causal ? past + i + 1 : past + a.tokens;
    const int chunk = (len + a.splits - 1) / a.splits;
    const int j0 = s * chunk, j1 = min(len, j0 + chunk);

    int j_end = j1;  // keys read from the cache: [j0, j_end)
    if constexpr (FUSE) {
      // This token's q, k, v (position past) into shared memory, rotated and rounded to f16 as
      // kv_append would store them; block (s = 0, first q head of the group) writes k, v to the
      // cache for later steps. No block of this launch reads position past from the cache.
      for (int dd = threadIdx.x; dd < a.d; dd += blockDim.x) {
        sm_q[dd] = __half2float(a.q[row * a.ldq + static_cast<int64_t>(h) * a.d + dd]);
        sm_k[dd] = __half2float(a.kn[row * a.ldk + static_cast<int64_t>(kvh) * a.d + dd]);
        sm_v[dd] = __half2float(a.vn[row * a.ldv + static_cast<int64_t>(kvh) * a.d + dd]);
      }
      __syncthreads();
      if (a.inv_freq) {
        rotate_smem(sm_q, a, static_cast<float>(past));
        rotate_smem(sm_k, a, static_cast<float>(past));
        __syncthreads();
        for (int dd = threadIdx.x; dd < a.d; dd += blockDim.x) {
          sm_q[dd] = __half2float(__float2half_rn(sm_q[dd]));
          sm_k[dd] = __half2float(__float2half_rn(sm_k[dd]));
        }
        __syncthreads();
      }
      if (s == 0 && h % (a.hq / a.hkv) == 0) {
        const int64_t off = ((b * a.cap + past) * a.hkv + kvh) * a.d;
        for (int dd = threadIdx.x; dd < a.d; dd += blockDim.x) {
          a.kcw[off + dd] = __float2half_rn(sm_k[dd]);
          a.vcw[off + dd] = __float2half_rn(sm_v[dd]);
        }
      }
      j_end = min(j1, past);
    }
    float2 qv[E], acc[E];
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const int dd = 2 * (lane + 32 * e);
      qv[e] = make_float2(0.0f, 0.0f);
      acc[e] = make_float2(0.0f, 0.0f);
      if (dd < a.d) {
        float2 f;
        if constexpr (FUSE)
          f = make_float2(sm_q[dd], sm_q[dd + 1]);
        else
          f = __half22float2(*reinterpret_cast<const __half2*>(a.q + row * a.ldq + static_cast<int64_t>(h) * a.d + dd));
        qv[e] = make_float2(f.x * a.scale_log2, f.y * a.scale_log2);
      }
    }
    // Warp w takes groups of kUnroll consecutive keys: their loads are all in flight before the
    // first dot product needs one, and their warp reductions interleave.
    float m = -INFINITY, l = 0.0f;
    for (int j = j0 + warp * kUnroll; j < j_end; j += kWarps * kUnroll) {
      float sc[kUnroll];
      float2 vv[kUnroll][E];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t off = ((b * a.cap + j + u) * a.hkv + kvh) * a.d;
        sc[u] = 0.0f;
#pragma unroll
        for (int e = 0; e < E; ++e) {
          const int dd = 2 * (lane + 32 * e);
          vv[u][e] = make_float2(0.0f, 0.0f);
          if (j + u < j_end && dd < a.d) {
            const float2 kf = __half22float2(*reinterpret_cast<const __half2*>(a.kc + off + dd));
            vv[u][e] = __half22float2(*reinterpret_cast<const __half2*>(a.vc + off + dd));
            sc[u] += qv[e].x * kf.x + qv[e].y * kf.y;
          }
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) sc[u] = warp_sum(sc[u]);  // scores in log2 units, in every lane
      float m_new = m;
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
        if (j + u < j_end) m_new = fmaxf(m_new, sc[u]);
      const float corr = weight(m, m_new);
      l *= corr;
#pragma unroll
      for (int e = 0; e < E; ++e) {
        acc[e].x *= corr;
        acc[e].y *= corr;
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (j + u >= j_end) continue;
        const float p = exp2f(sc[u] - m_new);
        l += p;
#pragma unroll
        for (int e = 0; e < E; ++e) {
          acc[e].x += p * vv[u][e].x;
          acc[e].y += p * vv[u][e].y;
        }
      }
      m = m_new;
    }
    if constexpr (FUSE) {
      if (warp == 0 && j0 <= past && past < j1) {  // the new key, from shared memory
        float sc = 0.0f;
#pragma unroll
        for (int e = 0; e < E; ++e) {
          const int dd = 2 * (lane + 32 * e);
          if (dd < a.d) sc += qv[e].x * sm_k[dd] + qv[e].y * sm_k[dd + 1];
        }
        sc = warp_sum(sc);
        const float m_new = fmaxf(m, sc), corr = weight(m, m_new), p = exp2f(sc - m_new);
        l = l * corr + p;
#pragma unroll
        for (int e = 0; e < E; ++e) {
          const int dd = 2 * (lane + 32 * e);
          const float2 vn = dd < a.d ? make_float2(sm_v[dd], sm_v[dd + 1]) : make_float2(0.0f, 0.0f);
          acc[e].x = acc[e].x * corr + p * vn.x;
          acc[e].y = acc[e].y * corr + p * vn.y;
        }
        m = m_new;
      }
    }
    // merge the warps
    if (lane == 0) {
      sm_m[warp] = m;
      sm_l[warp] = l;
    }
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const int dd = 2 * (lane + 32 * e);
      if (dd < a.d) {
        sm_acc[warp][dd] = acc[e].x;
        sm_acc[warp][dd + 1] = acc[e].y;
      }
    }
    __syncthreads();
    float bm = -INFINITY;
    for (int w = 0; w < kWarps; ++w) bm = fmaxf(bm, sm_m[w]);
    float bl = 0.0f;
    if (bm != -INFINITY)
      for (int w = 0; w < kWarps; ++w) bl += sm_l[w] * weight(sm_m[w], bm);
    const int64_t rh = row * a.hq + h;
    __half* orow = a.out + row * a.ldo + static_cast<int64_t>(h) * a.d;
    if (a.splits == 1) {
      for (int dd = threadIdx.x; dd < a.d; dd += blockDim.x) {
        float o = 0.0f;
        for (int w = 0; w < kWarps; ++w) o += sm_acc[w][dd] * weight(sm_m[w], bm);
        orow[dd] = __float2half_rn(o / bl);
      }
      __syncthreads();  // shared memory is reused by the next row
      continue;
    }
    float* part = a.ws + (rh * a.splits + s) * (a.d + 2);
    if (threadIdx.x == 0) {
      part[0] = bm;
      part[1] = bl;
    }
    for (int dd = threadIdx.x; dd < a.d; dd += blockDim.x) {
      float o = 0.0f;
      if (bm != -INFINITY)
        for (int w = 0; w < kWarps; ++w) o += sm_acc[w][dd] * weight(sm_m[w], bm);
      part[2 + dd] = o;
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last_block = atomicAdd(a.counters + rh, 1u) == static_cast<unsigned>(a.splits - 1);
    __syncthreads();
    if (last_block) {
      __threadfence();
      // Lane s of warp 0 reads split s's (max, sum) — all splits' loads in flight at once — and
      // the merged weights exp2(m_s − M) / L go through shared memory to every thread.
      const float* parts = a.ws + rh * a.splits * (a.d + 2);
      if (warp == 0) {
        const float ms = lane < a.splits ? __ldcg(parts + lane * (a.d + 2)) : -INFINITY;
        const float ls = lane < a.splits ? __ldcg(parts + lane * (a.d + 2) + 1) : 0.0f;
        const float gm = warp_max(ms);
        const float w = weight(ms, gm);
        const float gl = warp_sum(ls * w);
        if (lane < a.splits) sm_w[lane] = w / gl;
      }
      __syncthreads();
      for (int dd = threadIdx.x; dd < a.d; dd += blockDim.x) {
        float o = 0.0f;
#pragma unroll 8
        for (int sp = 0; sp < a.splits; ++sp) o += __ldcg(parts + sp * (a.d + 2) + 2 + dd) * sm_w[sp];
        orow[dd] = __float2half_rn(o);
      }
      if (threadIdx.x == 0) a.counters[rh] = 0;  // ready for the next launch (stream order)
    }
    __syncthreads();
  }
}

#include "kernels/cuda/attention_decode_mma.cuh"

}  // namespace

AttentionWorkspace::AttentionWorkspace(int64_t max_rows, int64_t q_heads, int64_t head_dim, int max_splits)
    : max_rows_(max_rows),
      q_heads_(q_heads),
      head_dim_(head_dim),
      max_splits_(max_splits),
      partials_(static_cast<size_t>(max_rows * q_heads * max_splits * (head_dim + 2))),
      counters_(static_cast<size_t>(max_rows * q_heads)) {
  check(max_rows > 0 && q_heads > 0 && head_dim > 0 && max_splits >= 1, "AttentionWorkspace: bad size");
  LLMC_CUDA_CHECK(cudaMemset(counters_.data(), 0, counters_.bytes()));
}

int attention_decode_splits(int64_t rows, int64_t q_heads, int sm_count, int max_splits) {
  const int64_t blocks = std::max<int64_t>(1, rows * q_heads);
  return static_cast<int>(std::clamp<int64_t>((4 * sm_count + blocks - 1) / blocks, 1, max_splits));
}

namespace {

DecodeArgs decode_args(Act q, const KvCacheView& cache, Act out, const AttentionParams& p, const int32_t* past,
                       AttentionWorkspace& ws, int splits) {
  check(q.type == ActType::F16 && out.type == ActType::F16, "attention_decode: q and out must be f16");
  check(p.head_dim > 0 && p.head_dim % 2 == 0 && p.head_dim <= 256,
        "attention_decode: head_dim " + std::to_string(p.head_dim) + " must be even and at most 256");
  check(p.kv_heads > 0 && p.q_heads % p.kv_heads == 0 && cache.kv_heads == p.kv_heads && cache.head_dim == p.head_dim,
        "attention_decode: heads do not match the cache");
  check(q.ld % 2 == 0 && reinterpret_cast<uintptr_t>(q.ptr) % 4 == 0, "attention_decode: q must be 4-byte aligned rows");
  const int64_t rows = p.batch * p.tokens;
  check(splits >= 1 && splits <= kMaxSplits && (splits == 1 || (splits <= ws.max_splits() && rows <= ws.max_rows())),
        "attention_decode: " + std::to_string(splits) + " splits over " + std::to_string(rows) +
            " rows exceed the workspace");
  DecodeArgs a{};
  a.q = static_cast<const __half*>(q.ptr);
  a.ldq = q.ld;
  a.kc = reinterpret_cast<const __half*>(cache.k);
  a.vc = reinterpret_cast<const __half*>(cache.v);
  a.out = static_cast<__half*>(out.ptr);
  a.ldo = out.ld;
  a.ws = ws.partials();
  a.counters = ws.counters();
  a.past = past;
  a.rows = rows;
  a.cap = cache.capacity;
  a.tokens = static_cast<int>(p.tokens);
  a.hq = static_cast<int>(p.q_heads);
  a.hkv = static_cast<int>(p.kv_heads);
  a.d = static_cast<int>(p.head_dim);
  a.group = a.hq / a.hkv;
  a.chunks = (a.group + kGroupRows - 1) / kGroupRows;
  a.splits = splits;
  a.scale_log2 = p.scale * kLog2e;
  a.causal = p.causal;
  return a;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The tensor-core kernel takes head_dim 32, 64, 128 over a 16-byte aligned cache whose positions
// of one sequence are addressed in 32 bits.
bool use_mma(const DecodeArgs& a) {
  return (a.d == 32 || a.d == 64 || a.d == 128) && aligned16(a.kc) && aligned16(a.vc) &&
         a.cap * a.hkv * a.d < (int64_t{1} << 31);
}

template <bool FUSE>
void launch_decode(const DecodeArgs& a, const AttentionParams& p, int splits, cudaStream_t stream) {
  const unsigned rows = static_cast<unsigned>(std::min<int64_t>(p.batch * p.tokens, 65535));
  if (use_mma(a)) {
    const dim3 grid(static_cast<unsigned>(p.kv_heads * a.chunks), static_cast<unsigned>(splits), rows);
    const dim3 block(kMmaWarps * 32);
    if (a.d == 32)
      launch_pdl(decode_kernel_mma<2, FUSE>, grid, block, stream, a);
    else if (a.d == 64)
      launch_pdl(decode_kernel_mma<4, FUSE>, grid, block, stream, a);
    else
      launch_pdl(decode_kernel_mma<8, FUSE>, grid, block, stream, a);
    return;
  }
  const dim3 grid(static_cast<unsigned>(p.q_heads), static_cast<unsigned>(splits), rows);
  const dim3 block(kWarps * 32);
  if (p.head_dim <= 64)
    launch_pdl(decode_kernel<1, FUSE>, grid, block, stream, a);
  else if (p.head_dim <= 128)
    launch_pdl(decode_kernel<2, FUSE>, grid, block, stream, a);
  else
    launch_pdl(decode_kernel<4, FUSE>, grid, block, stream, a);
}

}  // namespace

void attention_decode(Act q, const KvCacheView& cache, Act out, const AttentionParams& p, const int32_t* past,
                      AttentionWorkspace& ws, int splits, cudaStream_t stream) {
  const DecodeArgs a = decode_args(q, cache, out, p, past, ws, splits);
  if (a.rows == 0) return;
  launch_decode<false>(a, p, splits, stream);
  LLMC_CUDA_CHECK_LAUNCH("attention_decode");
}

void attention_decode_append(Act q, Act k, Act v, const KvCacheView& cache, Act out, const AttentionParams& p,
                             const RopeParams* rope, const int32_t* past, AttentionWorkspace& ws, int splits,
                             cudaStream_t stream) {
  check(p.tokens == 1, "attention_decode_append: one token per sequence");
  check(k.type == ActType::F16 && v.type == ActType::F16, "attention_decode_append: k and v must be f16");
  if (rope)
    check(rope->inv_freq && rope->rot_dim >= 2 && rope->rot_dim % 2 == 0 && rope->rot_dim <= p.head_dim,
          "attention_decode_append: bad rotary_dim");
  DecodeArgs a = decode_args(q, cache, out, p, past, ws, splits);
  if (a.rows == 0) return;
  a.kn = static_cast<const __half*>(k.ptr);
  a.ldk = k.ld;
  a.vn = static_cast<const __half*>(v.ptr);
  a.ldv = v.ld;
  a.kcw = reinterpret_cast<__half*>(cache.k);
  a.vcw = reinterpret_cast<__half*>(cache.v);
  a.inv_freq = rope ? rope->inv_freq : nullptr;
  a.rot = rope ? static_cast<int>(rope->rot_dim) : 0;
  a.half = a.rot / 2;
  a.neox = rope ? rope->neox : true;
  launch_decode<true>(a, p, splits, stream);
  LLMC_CUDA_CHECK_LAUNCH("attention_decode_append");
}

}  // namespace llmc::kernels::cuda
