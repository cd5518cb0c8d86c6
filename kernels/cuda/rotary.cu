// Rotary embedding and KV-cache append kernels (rotary.hpp).
#include <cuda_fp16.h>

#include <cmath>
#include <string>

#include "kernels/cuda/act_util.cuh"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/rotary.hpp"

namespace llmc::kernels::cuda {

namespace {

using namespace detail;

struct RopeDev {
  const float* inv_freq;
  int rot, half;
  bool neox;
};

// Rotates the pairs of one head in place; threads stride over the pairs.
__device__ __forceinline__ void rotate_head(__half* x, const RopeDev& r, float pos, int tid, int nthreads) {
  for (int i = tid; i < r.half; i += nthreads) {
    const int a = r.neox ? i : 2 * i, b = r.neox ? i + r.half : 2 * i + 1;
    float s, c;
    sincosf(pos * r.inv_freq[i], &s, &c);
    const float x0 = __half2float(x[a]), x1 = __half2float(x[b]);
    x[a] = __float2half_rn(x0 * c - x1 * s);
    x[b] = __float2half_rn(x1 * c + x0 * s);
  }
}

__global__ void rotary_kernel(__half* x, int64_t ldx, int64_t rows, int tokens, int heads, int head_dim, RopeDev r,
                              const int32_t* past) {
  pdl_begin();
  const int p0 = *past;
  const int64_t n = rows * heads * r.half;
  for (int64_t w = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; w < n;
       w += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(w % r.half);
    const int64_t rh = w / r.half;
    const int h = static_cast<int>(rh % heads);
    const int64_t row = rh / heads;
    __half* xh = x + row * ldx + static_cast<int64_t>(h) * head_dim;
    const float pos = static_cast<float>(p0 + static_cast<int>(row % tokens));
    const int a = r.neox ? i : 2 * i, b = r.neox ? i + r.half : 2 * i + 1;
    float s, c;
    sincosf(pos * r.inv_freq[i], &s, &c);
    const float x0 = __half2float(xh[a]), x1 = __half2float(xh[b]);
    xh[a] = __float2half_rn(x0 * c - x1 * s);
    xh[b] = __float2half_rn(x1 * c + x0 * s);
  }
}

// One block per row (grid-stride). k is rotated element by element (each output reads its pair
// partner from k, which is not written), q pair by pair in place.
template <bool ROPE>
__global__ void kv_append_kernel(__half* q, int64_t ldq, int q_heads, const __half* k, int64_t ldk, const __half* v,
                                 int64_t ldv, __half* kc, __half* vc, int64_t cap, int kv_heads, int head_dim,
                                 int64_t rows, int tokens, RopeDev r, const int32_t* past) {
  pdl_begin();
  const int p0 = *past;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t seq = row / tokens;
    const int pos = p0 + static_cast<int>(row % tokens);
    const float fpos = static_cast<float>(pos);
    const int64_t base = (seq * cap + pos) * kv_heads * head_dim;
    const int width = kv_heads * head_dim;
    for (int e = threadIdx.x; e < width; e += blockDim.x) {
      const int d = e % head_dim;
      const __half* kr = k + row * ldk + (e - d);
      float kv = __half2float(kr[d]);
      if constexpr (ROPE) {
        if (d < r.rot) {
          int i, partner;
          float sign;
          if (r.neox) {
            i = d < r.half ? d : d - r.half;
            partner = d < r.half ? d + r.half : d - r.half;
            sign = d < r.half ? -1.0f : 1.0f;
          } else {
            i = d >> 1;
            partner = d ^ 1;
            sign = (d & 1) ? 1.0f : -1.0f;
          }
          float s, c;
          sincosf(fpos * r.inv_freq[i], &s, &c);
          kv = kv * c + sign * __half2float(kr[partner]) * s;
        }
      }
      kc[base + e] = __float2half_rn(kv);
      vc[base + e] = v[row * ldv + e];
    }
    if constexpr (ROPE) {
      if (q != nullptr)
        for (int h = threadIdx.x / 32; h < q_heads; h += blockDim.x / 32)
          rotate_head(q + row * ldq + static_cast<int64_t>(h) * head_dim, r, fpos, threadIdx.x & 31, 32);
    }
  }
}

RopeDev rope_dev(const RopeParams& p, int64_t head_dim) {
  check(p.inv_freq != nullptr && p.rot_dim >= 2 && p.rot_dim % 2 == 0 && p.rot_dim <= head_dim,
        "rotary: rotary_dim " + std::to_string(p.rot_dim) + " must be even and within head_dim " +
            std::to_string(head_dim));
  return RopeDev{p.inv_freq, static_cast<int>(p.rot_dim), static_cast<int>(p.rot_dim / 2), p.neox};
}

}  // namespace

std::vector<float> rope_inv_freq(double theta, int64_t rot_dim) {
  std::vector<float> f(static_cast<size_t>(rot_dim / 2));
  for (int64_t i = 0; i < rot_dim / 2; ++i)
    f[i] = static_cast<float>(1.0 / std::pow(theta, static_cast<double>(2 * i) / rot_dim));
  return f;
}

void rotary_inplace(Act x, int64_t rows, int64_t tokens, int64_t heads, int64_t head_dim, const RopeParams& rope,
                    const int32_t* past, cudaStream_t stream) {
  check(x.type == ActType::F16, "rotary: the activation must be f16");
  check(tokens > 0 && heads > 0 && head_dim > 0, "rotary: bad shape");
  const RopeDev r = rope_dev(rope, head_dim);
  if (rows == 0) return;
  launch_pdl(rotary_kernel, dim3(grid_for(rows * heads * r.half, 256)), dim3(256), stream,
             static_cast<__half*>(x.ptr), x.ld, rows, static_cast<int>(tokens), static_cast<int>(heads),
             static_cast<int>(head_dim), r, past);
  LLMC_CUDA_CHECK_LAUNCH("rotary");
}

void kv_append(Act q, int64_t q_heads, Act k, Act v, const KvCacheView& cache, int64_t rows, int64_t tokens,
               const RopeParams* rope, const int32_t* past, cudaStream_t stream) {
  check(k.type == ActType::F16 && v.type == ActType::F16 && (!q.ptr || q.type == ActType::F16),
        "kv_append: q, k and v must be f16");
  check(tokens > 0 && cache.kv_heads > 0 && cache.head_dim > 0, "kv_append: bad shape");
  if (rows == 0) return;
  const unsigned grid = grid_for(rows, 1, 65535);
  if (rope) {
    const RopeDev r = rope_dev(*rope, cache.head_dim);
    launch_pdl(kv_append_kernel<true>, dim3(grid), dim3(128), stream, static_cast<__half*>(q.ptr), q.ld, static_cast<int>(q_heads), static_cast<const __half*>(k.ptr), k.ld,
        static_cast<const __half*>(v.ptr), v.ld, reinterpret_cast<__half*>(cache.k), reinterpret_cast<__half*>(cache.v),
        cache.capacity, static_cast<int>(cache.kv_heads), static_cast<int>(cache.head_dim), rows,
        static_cast<int>(tokens), r, past);
  } else {
    launch_pdl(kv_append_kernel<false>, dim3(grid), dim3(128), stream, static_cast<__half*>(nullptr), int64_t{0}, 0, static_cast<const __half*>(k.ptr), k.ld, static_cast<const __half*>(v.ptr), v.ld,
        reinterpret_cast<__half*>(cache.k), reinterpret_cast<__half*>(cache.v), cache.capacity,
        static_cast<int>(cache.kv_heads), static_cast<int>(cache.head_dim), rows, static_cast<int>(tokens),
        RopeDev{nullptr, 0, 0, true}, past);
  }
  LLMC_CUDA_CHECK_LAUNCH("kv_append");
}

}  // namespace llmc::kernels::cuda
