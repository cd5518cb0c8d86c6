// Rotary position embedding (Su et al. 2021, RoFormer §3.4) on the GPU and the append of new keys
// and values to a device KV cache, optionally rotating q and k on the way (one kernel instead of
// three per layer in decode). Positions come from device memory (*past + i), so a captured CUDA
// graph replays correctly as the sequence grows. CPU twin: kernels::cpu::rotary (dense.hpp).
// Moves 4 bytes per rotated f16 pair read and written (2·rows·heads·rot_dim bytes): bandwidth
// bound, a few µs at most.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "kernels/cuda/transformer_ops.hpp"

namespace llmc::kernels::cuda {

// inv_freq[i] = f32(1 / theta^(2i / rot_dim)), i < rot_dim / 2, computed as the CPU twin does.
std::vector<float> rope_inv_freq(double theta, int64_t rot_dim);

// inv_freq: device f32 [rot_dim / 2]. neox: rotate (i, i + rot_dim/2) pairs (HF Llama's
// rotate_half); else (2i, 2i + 1) (GPT-J, interleaved). Dimensions ≥ rot_dim are left alone.
struct RopeParams {
  const float* inv_freq = nullptr;
  int64_t rot_dim = 0;
  bool neox = true;
};

// Rotates x[rows, heads·head_dim] (f16 view) in place. Row r belongs to sequence r / tokens at
// position *past + r % tokens.
void rotary_inplace(Act x, int64_t rows, int64_t tokens, int64_t heads, int64_t head_dim, const RopeParams& rope,
                    const int32_t* past, cudaStream_t stream);

// A KV cache on the device: k and v f16 [batch][capacity][kv_heads][head_dim].
struct KvCacheView {
  uint16_t* k = nullptr;
  uint16_t* v = nullptr;
  int64_t capacity = 0, kv_heads = 0, head_dim = 0;
};

// Writes rows of k and v (f16 views [rows, kv_heads·head_dim]) into the cache at sequence r / tokens,
// position *past + r % tokens. With rope non-null, k is rotated as it is written and q
// (f16 view [rows, q_heads·head_dim]) is rotated in place; k and v themselves are not modified.
// The caller guarantees *past + tokens ≤ capacity.
void kv_append(Act q, int64_t q_heads, Act k, Act v, const KvCacheView& cache, int64_t rows, int64_t tokens,
               const RopeParams* rope, const int32_t* past, cudaStream_t stream);

}  // namespace llmc::kernels::cuda
