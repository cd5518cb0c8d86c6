// QuantizedWeight: an INT4/INT8 linear weight [out, in] with f16 scales per (row, group) and
// optional zero points and act-order column groups; plus dequantize() back to f32.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/ir/tensor.hpp"

namespace llmc {

// Conventions (shared by compress/, the kernels and the file formats):
//  - orientation [rows = out_features, cols = in_features], row-major; groups run along cols.
//  - symmetric: w = s·q with q in [−2^(b−1), 2^(b−1)−1] (INT4 [−8, 7], INT8 [−128, 127]);
//    INT4 stores q + 8 as an unsigned nibble, INT8 stores q as an int8 byte.
//  - asymmetric: w = s·(q − z) with q, z in [0, 2^b − 1], stored unsigned.
//  - INT4 packs two values per byte over the flat row-major index i: byte i/2, low nibble first.
//    Zero points [rows, n_groups] pack the same way (one byte each at INT8).
//  - scales are f16 bits, [rows, n_groups]; g_idx (optional, GPTQ act-order) gives the group of
//    each input column, otherwise column c belongs to group c / group_len().
//  - n_groups = ceil(cols / group_len): when group_len does not divide cols the last group is
//    shorter (cols − (n_groups − 1)·group_len columns), e.g. 576 = 4·128 + 64 (SmolLM2, g128).
struct QuantizedWeight {
  int bits = 4;                  // 4 or 8
  int64_t rows = 0, cols = 0;    // out_features, in_features
  int64_t group_size = 0;        // 0 (or ≥ cols): one group per row (per channel)
  bool symmetric = true;
  std::vector<uint8_t> packed;   // values
  std::vector<uint16_t> scales;  // f16, [rows, n_groups]
  std::vector<uint8_t> zeros;    // asymmetric only, [rows, n_groups], packed like values
  std::vector<int32_t> g_idx;    // optional, [cols]

  // Storage for the given layout with every value code 0, every scale 1.0 and zero point 0.
  static QuantizedWeight allocate(int bits, int64_t rows, int64_t cols, int64_t group_size, bool symmetric);

  int64_t group_len() const { return group_size == 0 ? cols : group_size; }
  int64_t n_groups() const { return group_len() <= 0 ? 0 : (cols + group_len() - 1) / group_len(); }
  // Columns [group_begin(g), group_end(g)) of group g when g_idx is empty (the last may be short).
  int64_t group_begin(int64_t g) const { return g * group_len(); }
  int64_t group_end(int64_t g) const { return std::min(cols, (g + 1) * group_len()); }
  int64_t group_of(int64_t col) const { return g_idx.empty() ? col / group_len() : g_idx[col]; }
  // Range of q: symmetric [−2^(b−1), 2^(b−1)−1], asymmetric [0, 2^b − 1].
  int qmin() const { return symmetric ? -(1 << (bits - 1)) : 0; }
  int qmax() const { return symmetric ? (1 << (bits - 1)) - 1 : (1 << bits) - 1; }

  // q at (r, c) (signed for symmetric, the unsigned code for asymmetric).
  int q(int64_t r, int64_t c) const;
  void set_q(int64_t r, int64_t c, int q);
  float scale(int64_t r, int64_t g) const;
  int zero(int64_t r, int64_t g) const;  // 0 when symmetric
  void set_zero(int64_t r, int64_t g, int z);

  // Checks bits, shape, group size ≥ 0, sizes of every buffer, g_idx range and finite positive
  // scales; throws Error naming `name` and the field.
  void validate(const std::string& name) const;
  // Bytes of packed values, scales, zero points and g_idx together.
  size_t nbytes() const;
};

// An act-order weight's columns sorted by group, ascending within a group (order[k] = the column
// at position k), so that its groups become contiguous runs: what the CUDA kernels store and what
// compress::absorb_act_order moves into the producers of a down projection's input. Needs every
// group to hold the columns it would hold without act-order (group_size each, the last the rest),
// as GPTQ's act-order assigns them, and throws Error after `where` otherwise (or for a g_idx of
// the wrong length or out of range). Empty where g_idx is empty or already in that order.
std::vector<int32_t> act_order_columns(const QuantizedWeight& w, const std::string& where);

// Rows [r0, r1) dequantized into out[(r1 − r0), cols] (f32, row-major).
void dequantize_rows(const QuantizedWeight& w, int64_t r0, int64_t r1, float* out);
// The whole weight as an f32 tensor [rows, cols]; validates first (errors name `name`).
Tensor dequantize(const QuantizedWeight& w, const std::string& name = "weight");

}  // namespace llmc
