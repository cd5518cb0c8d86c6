// The decode GEMV with its neighbours folded in: W4/W8 A16 for 1..16 tokens where the whole K
// reduction stays inside one block (no split-K workspace, no second pass), the input produced
// while it is staged (RMSNorm of the residual stream, or SwiGLU of a stacked gate|up output), and
// the bias and residual add applied to the output. One launch instead of up to three.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/quant_gemv.hpp"
#include "kernels/cuda/transformer_ops.hpp"

namespace llmc::kernels::cuda {

// What the kernel stages as its activations x[m, 0..K) (f16 in shared memory):
//  None:    x = in (f16 view);
//  RmsNorm: x = in / sqrt(mean(in²) + eps) · weight (in f16 or f32; f32 statistics, the math of
//           norm() in transformer_ops.hpp);
//  SwiGLU:  x = silu(gate) · up with gate = in[:, 0..K), up = in[:, up_col .. up_col + K) (f16),
//           as swiglu() computes it.
struct GemvPrologue {
  enum class Kind : uint8_t { None, RmsNorm, SwiGLU };
  Kind kind = Kind::None;
  Act in;
  int64_t up_col = 0;
  const float* norm_weight = nullptr;  // [K]
  float eps = 1e-6f;
};

// y[m, n] = Ŵx [+ bias[n]] [+ residual[m, n]], f32 sums, stored as y's type. residual may be y
// itself (each element is read before it is written, by the same thread).
struct GemvEpilogue {
  Act y;
  const float* bias = nullptr;  // [N] or null
  Act residual;                 // ptr null: none
};

// Whether gemv_fused takes m tokens of this weight: 1 ≤ m ≤ 16 and the staged activations
// (m · K f16) fit its shared-memory budget (96 KiB: two blocks per SM).
bool gemv_fused_fits(const GemvLayout& l, int64_t m);

// The block shape: warps per block (8, two blocks per SM, or 16, one) and the 16-row tiles each
// block computes (a power of two up to warps; the warps / tiles_per_block warps of a tile split
// its K range). 0 takes gemv_fused_config's value.
struct GemvFusedConfig {
  int warps = 0;
  int tiles_per_block = 0;
};

// The shape that gives each warp the shortest chain of work (its K slice plus its share of
// staging x) over the fewest waves of blocks; 8-warp blocks for one token (fused_block_shape).
GemvFusedConfig gemv_fused_config(const GemvLayout& l, int64_t m, int sm_count);
// The same model for any GEMV that keeps K inside a block: `tiles` 16-row tiles of `units` units
// of work each (gemv_fused: chunks; gemv_sparse24_w4: supers of 128 inputs, about the same
// instructions), `vectors` 8-input vectors of x to stage, m tokens. For one token it takes 8-warp
// blocks only, which leave half of each SM to the next kernel's blocks (launch overlap).
GemvFusedConfig fused_block_shape(int64_t tiles, int64_t units, int64_t vectors, int64_t m, int sm_count);

// One launch; no allocation (graph-capturable); x and y must not overlap except y == residual.
// Moves the weight bytes of gemv_quantized plus the input (m·K, or 2·m·K for SwiGLU, re-read from
// L2 by each block) and the output. Launch overlap (PDL) as GemvOptions{} on sm_90+.
void gemv_fused(const GpuQuantWeight& w, const GemvPrologue& pro, const GemvEpilogue& epi, int64_t m,
                cudaStream_t stream, GemvFusedConfig cfg = {});

}  // namespace llmc::kernels::cuda
