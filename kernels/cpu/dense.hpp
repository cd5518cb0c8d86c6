// Dense CPU kernels over plain row-major f32 buffers (Eigen + OpenMP). They know nothing of
// models; the runtime's ops call them. Each is the reference its CUDA twin is tested against.
#pragma once
#include <cstdint>

namespace llmc::kernels::cpu {

// y[m, n] = x[m, k] · w[n, k]ᵀ (+ bias[n]): a linear layer with PyTorch's weight orientation.
// Moves (m·k + n·k + m·n)·4 bytes, does 2·m·n·k flops.
void linear_f32(const float* x, const float* w, const float* bias, float* y, int64_t m, int64_t n, int64_t k);

// c[m, n] = a[m, k] · b[k, n], optionally accumulated into c (beta = 1).
void matmul_f32(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k, bool accumulate = false);

// RMSNorm over rows of length d: y = x / sqrt(mean(x²) + eps) · w (Zhang and Sennrich 2019).
void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t d, float eps);

// LayerNorm over rows: y = (x − mean) / sqrt(var + eps) · w + b (b may be null).
void layer_norm(const float* x, const float* w, const float* b, float* y, int64_t rows, int64_t d, float eps);

// Rotary position embedding in place on x[t, heads, head_dim], positions pos0 + t.
// neox = true rotates (i, i + rot/2) pairs as HF Llama's rotate_half; false rotates (2i, 2i+1).
void rotary(float* x, int64_t tokens, int64_t heads, int64_t head_dim, int64_t rot_dim, int64_t pos0, double theta,
            bool neox);

// Attention for one sequence. q[t, hq, d]; k, v [s, hkv, d] (the whole cache, s ≥ t); query i sits
// at position s − t + i and, if causal, sees keys 0 ..= s − t + i. GQA: head h reads kv head
// h / (hq / hkv). out[t, hq, d]. Softmax in f32 with the max subtracted.
void attention(const float* q, const float* k, const float* v, float* out, int64_t t, int64_t s, int64_t hq,
               int64_t hkv, int64_t d, float scale, bool causal);

// out = silu(gate) · up, element-wise.
void swiglu(const float* gate, const float* up, float* out, int64_t n);

// GELU: exact (erf) or the tanh approximation used by GPT-2.
void gelu(const float* x, float* y, int64_t n, bool tanh_approx);

// Row-wise softmax in place.
void softmax_rows(float* x, int64_t rows, int64_t d);

}  // namespace llmc::kernels::cpu
