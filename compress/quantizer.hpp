// The quantization grid every weight quantizer shares (RTN, GPTQ, AWQ): fitting an f16 scale and
// zero point to a group, rounding values onto it, and the input checks the passes have in common.
#pragma once
#include <cstdint>
#include <string>

#include "runtime/ir/quantized.hpp"

namespace llmc::compress {

// How a weight is quantized. Values round half to even (as torch.round and numpy.round do).
//  symmetric:  s = max|w| / (2^(b−1) − 1), q = clamp(round(w / s), −2^(b−1), 2^(b−1) − 1)
//  asymmetric: lo = min(min w, 0), hi = max(max w, 0), s = (hi − lo) / (2^b − 1),
//              z = clamp(round(−lo / s), 0, 2^b − 1), q = clamp(round(w / s) + z, 0, 2^b − 1)
// The scale is rounded to f16 before z and q are computed, so the stored weight is exactly the
// one the algorithms reasoned about. A group whose range is zero gets s = 1 (its values are 0).
// clip_search: try the range shrunk by p = 1 − i / clip_grid, i = 0 .. ⌊clip_max_shrink·clip_grid⌋ − 1,
// keeping the p of least squared error over the group (first best on ties), as the GPTQ
// reference's MSE quantizer and AWQ's clip search do (the latter on outputs, see awq.hpp).
// Groups run along the input: group g covers columns [g·G, min((g + 1)·G, cols)), so when G does
// not divide cols the last group is shorter (QuantizedWeight's layout, runtime/ir/quantized.hpp).
struct QuantConfig {
  int bits = 4;
  int64_t group_size = 128;  // 0: one group per output row (per channel)
  bool symmetric = true;
  bool clip_search = false;
  int clip_grid = 20;
  double clip_max_shrink = 0.5;
};

// One group's grid: scale (exactly representable in f16) and zero point (0 when symmetric).
struct GroupGrid {
  double scale = 1;
  int zero = 0;
};

inline int q_lo(const QuantConfig& c) { return c.symmetric ? -(1 << (c.bits - 1)) : 0; }
inline int q_hi(const QuantConfig& c) { return c.symmetric ? (1 << (c.bits - 1)) - 1 : (1 << c.bits) - 1; }

// Group length and count of a layer with `cols` inputs (the last group may be shorter).
inline int64_t group_len(const QuantConfig& c, int64_t cols) { return c.group_size == 0 ? cols : c.group_size; }
inline int64_t group_count(const QuantConfig& c, int64_t cols) {
  return (cols + group_len(c, cols) - 1) / group_len(c, cols);
}

// Throws Error naming `name` if bits, group size or clip parameters are invalid. A layer with more
// than one group needs a group size that is a multiple of 32: the CUDA kernels
// (kernels/cuda/quant_gemv.cu, prefill.cu) look up scales once per 32-column block, so a group
// boundary inside a block could not be represented there (the CPU kernels would not mind).
void check_quant_config(const QuantConfig& cfg, int64_t cols, const std::string& name);
// Throws Error naming `name` (and `what`, e.g. "weight") if any value is NaN or infinite.
void check_finite(const float* v, int64_t n, const std::string& name, const std::string& what);
// Whether a group whose largest magnitude is amax gets a scale that f16 can hold.
bool scale_fits_f16(double amax, const QuantConfig& cfg);
// Throws Error naming `name` if a value is so large that its scale overflows f16 at the configured bits.
void check_f16_range(const float* w, int64_t n, const QuantConfig& cfg, const std::string& name);

// Grid for values spanning [lo, hi] (lo ≤ 0 ≤ hi is enforced inside).
GroupGrid fit_range(double lo, double hi, const QuantConfig& cfg);
// Grid for n values w[0], w[stride], ...; runs the clip search when cfg.clip_search is set.
GroupGrid fit_group(const double* w, int64_t n, int64_t stride, const QuantConfig& cfg);
// Round one value onto the grid: signed q (symmetric) or the unsigned code (asymmetric).
int quantize_value(double w, const GroupGrid& g, const QuantConfig& cfg);
inline double dequantize_value(int q, const GroupGrid& g) { return g.scale * (q - g.zero); }
// Squared error of quantizing the n strided values on the grid.
double group_sq_error(const double* w, int64_t n, int64_t stride, const GroupGrid& g, const QuantConfig& cfg);

// Packs q values codes[rows, cols] and grids[rows, n_groups] (row-major) into a QuantizedWeight.
// Packing is serial: INT4 rows and zero points may share bytes, so passes compute codes in
// parallel into plain arrays and pack once.
QuantizedWeight pack_weight(int64_t rows, int64_t cols, const QuantConfig& cfg, const int16_t* codes,
                            const GroupGrid* grids);

}  // namespace llmc::compress
