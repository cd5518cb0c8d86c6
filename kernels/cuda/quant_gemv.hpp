// W4A16 / W8A16 group-wise GEMV on the GPU for decode (1..16 tokens): weights repacked at upload
// into a tensor-core-fragment layout (GpuQuantWeight), f16 activations, f32 accumulation, f16 out.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cuda/device_buffer.hpp"
#include "runtime/ir/quantized.hpp"

namespace llmc::kernels::cuda {

// How the kernels find a 32-column block's group without a division: k32 >> shift for
// power-of-two groups (per channel, k32_per_group 0: shift 30, every block in group 0), else
// shift −1 and the high 32 bits of k32 · magic with magic = ⌈2³²/k32_per_group⌉, which equal
// k32 / k32_per_group while k32 · (magic · k32_per_group − 2³²) < 2³², so for k32 < 2¹⁶. Throws
// (naming the sizes, after `where`) where k32_blocks or k32_per_group reach 2¹⁶ without a power
// of two. Computed once, at repacking, into the layout.
struct GroupIndex {
  int shift = 30;  // the default layout's k32_per_group 0
  uint32_t magic = 0;
};
GroupIndex group_index(int64_t k32_per_group, int64_t k32_blocks, const std::string& where = "");

// Geometry of the repacked weight. Rows are padded to tiles of 16 (one mma.m16n8k16 A operand),
// columns to chunks of chunk_k: the k-range one lane covers with one 16-byte load in a warp-wide
// 512-byte load of a tile (64 values at INT4, 32 at INT8).
struct GemvLayout {
  int bits = 4;
  bool symmetric = true;
  int64_t rows = 0, cols = 0;      // N (out features), K (in features)
  int64_t tiles = 0;               // ceil(N / 16)
  int64_t chunk_k = 0;             // 64 (INT4) or 32 (INT8)
  int64_t chunks = 0;              // ceil(K / chunk_k)
  int64_t n_groups = 0;
  int64_t k32_per_group = 0;       // group length / 32; 0 when one group spans the row
  GroupIndex groups;               // group_index(k32_per_group, chunks · chunk_k / 32)

  int64_t padded_rows() const { return tiles * 16; }
};

// The host-side repacked form (what upload() copies to the device):
//  packed: [tile][chunk][lane 0..31][16 bytes]. Lane (g = lane/4, t = lane%4) holds the A fragments
//    of mma.m16n8k16 for weight rows 16·tile + g and + 8; within each 32-column block the columns
//    are permuted so that lane t's B fragments are the 8 contiguous activations 8t..8t+7 (one
//    16-byte shared-memory load; the permutation applies to A and B alike, so Σ_k is unchanged).
//    Codes are unsigned: q + 8 / q + 128 (symmetric INT4 / INT8), q (asymmetric).
//  scales: f16 [group][tile][g][2]: the scales of rows 16·tile + g and + 8 side by side.
//  zeros: u8, same indexing (asymmetric only).
//  perm (act-order weights only, else empty): the columns stored in group order
//    (act_order_columns, runtime/ir/quantized.hpp), perm[k] being the input column that stored
//    column k holds. A weight quantized with act-order (g_idx) has
//    its groups' columns scattered over the row; stored sorted by group they form the contiguous
//    groups every kernel reads, and the kernels permute their input the same way as they stage
//    it (x[:, perm[k]] at stored column k), so Σ_k is unchanged.
struct RepackedWeight {
  GemvLayout layout;
  std::vector<uint8_t> packed;
  std::vector<uint16_t> scales;
  std::vector<uint8_t> zeros;
  std::vector<int32_t> perm;
};

// Validates w (errors name `name`) and repacks it. The GPU path needs a group length that is a
// multiple of 32 unless one group spans the whole row; with act-order, a g_idx that gives every
// group the columns it has without act-order (group_size each, the last the rest: what GPTQ's
// act-order writes), in any order.
RepackedWeight repack_for_gpu(const QuantizedWeight& w, const std::string& name);

// The group scales and zero points in the kernels' order, `scales`/`zeros` of RepackedWeight for
// `tiles` 16-row tiles (zeros left empty for symmetric weights). Shared with the 2:4 layout.
void pack_group_params(const QuantizedWeight& w, int64_t tiles, std::vector<uint16_t>& scales,
                       std::vector<uint8_t>& zeros);

// A quantized linear weight on the device (read-only once uploaded).
class GpuQuantWeight {
 public:
  static GpuQuantWeight upload(const QuantizedWeight& w, const std::string& name);
  static GpuQuantWeight upload(const RepackedWeight& r);
  // A device-side copy, e.g. to rotate copies through L2 in benchmarks.
  GpuQuantWeight clone() const;

  const GemvLayout& layout() const { return layout_; }
  // Bytes of packed values, scales, zero points and the act-order positions on the device: what
  // one decode GEMV must read.
  size_t weight_bytes() const { return packed_.bytes() + scales_.bytes() + zeros_.bytes() + perm_inv_.bytes(); }

  const uint8_t* packed() const { return packed_.data(); }
  const uint16_t* scales() const { return scales_.data(); }
  const uint8_t* zeros() const { return zeros_.data(); }
  // RepackedWeight::perm on the device and its inverse (input column j is stored at column
  // perm_inv()[j]); nullptr without act-order.
  const int32_t* perm() const { return perm_.data(); }
  const int32_t* perm_inv() const { return perm_inv_.data(); }
  int sm_count() const { return sm_count_; }
  int compute_major() const { return compute_major_; }

 private:
  GemvLayout layout_;
  DeviceBuffer<uint8_t> packed_, zeros_;
  DeviceBuffer<uint16_t> scales_;
  DeviceBuffer<int32_t> perm_, perm_inv_;
  int sm_count_ = 1, compute_major_ = 0;
};

// How gemv_quantized launches. overlap_launches (sm_90+, ignored before): programmatic stream
// serialization, so that a GEMV's weight prefetch overlaps the tail of the kernel before it in
// the stream (which must finish before x, y or the workspace are touched: the kernel waits on
// griddepcontrol for that). Measured on H100: ~1.5 µs less per chained call (docs/perf/cuda.md).
struct GemvOptions {
  bool overlap_launches = true;
};

// Split-K scratch of gemv_quantized: f32 partial sums [max_splits][16][rows] and one arrival
// counter per 128-row block (zero between calls; each call leaves them zero). One workspace per
// stream serves every weight with at most max_rows rows; two streams need two.
class GemvWorkspace {
 public:
  explicit GemvWorkspace(int64_t max_rows, int max_splits = 16, GemvOptions options = {});
  int64_t max_rows() const { return max_rows_; }
  int max_splits() const { return max_splits_; }
  const GemvOptions& options() const { return options_; }
  float* partials() { return partials_.data(); }
  unsigned* counters() { return counters_.data(); }

 private:
  int64_t max_rows_;
  int max_splits_;
  GemvOptions options_;
  DeviceBuffer<float> partials_;
  DeviceBuffer<unsigned> counters_;
};

// How a GEMV is split: blocks of `warps` warps (one 16-row tile each: 8, or 16 for more than 8
// tokens of at least 8192 rows), `splits` of them along K for each row block, each taking
// chunks_per_split chunks (its activations staged in shared memory, xs_stride halves a row).
struct GemvPlan {
  int warps = 8, splits = 1, chunks_per_split = 1, xs_stride = 0;
  size_t smem_bytes = 0;
};
// At most max_splits splits; forced_splits > 0 asks for at most that many instead of the
// planner's choice (tests use it to cover both epilogues, bench_kernels to sweep).
GemvPlan plan_gemv(const GemvLayout& l, int64_t m, int sm_count, int max_splits, int forced_splits = 0);

// y[m, n] = x[m, k] · Ŵ[n, k]ᵀ, Ŵ = s·(q − z) per group; x, y device f16 (bits), row-major,
// contiguous, 1 ≤ m ≤ 16. One kernel launch; no allocation (graph-capturable); ws must cover the
// weight's rows and belong to `stream`.
// Moves N·K·bits/8 + N·(K/g)·2 (scales) [+ N·(K/g)·bits/8 zeros] + 2·m·K + 2·m·N bytes and does
// 2·m·N·K flops: at most 64 flop/byte at INT4, far under the H100's ~330 (f16 mma over HBM3), so
// the floor is the bytes over copy bandwidth: ~23.3 MB → ~7.8 µs for 11008×4096 g128 at 3.0 TB/s.
void gemv_quantized(const GpuQuantWeight& w, const uint16_t* x, uint16_t* y, int64_t m, GemvWorkspace& ws,
                    cudaStream_t stream, int forced_splits = 0);

}  // namespace llmc::kernels::cuda
