// Decode attention for head_dim 32, 64 or 128 on tensor cores, included by attention_decode.cu
// (which holds DecodeArgs, weight() and the general kernel for every other head_dim).
//
// One block per (row, KV head, up to 8 of its q heads, slice of keys): the GQA group's q heads are
// the rows of one m16n8k16 tile (rows 8..15 zero), so each K/V row is read once for all of them
// instead of once per q head, and S = Q·Kᵀ and O += P·V are two MMAs per 8 or 16 keys instead of
// a warp reduction per key and head (FlashAttention-2 §3.1's register layout, applied to decode).
// The number of slices is decided on the device from *past, not at launch: up to kSingle keys
// (all of them in flight at once: 8 warps × kSteps × 16 keys) take one slice that writes the
// output directly — no partials, fence, counter or merge; beyond that about kMulti keys per slice,
// at most the launch's grid.y slices, merged by the last block to arrive from L2 in one round of
// loads. Blocks past the row's slice count return at once, so the grid (and a captured graph)
// stays fixed while the length grows. Every block of a (row, head group) reads the same *past, so
// all agree on the slice count the arrival counter waits for.
//
// Programmatic dependent launch: *past and the cache rows before it are not written by the kernel
// before this one in the stream (attention.hpp), so with the append folded in (FUSE) they are read
// before griddepcontrol.wait and the first K/V round trip overlaps that kernel's tail; q, k, v of
// this token come after the wait.
#pragma once

constexpr int kMmaWarps = 8;
constexpr int kGroupRows = 8;  // q heads per block: the rows g = lane / 4 of the MMA tile

// head_dim = 16·KD. The thread (g = lane / 4, t = lane % 4) of an MMA holds k indices 2t, 2t+1,
// 2t+8, 2t+9; dimension order inside a dot product is free as long as Q and K agree, so k chunk c
// of lane t is dims t·d/4 + 4c .. + 3: each lane loads one contiguous d/4 of a key row. For P·V,
// output column n of n-tile nt is dim n·d/8 + nt, so each lane loads one contiguous d/8 of a V row.
template <int KD>
struct MmaDecode {
  static constexpr int D = 16 * KD;
  // 16-key steps per warp in flight: 128 registers of K/V (64 for d = 128, where more spill).
  static constexpr int kSteps = KD >= 8 ? 1 : 16 / KD;
  static constexpr int kSingle = 2048 / KD;  // keys of one slice: 128 KB of K and V
  static constexpr int kMulti = 256 / KD;    // keys per slice beyond kSingle
  static constexpr int KW = 2 * KD;          // words of K per lane per key
  static constexpr int VW = KD;              // words of V per lane per key
};

// n 32-bit words from p (16-byte aligned when n % 4 == 0, else 8-byte), or zeros when !ok.
template <int N>
__device__ __forceinline__ void load_words(uint32_t (&w)[N], const __half* p, bool ok) {
  if constexpr (N % 4 == 0) {
#pragma unroll
    for (int i = 0; i < N / 4; ++i) {
      const uint4 v = ok ? reinterpret_cast<const uint4*>(p)[i] : make_uint4(0, 0, 0, 0);
      w[4 * i] = v.x, w[4 * i + 1] = v.y, w[4 * i + 2] = v.z, w[4 * i + 3] = v.w;
    }
  } else {
    static_assert(N % 2 == 0);
#pragma unroll
    for (int i = 0; i < N / 2; ++i) {
      const uint2 v = ok ? reinterpret_cast<const uint2*>(p)[i] : make_uint2(0, 0);
      w[2 * i] = v.x, w[2 * i + 1] = v.y;
    }
  }
}

template <int KD, bool FUSE>
__global__ void __launch_bounds__(kMmaWarps * 32, 1) decode_kernel_mma(const DecodeArgs a) {
  using C = MmaDecode<KD>;
  constexpr int D = C::D, S = C::kSteps;
  __shared__ __align__(16) __half sm_q[kGroupRows][D];
  __shared__ __align__(16) __half sm_kn[FUSE ? D : 8];
  __shared__ __align__(16) __half sm_vn[FUSE ? D : 8];
  __shared__ float sm_m[kMmaWarps][kGroupRows], sm_l[kMmaWarps][kGroupRows];
  __shared__ float sm_acc[kMmaWarps][kGroupRows][D];
  __shared__ float sm_wt[kMmaWarps][kGroupRows], sm_bm[kGroupRows], sm_bl[kGroupRows];
  __shared__ bool last_block;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  // Fewer dependent instructions before the first K/V load: no division where a GQA group takes one
  // block or a row is one token, and cache offsets within a sequence in 32 bits (use_mma checks).
  const int kvh = a.chunks == 1 ? static_cast<int>(blockIdx.x) : static_cast<int>(blockIdx.x) / a.chunks;
  const int chunk = static_cast<int>(blockIdx.x) - kvh * a.chunks;
  const int h0 = kvh * a.group + chunk * kGroupRows, nh = min(kGroupRows, a.group - chunk * kGroupRows);
  const int s = blockIdx.y;
  const int past = *a.past;  // before the wait: not written by the kernel before (attention.hpp)
  // The rotation of this thread's pairs in the staging below: every pass of that loop gives a
  // thread the same pair index (threads are a multiple of D / 2), so its sine and cosine come
  // once, here, before the wait instead of on the path after it.
  static_assert((kMmaWarps * 32) % (D / 2) == 0);
  float rot_sn = 0.0f, rot_cs = 1.0f;
  if constexpr (FUSE) {
    const int p = static_cast<int>(threadIdx.x) % (D / 2);
    if (a.inv_freq && p < a.half) sincosf(static_cast<float>(past) * a.inv_freq[p], &rot_sn, &rot_cs);
  }
  bool waited = false;
  const int kstride = a.hkv * D;  // between positions of the cache
  for (int64_t row = blockIdx.z; row < a.rows; row += gridDim.z) {
    const int64_t b = a.tokens == 1 ? row : row / a.tokens;
    const int i = a.tokens == 1 ? 0 : static_cast<int>(row % a.tokens);
    const int len = a.causal ? past + i + 1 : past + a.tokens;

    const int nsplit = len <= C::kSingle ? 1 : min(a.splits, (len + C::kMulti - 1) / C::kMulti);
    if (s >= nsplit) continue;  // the same for the whole block
    const int per = (len + nsplit - 1) / nsplit;
    const int j0 = s * per, j1 = min(len, j0 + per);
    const int jg = FUSE ? min(j1, past) : j1;  // keys [j0, jg) come from the cache
    const int groups = max(0, (j1 - j0 + 15) / 16);
    const __half* kb = a.kc + (b * a.cap * a.hkv + kvh) * D + t * (D / 4);
    const __half* vb = a.vc + (b * a.cap * a.hkv + kvh) * D + g * (D / 8);

    // Warp w takes 16-key groups w, w + 8, .. w + 8·(S − 1), then the next 8·S. The first batch of
    // loads goes out before q is staged and rotated (with FUSE before the PDL wait: keys < past
    // only), so the cache round trip overlaps both.
    uint32_t kf[S][2][C::KW], vf[S][4][C::VW];
    auto load = [&](int g0) {
#pragma unroll
      for (int u = 0; u < S; ++u) {
        const int jb = j0 + (g0 + u * kMmaWarps) * 16;
#pragma unroll
        for (int tau = 0; tau < 2; ++tau) {
          const int j = jb + tau * 8 + g;
          load_words(kf[u][tau], kb + j * kstride, j < jg);
        }
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const int j = jb + 2 * t + (q & 1) + (q >> 1) * 8;
          load_words(vf[u][q], vb + j * kstride, j < jg);
        }
      }
    };
    int g0 = warp;
    if (FUSE && g0 < groups) load(g0);
    if (!waited) {  // q, k, v and the cache rows at past and later may be the previous kernel's
      grid_dependency_wait();
      launch_dependents();  // after the wait, as every kernel here: see attention.hpp
      waited = true;
    }
    if (!FUSE && g0 < groups) load(g0);

    // q of the group's heads (with FUSE also this token's k and v) go to shared memory as f16,
    // q and k rotated as kv_append would store them; block (s = 0, chunk 0) writes k, v to the
    // cache at past. Each thread takes pairs of dims: a rotation pair (both halves from one
    // sin/cos) where rotated, else two neighbours; rows nh.. of the tile stay zero.
    constexpr int kRows = FUSE ? kGroupRows + 2 : kGroupRows, kPairs = kRows * D / 2;
#pragma unroll
    for (int r = 0; r < (kPairs + kMmaWarps * 32 - 1) / (kMmaWarps * 32); ++r) {
      const int idx = threadIdx.x + r * kMmaWarps * 32, hh = idx / (D / 2), p = idx % (D / 2);
      if (idx >= kPairs) break;
      const __half* src = nullptr;
      if (hh < nh)
        src = a.q + row * a.ldq + static_cast<int64_t>(h0 + hh) * D;
      else if (FUSE && hh == kGroupRows)
        src = a.kn + row * a.ldk + static_cast<int64_t>(kvh) * D;
      else if (FUSE && hh == kGroupRows + 1)
        src = a.vn + row * a.ldv + static_cast<int64_t>(kvh) * D;
      const bool rot = FUSE && src && a.inv_freq && hh <= kGroupRows && p < a.half;
      // dims of the pair: (p, p + half) or (2p, 2p + 1) where rotated; the unrotated tail of a
      // neox row continues at rot in neighbours
      int ia = 2 * p, ib = 2 * p + 1;
      if (rot && a.neox) ia = p, ib = p + a.half;
      else if (FUSE && a.inv_freq && a.neox && p >= a.half) ia = a.rot + 2 * (p - a.half), ib = ia + 1;
      float x0 = src ? __half2float(src[ia]) : 0.0f, x1 = src ? __half2float(src[ib]) : 0.0f;
      if (rot) {  // (x0, x1) → (x0·cos − x1·sin, x1·cos + x0·sin), the arithmetic of rotate_smem
        const float y0 = x0 * rot_cs - x1 * rot_sn, y1 = x1 * rot_cs + x0 * rot_sn;
        x0 = y0, x1 = y1;
      }
      const __half h0x = __float2half_rn(x0), h1x = __float2half_rn(x1);
      if (hh < kGroupRows) {
        sm_q[hh][ia] = h0x;
        sm_q[hh][ib] = h1x;
      } else if constexpr (FUSE) {
        const bool is_k = hh == kGroupRows;
        __half* sm = is_k ? sm_kn : sm_vn;
        sm[ia] = h0x;
        sm[ib] = h1x;
        if (s == 0 && chunk == 0) {
          __half* c = (is_k ? a.kcw : a.vcw) + ((b * a.cap + past) * a.hkv + kvh) * D;
          c[ia] = h0x;
          c[ib] = h1x;
        }
      }
    }
    __syncthreads();
    uint32_t qa[C::KW];  // lane's d/4 dims of head g: words 2c, 2c + 1 are a0, a2 of k chunk c
    {
      uint32_t w[C::KW];
      load_words(w, &sm_q[g][t * (D / 4)], true);
#pragma unroll
      for (int c = 0; c < C::KW; ++c) qa[c] = w[c];
    }

    float m = -INFINITY, l = 0.0f, acc[2 * KD][2] = {};  // rows g; n-tile nt, columns 2t, 2t + 1
    while (g0 < groups) {
#pragma unroll
      for (int u = 0; u < S; ++u) {
        const int jb = j0 + (g0 + u * kMmaWarps) * 16;
        if (jb >= j1) break;  // warp-uniform
        if constexpr (FUSE) {  // the new key and value come from shared memory
#pragma unroll
          for (int tau = 0; tau < 2; ++tau)
            if (jb + tau * 8 + g == past) load_words(kf[u][tau], sm_kn + t * (D / 4), true);
#pragma unroll
          for (int q = 0; q < 4; ++q)
            if (jb + 2 * t + (q & 1) + (q >> 1) * 8 == past) load_words(vf[u][q], sm_vn + g * (D / 8), true);
        }
        float sc[2][2];
#pragma unroll
        for (int tau = 0; tau < 2; ++tau) {
          float c4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
          for (int c = 0; c < KD; ++c) {
            const uint32_t a4[4] = {qa[2 * c], 0u, qa[2 * c + 1], 0u};
            mma_16816(c4, a4, kf[u][tau][2 * c], kf[u][tau][2 * c + 1]);
          }
          const int j = jb + tau * 8 + 2 * t;
          sc[tau][0] = j < j1 ? c4[0] * a.scale_log2 : -INFINITY;
          sc[tau][1] = j + 1 < j1 ? c4[1] * a.scale_log2 : -INFINITY;
        }
        float mx = fmaxf(fmaxf(sc[0][0], sc[0][1]), fmaxf(sc[1][0], sc[1][1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m, mx), corr = weight(m, m_new);
        // P rounded to f16 for the MMA; l sums the rounded weights so that O / l stays a convex
        // combination of the values.
        const __half2 p0 = __floats2half2_rn(weight(sc[0][0], m_new), weight(sc[0][1], m_new));
        const __half2 p1 = __floats2half2_rn(weight(sc[1][0], m_new), weight(sc[1][1], m_new));
        const float2 f0 = __half22float2(p0), f1 = __half22float2(p1);
        l = l * corr + ((f0.x + f0.y) + (f1.x + f1.y));
        m = m_new;
        const uint32_t pa[4] = {as_u32(p0), 0u, as_u32(p1), 0u};
#pragma unroll
        for (int nt = 0; nt < 2 * KD; ++nt) {
          const uint32_t sel = nt & 1 ? 0x7632u : 0x5410u;  // high or low halves of two words
          const uint32_t b0 = __byte_perm(vf[u][0][nt / 2], vf[u][1][nt / 2], sel);
          const uint32_t b1 = __byte_perm(vf[u][2][nt / 2], vf[u][3][nt / 2], sel);
          float c4[4] = {acc[nt][0] * corr, acc[nt][1] * corr, 0.0f, 0.0f};
          mma_16816(c4, pa, b0, b1);
          acc[nt][0] = c4[0];
          acc[nt][1] = c4[1];
        }
      }
      g0 += kMmaWarps * S;
      if (g0 < groups) load(g0);
    }
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    if (t == 0) {
      sm_m[warp][g] = m;
      sm_l[warp][g] = l;
    }
#pragma unroll
    for (int nt = 0; nt < 2 * KD; ++nt) {
      sm_acc[warp][g][(2 * t) * (D / 8) + nt] = acc[nt][0];
      sm_acc[warp][g][(2 * t + 1) * (D / 8) + nt] = acc[nt][1];
    }
    __syncthreads();

    // Merge the warps: thread (w, hh) of the first 64 finds head hh's max and sum over the warps
    // and warp w's weight in it (over the sum too with one slice), so that each output element
    // below is 8 multiply-adds. One slice: the output, else this slice's partial (max, sum, output).
    if (threadIdx.x < kMmaWarps * kGroupRows) {
      const int w = threadIdx.x / kGroupRows, hh = threadIdx.x % kGroupRows;
      float bm = -INFINITY;
#pragma unroll
      for (int ww = 0; ww < kMmaWarps; ++ww) bm = fmaxf(bm, sm_m[ww][hh]);
      float bl = 0.0f;
#pragma unroll
      for (int ww = 0; ww < kMmaWarps; ++ww) bl += sm_l[ww][hh] * weight(sm_m[ww][hh], bm);
      const float wt = weight(sm_m[w][hh], bm);
      sm_wt[w][hh] = nsplit == 1 ? wt / bl : wt;
      if (w == 0) sm_bl[hh] = bl, sm_bm[hh] = bm;
    }
    __syncthreads();
    const int64_t rh0 = row * a.hq + h0;
    for (int idx = threadIdx.x; idx < nh * D; idx += blockDim.x) {
      const int hh = idx / D, dd = idx % D;
      float o = 0.0f;
#pragma unroll
      for (int w = 0; w < kMmaWarps; ++w) o += sm_acc[w][hh][dd] * sm_wt[w][hh];
      if (nsplit == 1) {
        a.out[row * a.ldo + static_cast<int64_t>(h0 + hh) * D + dd] = __float2half_rn(o);
      } else {
        float* part = a.ws + ((rh0 + hh) * a.splits + s) * (D + 2);
        if (dd == 0) {
          part[0] = sm_bm[hh];
          part[1] = sm_bl[hh];
        }
        part[2 + dd] = o;
      }
    }
    if (nsplit > 1) {
      __threadfence();
      __syncthreads();
      if (threadIdx.x == 0)
        last_block = atomicAdd(a.counters + rh0, 1u) == static_cast<unsigned>(nsplit - 1);
      __syncthreads();
      if (last_block) {
        __threadfence();
        // Warp hh merges head hh: lane sp loads slice sp's (max, sum) while every lane loads its
        // D / 32 dims of all slices' outputs (kBatch slices at a time), so one round of L2 loads
        // is exposed, not one per slice; the weights exp2(m_sp − M) / L go round by shuffles.
        constexpr int DL = D / 32, kBatch = DL >= 4 ? 16 : 32;
        for (int hh = warp; hh < nh; hh += kMmaWarps) {
          const float* parts = a.ws + (rh0 + hh) * a.splits * (D + 2);
          const float ms = lane < nsplit ? __ldcg(parts + lane * (D + 2)) : -INFINITY;
          const float ls = lane < nsplit ? __ldcg(parts + lane * (D + 2) + 1) : 0.0f;
          float go[DL] = {}, wn = 0.0f;
          for (int s0 = 0; s0 < nsplit; s0 += kBatch) {
            float os[kBatch][DL];
#pragma unroll
            for (int u = 0; u < kBatch; ++u)
#pragma unroll
              for (int e = 0; e < DL; ++e)
                os[u][e] = s0 + u < nsplit ? __ldcg(parts + (s0 + u) * (D + 2) + 2 + lane + 32 * e) : 0.0f;
            if (s0 == 0) {  // after the first batch's loads are out
              const float gm = warp_max(ms), wl = weight(ms, gm);
              wn = wl / warp_sum(ls * wl);  // lane sp: slice sp's weight in the output
            }
#pragma unroll
            for (int u = 0; u < kBatch; ++u) {
              const float w = __shfl_sync(0xffffffffu, wn, (s0 + u) & 31);
#pragma unroll
              for (int e = 0; e < DL; ++e) go[e] += s0 + u < nsplit ? os[u][e] * w : 0.0f;
            }
          }
#pragma unroll
          for (int e = 0; e < DL; ++e)
            a.out[row * a.ldo + static_cast<int64_t>(h0 + hh) * D + lane + 32 * e] = __float2half_rn(go[e]);
        }
        if (threadIdx.x == 0) a.counters[rh0] = 0;  // ready for the next launch (stream order)
      }
    }
    __syncthreads();  // shared memory is reused by the next row
  }
}
