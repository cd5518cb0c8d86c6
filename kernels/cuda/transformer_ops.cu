// Row-wise and element-wise transformer ops (transformer_ops.hpp): grid-stride loops over rows×d,
// f32 math whatever the storage type.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "kernels/cuda/act_util.cuh"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/transformer_ops.hpp"

namespace llmc::kernels::cuda {

namespace {

using namespace detail;
constexpr int kThreads = 256;

template <class TO>
__global__ void embedding_kernel(const __half* table, int vocab, int d, const int32_t* ids, TO* out, int64_t ldo,
                                 int64_t rows) {
  pdl_begin();
  const int64_t n = rows * d;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / d;
    const int c = static_cast<int>(i - r * d);
    const int id = ids[r];
    const float v = id >= 0 && id < vocab ? __half2float(table[static_cast<int64_t>(id) * d + c]) : __int_as_float(0x7fc00000);
    out[r * ldo + c] = from_f<TO>(v);
  }
}

__global__ void positions_kernel(const int32_t* past, int32_t* out, int64_t rows, int64_t tokens) {
  pdl_begin();
  const int p0 = *past;
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r < rows;
       r += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[r] = p0 + static_cast<int32_t>(r % tokens);
}

template <class TA, class TB, class TO>
__global__ void add_kernel(const TA* a, int64_t lda, const TB* b, int64_t ldb, TO* out, int64_t ldo, int64_t rows,
                           int d) {
  pdl_begin();
  const int64_t n = rows * d;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / d;
    const int c = static_cast<int>(i - r * d);
    out[r * ldo + c] = from_f<TO>(to_f(a[r * lda + c]) + to_f(b[r * ldb + c]));
  }
}

// One block per row (grid-stride over rows); thread t holds columns t + i·blockDim.x, i < PER, in
// registers, so the row is read once and each statistic is one block reduction.
template <class TA, class TR, bool RES, bool LAYER, class TY, int PER>
__global__ void __launch_bounds__(1024) norm_kernel(const TA* a, int64_t lda, const TR* res, int64_t ldr, float* h,
                                                    int64_t ldh, TY* y, int64_t ldy, int64_t rows, int d,
                                                    const float* w, const float* bias, float eps) {
  pdl_begin();
  __shared__ float red[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const TA* ar = a + row * lda;
    float x[PER];
    float s = 0;
#pragma unroll
    for (int i = 0; i < PER; ++i) {
      const int c = threadIdx.x + i * blockDim.x;
      x[i] = 0.0f;
      if (c < d) {
        x[i] = to_f(ar[c]);
        if constexpr (RES) {
          x[i] += to_f(res[row * ldr + c]);
          h[row * ldh + c] = x[i];
        }
        s += LAYER ? x[i] : x[i] * x[i];
      }
    }
    s = block_sum(s, red);
    float mean = 0, inv;
    if constexpr (LAYER) {
      mean = s / d;
      float v = 0;  // second pass around the mean: no cancellation between E[x²] and E[x]²
#pragma unroll
      for (int i = 0; i < PER; ++i)
        if (threadIdx.x + i * blockDim.x < d) v += (x[i] - mean) * (x[i] - mean);
      v = block_sum(v, red);
      inv = rsqrtf(v / d + eps);
    } else {
      inv = rsqrtf(s / d + eps);
    }
    TY* yr = y + row * ldy;
#pragma unroll
    for (int i = 0; i < PER; ++i) {
      const int c = threadIdx.x + i * blockDim.x;
      if (c < d) {
        float o = LAYER ? (x[i] - mean) * inv * w[c] : x[i] * inv * w[c];
        if (LAYER && bias) o += bias[c];
        yr[c] = from_f<TY>(o);
      }
    }
  }
}

template <class T>
__global__ void bias_kernel(T* y, int64_t ldy, const float* bias, int64_t rows, int n) {
  pdl_begin();
  const int64_t total = rows * n;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / n;
    const int c = static_cast<int>(i - r * n);
    y[r * ldy + c] = from_f<T>(to_f(y[r * ldy + c]) + bias[c]);
  }
}

template <class TX, class TY>
__global__ void convert_kernel(const TX* x, int64_t ldx, TY* y, int64_t ldy, int64_t rows, int d) {
  pdl_begin();
  const int64_t n = rows * d;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / d;
    const int c = static_cast<int>(i - r * d);
    y[r * ldy + c] = from_f<TY>(to_f(x[r * ldx + c]));
  }
}

template <class TG, class TU, class TO>
__global__ void swiglu_kernel(const TG* g, int64_t ldg, const TU* u, int64_t ldu, TO* out, int64_t ldo, int64_t rows,
                              int d) {
  pdl_begin();
  const int64_t n = rows * d;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / d;
    const int c = static_cast<int>(i - r * d);
    const float gv = to_f(g[r * ldg + c]);
    out[r * ldo + c] = from_f<TO>(gv / (1.0f + expf(-gv)) * to_f(u[r * ldu + c]));
  }
}

template <class TX, class TY>
__global__ void gelu_kernel(const TX* x, int64_t ldx, TY* y, int64_t ldy, int64_t rows, int d, bool tanh_approx) {
  pdl_begin();
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  const int64_t n = rows * d;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / d;
    const int c = static_cast<int>(i - r * d);
    const float v = to_f(x[r * ldx + c]);
    const float o = tanh_approx ? 0.5f * v * (1.0f + tanhf(kSqrt2OverPi * (v + 0.044715f * v * v * v)))
                                : 0.5f * v * (1.0f + erff(v * 0.7071067811865476f));
    y[r * ldy + c] = from_f<TY>(o);
  }
}

void check_dims(int64_t rows, int64_t d, const char* what) {
  check(rows >= 0 && d > 0 && d < (int64_t{1} << 31),
        std::string(what) + ": bad shape rows=" + std::to_string(rows) + " d=" + std::to_string(d));
}

}  // namespace

void embedding(const uint16_t* table, int64_t vocab, int64_t d, const int32_t* ids, Act out, int64_t rows,
               cudaStream_t stream) {
  check_dims(rows, d, "embedding");
  if (rows == 0) return;
  with_type(out.type, [&](auto to) {
    using TO = decltype(to);
    launch_pdl(embedding_kernel<TO>, dim3(grid_for(rows * d, kThreads)), dim3(kThreads), stream, reinterpret_cast<const __half*>(table), static_cast<int>(vocab), static_cast<int>(d), ids, ptr_as<TO>(out),
        out.ld, rows);
  });
  LLMC_CUDA_CHECK_LAUNCH("embedding");
}

void positions(const int32_t* past, int32_t* out, int64_t rows, int64_t tokens, cudaStream_t stream) {
  check(tokens > 0, "positions: tokens must be positive");
  if (rows == 0) return;
  launch_pdl(positions_kernel, dim3(grid_for(rows, kThreads)), dim3(kThreads), stream, past, out, rows, tokens);
  LLMC_CUDA_CHECK_LAUNCH("positions");
}

void add(Act a, Act b, Act out, int64_t rows, int64_t d, cudaStream_t stream) {
  check_dims(rows, d, "add");
  if (rows == 0) return;
  with_type(a.type, [&](auto ta) {
    with_type(b.type, [&](auto tb) {
      with_type(out.type, [&](auto to) {
        using TA = decltype(ta);
        using TB = decltype(tb);
        using TO = decltype(to);
        launch_pdl(add_kernel<TA, TB, TO>, dim3(grid_for(rows * d, kThreads)), dim3(kThreads), stream, ptr_as<TA>(a), a.ld, ptr_as<TB>(b), b.ld, ptr_as<TO>(out), out.ld, rows, static_cast<int>(d));
      });
    });
  });
  LLMC_CUDA_CHECK_LAUNCH("add");
}

void norm(Act a, Act residual, Act h, Act y, int64_t rows, int64_t d, const NormParams& p, cudaStream_t stream) {
  check_dims(rows, d, p.layer_norm ? "layer_norm" : "rms_norm");
  const bool res = residual.ptr != nullptr;
  check(!res || (h.ptr && h.type == ActType::F32), "norm: the fused residual sum h must be an f32 buffer");
  check(p.weight != nullptr, "norm: missing weight");
  if (rows == 0) return;
  check(d <= 32 * 1024, "norm: rows of " + std::to_string(d) + " exceed the 32768 a block holds in registers");
  const unsigned grid = grid_for(rows, 1, 65535);
  // 4 values per thread up to 4096 columns (up to 1024 threads: one short dependent chain per
  // row at decode), 32 per thread above.
  const bool small = d <= 4096;
  const int per = small ? 4 : 32;
  const unsigned threads = static_cast<unsigned>(std::clamp<int64_t>(((d + per - 1) / per + 31) & ~int64_t{31}, 64, 1024));
  auto go = [&](auto ta, auto tr, auto ty, auto res_c, auto layer_c) {
    using TA = decltype(ta);
    using TR = decltype(tr);
    using TY = decltype(ty);
    constexpr bool R = decltype(res_c)::value, L = decltype(layer_c)::value;
    auto args = [&](auto kernel) {
      launch_pdl(kernel, dim3(grid), dim3(threads), stream, ptr_as<TA>(a), a.ld, ptr_as<TR>(residual), residual.ld,
                 ptr_as<float>(h), h.ld, ptr_as<TY>(y), y.ld, rows, static_cast<int>(d), p.weight, p.bias, p.eps);
    };
    if (small)
      args(norm_kernel<TA, TR, R, L, TY, 4>);
    else
      args(norm_kernel<TA, TR, R, L, TY, 32>);
  };
  using T = std::true_type;
  using F = std::false_type;
  with_type(a.type, [&](auto ta) {
    with_type(y.type, [&](auto ty) {
      if (res) {
        with_type(residual.type, [&](auto tr) { p.layer_norm ? go(ta, tr, ty, T{}, T{}) : go(ta, tr, ty, T{}, F{}); });
      } else {
        p.layer_norm ? go(ta, float{}, ty, F{}, T{}) : go(ta, float{}, ty, F{}, F{});
      }
    });
  });
  if (p.layer_norm)
    LLMC_CUDA_CHECK_LAUNCH("layer_norm");
  else
    LLMC_CUDA_CHECK_LAUNCH("rms_norm");
}

void bias_add(Act y, const float* bias, int64_t rows, int64_t n, cudaStream_t stream) {
  check_dims(rows, n, "bias_add");
  if (rows == 0) return;
  with_type(y.type, [&](auto ty) {
    using TY = decltype(ty);
    launch_pdl(bias_kernel<TY>, dim3(grid_for(rows * n, kThreads)), dim3(kThreads), stream, ptr_as<TY>(y), y.ld, bias, rows,
                                                                            static_cast<int>(n));
  });
  LLMC_CUDA_CHECK_LAUNCH("bias_add");
}

void convert(Act x, Act y, int64_t rows, int64_t d, cudaStream_t stream) {
  check_dims(rows, d, "convert");
  if (rows == 0) return;
  with_type(x.type, [&](auto tx) {
    with_type(y.type, [&](auto ty) {
      using TX = decltype(tx);
      using TY = decltype(ty);
      launch_pdl(convert_kernel<TX, TY>, dim3(grid_for(rows * d, kThreads)), dim3(kThreads), stream, ptr_as<TX>(x), x.ld, ptr_as<TY>(y),
                                                                                   y.ld, rows, static_cast<int>(d));
    });
  });
  LLMC_CUDA_CHECK_LAUNCH("convert");
}

void swiglu(Act gate, Act up, Act out, int64_t rows, int64_t d, cudaStream_t stream) {
  check_dims(rows, d, "swiglu");
  if (rows == 0) return;
  with_type(gate.type, [&](auto tg) {
    with_type(up.type, [&](auto tu) {
      with_type(out.type, [&](auto to) {
        using TG = decltype(tg);
        using TU = decltype(tu);
        using TO = decltype(to);
        launch_pdl(swiglu_kernel<TG, TU, TO>, dim3(grid_for(rows * d, kThreads)), dim3(kThreads), stream, ptr_as<TG>(gate), gate.ld, ptr_as<TU>(up), up.ld, ptr_as<TO>(out), out.ld, rows, static_cast<int>(d));
      });
    });
  });
  LLMC_CUDA_CHECK_LAUNCH("swiglu");
}

void gelu(Act x, Act y, int64_t rows, int64_t d, bool tanh_approx, cudaStream_t stream) {
  check_dims(rows, d, "gelu");
  if (rows == 0) return;
  with_type(x.type, [&](auto tx) {
    with_type(y.type, [&](auto ty) {
      using TX = decltype(tx);
      using TY = decltype(ty);
      launch_pdl(gelu_kernel<TX, TY>, dim3(grid_for(rows * d, kThreads)), dim3(kThreads), stream, ptr_as<TX>(x), x.ld, ptr_as<TY>(y),
                                                                                y.ld, rows, static_cast<int>(d),
                                                                                tanh_approx);
    });
  });
  LLMC_CUDA_CHECK_LAUNCH("gelu");
}

}  // namespace llmc::kernels::cuda
