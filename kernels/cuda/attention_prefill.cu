// Flash-style prefill attention (attention.hpp): 4 warps × 16 queries per block, K/V tiles of 64
// keys in shared memory (V transposed, so that P·V's B fragments are 32-bit loads), mma.m16n8k16
// f16 → f32, online softmax in base 2 with the scale folded in (FlashAttention-2, Dao 2023).
#include <cuda_fp16.h>

#include <cmath>
#include <string>

#include "kernels/cuda/act_util.cuh"
#include "kernels/cuda/attention.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/mma_util.cuh"

namespace llmc::kernels::cuda {

namespace {

using namespace detail;
constexpr int kBQ = 64, kBK = 64, kWarps = 4;
constexpr float kLog2e = 1.4426950408889634f;

struct PrefillArgs {
  const __half* q;
  int64_t ldq;
  const __half* kc;
  const __half* vc;
  __half* out;
  int64_t ldo;
  const int32_t* past;
  int64_t cap;
  int tokens, hq, hkv, group;
  float scale_log2;
  bool causal;
};

__device__ __forceinline__ uint32_t ld32(const __half* p) { return *reinterpret_cast<const uint32_t*>(p); }
__device__ __forceinline__ uint32_t pack_h2(float a, float b) { return as_u32(__floats2half2_rn(a, b)); }

// Fragment layouts (PTX ISA, mma.m16n8k16 with f16 A/B and f32 C), g = lane / 4, t = lane % 4:
//  A (16×16, row): reg0 (row g, k 2t..2t+1), reg1 (row g+8, same k), reg2 (row g, k 2t+8..), reg3 (row g+8, k 2t+8..)
//  B (16×8, col):  reg0 (k 2t..2t+1, col g), reg1 (k 2t+8..2t+9, col g)
//  C (16×8):       c0, c1 (row g, cols 2t, 2t+1), c2, c3 (row g+8, cols 2t, 2t+1)
template <int D>
__global__ void __launch_bounds__(kWarps * 32) prefill_kernel(const PrefillArgs a) {
  constexpr int KS = D / 16, DT = D / 8, KSTR = D + 8, VSTR = kBK + 8;
  __shared__ __align__(16) __half k_s[kBK * KSTR];
  __shared__ __align__(16) __half vt_s[D * VSTR];
  pdl_begin();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int qt = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int T = a.tokens, past = *a.past, kvh = h / a.group;
  const int q0 = qt * kBQ + warp * 16;
  const int kv_len = past + T;
  const int q_last = min(T, (qt + 1) * kBQ) - 1;
  const int k_end = a.causal ? min(kv_len, past + q_last + 1) : kv_len;

  uint32_t qa[KS][4];
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int i = q0 + g + 8 * rr;
    const __half* qp = a.q + (static_cast<int64_t>(b) * T + i) * a.ldq + static_cast<int64_t>(h) * D + 2 * t;
#pragma unroll
    for (int ks = 0; ks < KS; ++ks) {
      qa[ks][rr] = i < T ? ld32(qp + ks * 16) : 0u;
      qa[ks][2 + rr] = i < T ? ld32(qp + ks * 16 + 8) : 0u;
    }
  }
  // this thread's two rows: the last key each may see (exclusive bound)
  int row_end[2];
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) row_end[rr] = a.causal ? min(kv_len, past + q0 + g + 8 * rr + 1) : kv_len;

  float o[DT][4];
#pragma unroll
  for (int dt = 0; dt < DT; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const int64_t seq_base = static_cast<int64_t>(b) * a.cap;

  for (int k0 = 0; k0 < k_end; k0 += kBK) {
    __syncthreads();  // every warp is done with the previous tile
    for (int idx = threadIdx.x; idx < kBK * (D / 8); idx += kWarps * 32) {
      const int r = idx / (D / 8), c8 = (idx % (D / 8)) * 8, j = k0 + r;
      uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
      if (j < k_end) {  // rows past the end are zero: masked scores must not meet NaN garbage in V
        const int64_t off = ((seq_base + j) * a.hkv + kvh) * D + c8;
        kv = *reinterpret_cast<const uint4*>(a.kc + off);
        vv = *reinterpret_cast<const uint4*>(a.vc + off);
      }
      *reinterpret_cast<uint4*>(k_s + r * KSTR + c8) = kv;
      const __half* vh = reinterpret_cast<const __half*>(&vv);
#pragma unroll
      for (int e = 0; e < 8; ++e) vt_s[(c8 + e) * VSTR + r] = vh[e];
    }
    __syncthreads();

    float s[8][4];
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
      for (int ks = 0; ks < KS; ++ks) {
        const __half* kp = k_s + (nt * 8 + g) * KSTR + ks * 16 + 2 * t;
        mma_16816(s[nt], qa[ks], ld32(kp), ld32(kp + 8));
      }
    }
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int j = k0 + nt * 8 + 2 * t + e;
          float& v = s[nt][2 * rr + e];
          v = j < row_end[rr] ? v * a.scale_log2 : -INFINITY;
          mx = fmaxf(mx, v);
        }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[rr], mx);
      const float base = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing visible yet
      const float corr = exp2f(m[rr] - base);
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float& v = s[nt][2 * rr + e];
          v = exp2f(v - base);
          sum += v;
        }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      l[rr] = l[rr] * corr + sum;
      m[rr] = m_new;
#pragma unroll
      for (int dt = 0; dt < DT; ++dt) {
        o[dt][2 * rr] *= corr;
        o[dt][2 * rr + 1] *= corr;
      }
    }
    // P (C layout of two adjacent n8 tiles) is exactly the A fragment of one k16 step.
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      const uint32_t pa[4] = {pack_h2(s[2 * kk][0], s[2 * kk][1]), pack_h2(s[2 * kk][2], s[2 * kk][3]),
                              pack_h2(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_h2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dt = 0; dt < DT; ++dt) {
        const __half* vp = vt_s + (dt * 8 + g) * VSTR + kk * 16 + 2 * t;
        mma_16816(o[dt], pa, ld32(vp), ld32(vp + 8));
      }
    }
  }

#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int i = q0 + g + 8 * rr;
    if (i >= T) continue;
    const float inv = 1.0f / l[rr];
    __half* op = a.out + (static_cast<int64_t>(b) * T + i) * a.ldo + static_cast<int64_t>(h) * D + 2 * t;
#pragma unroll
    for (int dt = 0; dt < DT; ++dt)
      *reinterpret_cast<__half2*>(op + dt * 8) = __floats2half2_rn(o[dt][2 * rr] * inv, o[dt][2 * rr + 1] * inv);
  }
}

template <int D>
void launch(const PrefillArgs& a, int64_t batch, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((a.tokens + kBQ - 1) / kBQ), static_cast<unsigned>(a.hq),
                  static_cast<unsigned>(batch));
  launch_pdl(prefill_kernel<D>, grid, dim3(kWarps * 32), stream, a);
}

}  // namespace

bool attention_prefill_supports(int64_t head_dim) {
  return head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 80 || head_dim == 96 || head_dim == 128;
}

void attention_prefill(Act q, const KvCacheView& cache, Act out, const AttentionParams& p, const int32_t* past,
                       cudaStream_t stream) {
  check(attention_prefill_supports(p.head_dim),
        "attention_prefill: head_dim " + std::to_string(p.head_dim) + " is not supported (16, 32, 64, 80, 96, 128)");
  check(q.type == ActType::F16 && out.type == ActType::F16, "attention_prefill: q and out must be f16");
  check(p.kv_heads > 0 && p.q_heads % p.kv_heads == 0 && cache.kv_heads == p.kv_heads && cache.head_dim == p.head_dim,
        "attention_prefill: heads do not match the cache");
  check(q.ld % 2 == 0 && out.ld % 2 == 0 && reinterpret_cast<uintptr_t>(q.ptr) % 4 == 0 &&
            reinterpret_cast<uintptr_t>(out.ptr) % 4 == 0,
        "attention_prefill: q and out rows must be 4-byte aligned");
  check(p.batch >= 1 && p.batch <= 65535 && p.q_heads <= 65535 && p.tokens >= 1, "attention_prefill: bad shape");
  PrefillArgs a{};
  a.q = static_cast<const __half*>(q.ptr);
  a.ldq = q.ld;
  a.kc = reinterpret_cast<const __half*>(cache.k);
  a.vc = reinterpret_cast<const __half*>(cache.v);
  a.out = static_cast<__half*>(out.ptr);
  a.ldo = out.ld;
  a.past = past;
  a.cap = cache.capacity;
  a.tokens = static_cast<int>(p.tokens);
  a.hq = static_cast<int>(p.q_heads);
  a.hkv = static_cast<int>(p.kv_heads);
  a.group = static_cast<int>(p.q_heads / p.kv_heads);
  a.scale_log2 = p.scale * kLog2e;
  a.causal = p.causal;
  switch (p.head_dim) {
    case 16: launch<16>(a, p.batch, stream); break;
    case 32: launch<32>(a, p.batch, stream); break;
    case 64: launch<64>(a, p.batch, stream); break;
    case 80: launch<80>(a, p.batch, stream); break;
    case 96: launch<96>(a, p.batch, stream); break;
    default: launch<128>(a, p.batch, stream); break;
  }
  LLMC_CUDA_CHECK_LAUNCH("attention_prefill");
}

}  // namespace llmc::kernels::cuda
