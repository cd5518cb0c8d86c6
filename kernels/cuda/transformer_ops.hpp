// Row-wise and element-wise ops of a transformer block on the GPU (embedding gather, positions,
// residual add, RMSNorm/LayerNorm with the residual add fused in, bias, SwiGLU, GELU, conversion)
// over f16 or f32 activation views. CPU twins: kernels/cpu/dense.hpp, kernels/cpu/transformer_ops.hpp.
// All are bandwidth bound with a few flops per element: the floor is the bytes named per function
// over the copy bandwidth (a few µs at decode sizes, where the launch, ~1 µs, dominates).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace llmc::kernels::cuda {

enum class ActType : uint8_t { F16, F32 };

// A row-major activation view on the device: element (r, c) at ptr[r·ld + c] of type `type`
// (f16 as IEEE half bits). Views let fused linears hand out column slices of one output.
struct Act {
  void* ptr = nullptr;
  int64_t ld = 0;
  ActType type = ActType::F16;
};

// out[r, :] = table[ids[r], :] (f16 table [vocab, d] → out f16 or f32). An id outside [0, vocab)
// yields a NaN row, so that it cannot pass unnoticed (the host checks ids it uploads).
// Moves rows·d·(2 + out bytes) + 4·rows bytes.
void embedding(const uint16_t* table, int64_t vocab, int64_t d, const int32_t* ids, Act out, int64_t rows,
               cudaStream_t stream);

// out[r] = *past + r % tokens: the positions of rows of `rows / tokens` sequences of `tokens` each.
void positions(const int32_t* past, int32_t* out, int64_t rows, int64_t tokens, cudaStream_t stream);

// out = a + b over rows × d, f32 accumulation; any mix of f16/f32 views. Moves rows·d·(|a|+|b|+|out|).
void add(Act a, Act b, Act out, int64_t rows, int64_t d, cudaStream_t stream);

// Normalization of rows of length d, f32 statistics:
//  RMSNorm (Zhang and Sennrich 2019): y = x / sqrt(mean(x²) + eps) · w
//  LayerNorm (Ba et al. 2016):        y = (x − mean) / sqrt(var + eps) · w + b (b may be null)
// With `residual` set (ptr non-null), x = a + residual is formed first and written to h (f32),
// fusing a transformer block's residual add into the norm that follows it (one kernel, one read
// of each operand). Moves rows·d·(|a| [+ |residual| + 4] + |y|) bytes, ~5 flops per element.
struct NormParams {
  bool layer_norm = false;
  const float* weight = nullptr;  // [d]
  const float* bias = nullptr;    // [d], LayerNorm only, may be null
  float eps = 1e-6f;
};
void norm(Act a, Act residual, Act h, Act y, int64_t rows, int64_t d, const NormParams& p, cudaStream_t stream);

// y[r, :] += bias (f32 bias [n]), in place.
void bias_add(Act y, const float* bias, int64_t rows, int64_t n, cudaStream_t stream);

// y = x with conversion between f16 and f32 and re-striding. Moves rows·d·(|x| + |y|).
void convert(Act x, Act y, int64_t rows, int64_t d, cudaStream_t stream);

// out = silu(gate) · up, f32 math. Moves rows·d·(|gate| + |up| + |out|).
void swiglu(Act gate, Act up, Act out, int64_t rows, int64_t d, cudaStream_t stream);

// y = GELU(x): exact (erf) or the tanh approximation, f32 math.
void gelu(Act x, Act y, int64_t rows, int64_t d, bool tanh_approx, cudaStream_t stream);

}  // namespace llmc::kernels::cuda
