// Causal / full multi-head attention with GQA over a device KV cache (rotary.hpp's KvCacheView),
// f16 operands, f32 softmax and accumulation. CPU twin: kernels::cpu::attention (dense.hpp).
//  - attention_prefill: flash-style (Dao 2023, FlashAttention-2 §3.1): per (64 queries, head), K/V
//    tiles of 64 keys in shared memory, S = Q·Kᵀ and O += P·V on tensor cores (mma.m16n8k16), an
//    online softmax in registers; no T×T matrix is ever stored. Does 4·T·S·d·H flops (half of them
//    masked away when causal) and moves the cache once per q head (GQA groups re-read it from L2).
//  - attention_decode: for few queries per sequence (decode), split over the keys (flash-decoding):
//    blocks take slices of the sequence, the last block of each (query, head) merges the slices'
//    (max, sum, output) — one launch, no second kernel. head_dim 32, 64, 128: one block per GQA
//    group (up to 8 q heads as the rows of a tensor-core tile, so K/V are read once per group),
//    and the number of slices is decided on the device from the length: one slice (the output
//    written directly, no merge) up to 2048 / (head_dim / 16) keys, then one per 256 / (head_dim /
//    16) keys up to the launch's `splits`. Other head dims: one block per q head, always `splits`
//    slices. Moves 4·len·Hkv·d bytes of cache per query row: ~0.4 MB per layer at 384 positions
//    for TinyLlama.
//  - Launched with programmatic dependent launch (sm_90): attention_decode_append (head_dim 32,
//    64, 128) reads *past and the cache rows before *past ahead of its griddepcontrol.wait, and
//    attention_decode reads *past there, so the kernel just before them in the stream must not
//    write those (in a decode step it is the q|k|v projection; kv_append of this step writes
//    rows ≥ *past only), and must let its dependents launch only after its own griddepcontrol.wait
//    (as pdl_begin does), so that every kernel before it has completed.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/device_buffer.hpp"
#include "kernels/cuda/rotary.hpp"

namespace llmc::kernels::cuda {

// Rows of q are batch·tokens (sequence r / tokens, query r % tokens at position *past + r % tokens);
// the cache holds positions 0 .. *past + tokens − 1 of each sequence (this call's keys appended).
// causal: query i sees keys ≤ *past + i; otherwise every key of its sequence. GQA: q head h reads
// kv head h / (q_heads / kv_heads).
struct AttentionParams {
  int64_t batch = 1, tokens = 1, q_heads = 1, kv_heads = 1, head_dim = 0;
  float scale = 1.0f;
  bool causal = true;
};

// Whether attention_prefill takes this head dimension (multiples of 16 up to 128).
bool attention_prefill_supports(int64_t head_dim);

// q, out: f16 views [batch·tokens, q_heads·head_dim].
void attention_prefill(Act q, const KvCacheView& cache, Act out, const AttentionParams& p, const int32_t* past,
                       cudaStream_t stream);

// Scratch of attention_decode: per (row, q head) up to max_splits partial results of head_dim + 2
// floats, and one arrival counter (zero between calls; each call leaves them zero).
class AttentionWorkspace {
 public:
  AttentionWorkspace(int64_t max_rows, int64_t q_heads, int64_t head_dim, int max_splits);
  int max_splits() const { return max_splits_; }
  int64_t max_rows() const { return max_rows_; }
  float* partials() { return partials_.data(); }
  unsigned* counters() { return counters_.data(); }

 private:
  int64_t max_rows_, q_heads_, head_dim_;
  int max_splits_;
  DeviceBuffer<float> partials_;
  DeviceBuffer<unsigned> counters_;
};

// The most slices per (row, head) for attention_decode: about four blocks per SM (memory-level
// parallelism), at most max_splits. Fixed per launch shape (not per length), so a captured graph
// stays valid; the kernel for head_dim 32/64/128 uses fewer while the sequence is short (blocks
// beyond the count the length needs return at once).
int attention_decode_splits(int64_t rows, int64_t q_heads, int sm_count, int max_splits);

// Any head_dim ≤ 256 that is even; any number of rows (the general fallback, fastest for few).
void attention_decode(Act q, const KvCacheView& cache, Act out, const AttentionParams& p, const int32_t* past,
                      AttentionWorkspace& ws, int splits, cudaStream_t stream);

// The decode step of one token per sequence (p.tokens = 1) with kv_append folded in: k and v
// (f16 views of the new rows) are rotated (rope non-null), rounded to f16 and written to the cache
// at *past by the kernel itself, q is rotated in shared memory (not in place), and the new key is
// attended from shared memory, so no block of the launch reads what another writes. One launch
// per layer instead of two; the same results as kv_append + attention_decode.
void attention_decode_append(Act q, Act k, Act v, const KvCacheView& cache, Act out, const AttentionParams& p,
                             const RopeParams* rope, const int32_t* past, AttentionWorkspace& ws, int splits,
                             cudaStream_t stream);

}  // namespace llmc::kernels::cuda
