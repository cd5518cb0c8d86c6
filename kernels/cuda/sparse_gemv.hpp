// 2:4 sparse INT4 (W4A16) decode GEMV on sparse tensor cores (mma.sp.m16n8k32): only the two kept
// codes of every four inputs are stored, with 2-bit indices saying where they sit, so a weight
// costs 3 bits instead of 4 and each 32 inputs of a 16-row tile take one dequantized word and one
// MMA instead of two of each.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cuda/dense_gemm.hpp"
#include "kernels/cuda/device_buffer.hpp"
#include "kernels/cuda/quant_gemv_fused.hpp"
#include "runtime/ir/quantized.hpp"

namespace llmc::kernels::cuda {

// Rows in tiles of 16 (one mma.sp A operand), columns in supers of 128 (four 32-input chunks: one
// 16-byte load of codes and one 8-byte load of metadata per lane).
struct Sparse24QLayout {
  bool symmetric = true;
  int64_t rows = 0, cols = 0;
  int64_t tiles = 0;   // ceil(rows / 16)
  int64_t supers = 0;  // ceil(cols / 128)
  int64_t n_groups = 0;
  int64_t k32_per_group = 0;  // group length / 32; 0 when one group spans the row
  GroupIndex groups;          // group_index(k32_per_group, chunks()) (quant_gemv.hpp)

  int64_t chunks() const { return supers * 4; }
};

// The layout of a rows × cols weight (tiles, supers; the format's fields left at their defaults),
// and the device bytes of its packed INT4 and f16 forms (what weight_bytes() reports after
// upload), for planning before anything is packed.
Sparse24QLayout sparse24_layout(int64_t rows, int64_t cols);
int64_t sparse24_w4_bytes(int64_t rows, int64_t cols, int64_t n_groups, bool symmetric);
int64_t sparse24_f16_bytes(int64_t rows, int64_t cols);

// The host-side packed form (what upload() copies to the device):
//  codes: [tile][super][lane][16 bytes]: word c (chunk c of the super, inputs 32c..32c+31) of lane
//    (g = lane / 4, t = lane % 4) holds the kept codes of rows 16·tile + g and + 8 in the 4-input
//    groups t and t + 4 of the chunk — the A fragment of mma.sp.m16n8k32 (laid out as a dense
//    m16n8k16 A fragment over the compressed 16 columns, PTX ISA 9.7.14.6.2.2), nibbles in the
//    order of quant_gemv.hpp's words, codes unsigned as there (q + 8 symmetric, q asymmetric).
//  meta: [tile][super][lane][2 words]: word h covers chunks 2h and 2h + 1. Lanes t = 0, 1 hold the
//    metadata of chunk 2h (the MMA's sparsity selector 0), lanes t = 2, 3 that of chunk 2h + 1
//    (selector 1); lane t covers inputs 16·(t % 2) .. + 15 of its chunk: bits 0-15 for row g,
//    16-31 for row g + 8, four bits per group (index of the first kept input, then the second,
//    first < second).
//  scales, zeros: as RepackedWeight's (pack_group_params).
// The MMA layout facts above (selector ↔ lane pair, row g in the low half) are from the PTX ISA's
// metadata figure for m16n8k32; the GPU test checks them against the CPU product.
struct RepackedSparse24Q {
  Sparse24QLayout layout;
  std::vector<uint8_t> codes, meta, zeros;
  std::vector<uint16_t> scales;
};

// Whether gemv_sparse24_w4 can take w: 4-bit, no act-order g_idx, group length a multiple of 32
// (or the whole row), and at most two non-zero codes (q ≠ its zero point) in every group of four
// consecutive inputs of a row (what --pattern 2:4 pruning followed by quantization leaves).
bool is_sparse24_w4(const QuantizedWeight& w);

// Validates w (4-bit, no act-order g_idx, group length a multiple of 32 or the whole row) and that
// every group of four consecutive inputs of a row holds at most two non-zero weights (errors name
// `name`, the row and the columns); packs it.
RepackedSparse24Q repack_sparse24_w4(const QuantizedWeight& w, const std::string& name);

// The codes [rows][cols] (q + 8 / q, zero-valued where pruned) that a packed form stands for,
// decoded through the layout above: the inverse of the packing, for tests.
std::vector<uint8_t> unpack_sparse24_w4(const RepackedSparse24Q& r);

class GpuSparse24QWeight {
 public:
  static GpuSparse24QWeight upload(const QuantizedWeight& w, const std::string& name);
  static GpuSparse24QWeight upload(const RepackedSparse24Q& r);
  GpuSparse24QWeight clone() const;

  const Sparse24QLayout& layout() const { return layout_; }
  // Bytes one GEMV reads: codes, metadata, scales, zero points.
  size_t weight_bytes() const { return codes_.bytes() + meta_.bytes() + scales_.bytes() + zeros_.bytes(); }
  const uint8_t* codes() const { return codes_.data(); }
  const uint8_t* meta() const { return meta_.data(); }
  const uint16_t* scales() const { return scales_.data(); }
  const uint8_t* zeros() const { return zeros_.data(); }
  int sm_count() const { return sm_count_; }
  int compute_major() const { return compute_major_; }

 private:
  Sparse24QLayout layout_;
  DeviceBuffer<uint8_t> codes_, meta_, zeros_;
  DeviceBuffer<uint16_t> scales_;
  int sm_count_ = 1, compute_major_ = 0;
};

// 2:4 f16: the same layout with the kept values themselves.
//  values: [tile][super][chunk][lane][8 halves]: a0..a7 of lane (g, t)'s m16n8k16 A fragment over
//    the chunk's 16 compressed columns, in register order (row g: kept values of group t, then
//    row g + 8: group t, row g: group t + 4, row g + 8: group t + 4); 64 bytes per lane and super.
//  meta: as RepackedSparse24Q's.
struct RepackedSparse24F16 {
  Sparse24QLayout layout;  // symmetric, n_groups, k32_per_group unused
  std::vector<uint16_t> values;
  std::vector<uint8_t> meta;
};

// Packs w (f16 bits, [rows, cols] row-major) after checking that every group of four consecutive
// inputs of a row holds at most two non-zero values (errors name `name`, the row and the columns).
RepackedSparse24F16 repack_sparse24_f16(const uint16_t* w, int64_t rows, int64_t cols, const std::string& name);
// The dense f16 bits [rows][cols] a packed form stands for (zeros at the pruned inputs), for tests.
std::vector<uint16_t> unpack_sparse24_f16(const RepackedSparse24F16& r);

class GpuSparse24F16Weight {
 public:
  static GpuSparse24F16Weight upload(const RepackedSparse24F16& r);
  static GpuSparse24F16Weight upload(const uint16_t* w, int64_t rows, int64_t cols, const std::string& name) {
    return upload(repack_sparse24_f16(w, rows, cols, name));
  }
  GpuSparse24F16Weight clone() const;

  const Sparse24QLayout& layout() const { return layout_; }
  size_t weight_bytes() const { return values_.bytes() + meta_.bytes(); }  // 9/16 of dense f16 (padded)
  const uint16_t* values() const { return values_.data(); }
  const uint8_t* meta() const { return meta_.data(); }
  int sm_count() const { return sm_count_; }
  int compute_major() const { return compute_major_; }

 private:
  Sparse24QLayout layout_;
  DeviceBuffer<uint16_t> values_;
  DeviceBuffer<uint8_t> meta_;
  int sm_count_ = 1, compute_major_ = 0;
};

// Whether gemv_sparse24_w4 / gemv_sparse24_f16 take m tokens of a weight of this layout: 1 ≤ m ≤ 16
// and m staged rows of the padded K in f16 within 96 KiB.
bool gemv_sparse24_fits(const Sparse24QLayout& l, int64_t m);

// The block shape both take by default: gemv_fused's model (fused_block_shape) with a super of 128
// inputs as the unit of work (four mma.sp per 8 tokens, plus four dequantized words for INT4:
// about what one 64-input chunk of gemv_fused costs).
GemvFusedConfig gemv_sparse24_config(const Sparse24QLayout& l, int64_t m, int sm_count);

// y[m, n] = Ŵ·x [+ bias[n]] [+ residual[m, n]] with x produced by the prologue (plain, RMSNorm,
// SwiGLU; quant_gemv_fused.hpp) while it is staged: the decode GEMV of gemv_fused for a 2:4 INT4
// weight. f32 sums; one launch of 8- or 16-warp blocks, each on 1-16 16-row tiles whose warps
// split K and add in shared memory; no allocation (graph-capturable); launch overlap on sm_90+.
// Needs sm_80+. Moves 3/8·N·K bytes of codes and metadata plus the scales, the input and output.
void gemv_sparse24_w4(const GpuSparse24QWeight& w, const GemvPrologue& pro, const GemvEpilogue& epi, int64_t m,
                      cudaStream_t stream, GemvFusedConfig cfg = {});

// The plain product y[m, n] = x[m, k] · Ŵ[n, k]ᵀ (f16, row-major, contiguous).
void gemv_sparse24_w4(const GpuSparse24QWeight& w, const uint16_t* x, uint16_t* y, int64_t m, cudaStream_t stream);

// The same GEMV for a 2:4 f16 weight: the kept values are the A fragments as they are (no
// dequantization, no scales); 9/16 of the dense f16 bytes.
void gemv_sparse24_f16(const GpuSparse24F16Weight& w, const GemvPrologue& pro, const GemvEpilogue& epi, int64_t m,
                       cudaStream_t stream, GemvFusedConfig cfg = {});
void gemv_sparse24_f16(const GpuSparse24F16Weight& w, const uint16_t* x, uint16_t* y, int64_t m, cudaStream_t stream);

// out[n, k] = s·(q − z) rounded once to f16 (row-major N×K, zero at the pruned inputs): what
// dequantize_to_f16 gives for the same QuantizedWeight, from the 2:4 layout.
void dequantize_sparse24_w4_to_f16(const GpuSparse24QWeight& w, uint16_t* out, cudaStream_t stream);

// out[n, k] = the dense f16 weight (row-major N×K, zero at the pruned inputs) of a packed 2:4 f16
// weight, bit for bit the values it was packed from (a pruned −0 comes back as +0).
void decompress_sparse24_f16(const GpuSparse24F16Weight& w, uint16_t* out, cudaStream_t stream);

// The prefill (m > 16) paths: dequantize / decompress into `scratch` (N·K halves), then one cuBLAS GEMM.
void linear_sparse24_f16_prefill(const GpuSparse24F16Weight& w, const CublasHandle& h, const uint16_t* x, uint16_t* y,
                                 int64_t m, uint16_t* scratch, cudaStream_t stream);
void linear_sparse24_w4_prefill(const GpuSparse24QWeight& w, const CublasHandle& h, const uint16_t* x, uint16_t* y,
                                int64_t m, uint16_t* scratch, cudaStream_t stream);

}  // namespace llmc::kernels::cuda
