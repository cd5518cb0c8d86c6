#include "runtime/ir/quantized.hpp"

#include <cmath>
#include <numeric>

namespace llmc {

namespace {

inline int get_nibble(const std::vector<uint8_t>& buf, int64_t i) { return (buf[i >> 1] >> ((i & 1) * 4)) & 0xf; }

inline void set_nibble(std::vector<uint8_t>& buf, int64_t i, int v) {
  const int shift = static_cast<int>(i & 1) * 4;
  buf[i >> 1] = static_cast<uint8_t>((buf[i >> 1] & ~(0xf << shift)) | ((v & 0xf) << shift));
}

size_t packed_bytes(int bits, int64_t n) { return bits == 4 ? static_cast<size_t>((n + 1) / 2) : static_cast<size_t>(n); }

}  // namespace

QuantizedWeight QuantizedWeight::allocate(int bits, int64_t rows, int64_t cols, int64_t group_size, bool symmetric) {
  QuantizedWeight w;
  w.bits = bits;
  w.rows = rows;
  w.cols = cols;
  w.group_size = group_size;
  w.symmetric = symmetric;
  check(bits == 4 || bits == 8, "QuantizedWeight: bits must be 4 or 8, got " + std::to_string(bits));
  check(rows >= 0 && cols > 0, "QuantizedWeight: shape [" + std::to_string(rows) + ", " + std::to_string(cols) +
                                   "] is invalid");
  check(group_size >= 0, "QuantizedWeight: group size must be ≥ 0, got " + std::to_string(group_size));
  const int64_t ng = w.n_groups();
  w.packed.assign(packed_bytes(bits, rows * cols), 0);
  w.scales.assign(static_cast<size_t>(rows * ng), f32_to_f16(1.0f));
  if (!symmetric) w.zeros.assign(packed_bytes(bits, rows * ng), 0);
  // code 0 is the most negative value when symmetric; store q = 0 instead
  if (symmetric)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) w.set_q(r, c, 0);
  return w;
}

int QuantizedWeight::q(int64_t r, int64_t c) const {
  const int64_t i = r * cols + c;
  if (bits == 4) return get_nibble(packed, i) - (symmetric ? 8 : 0);
  return symmetric ? static_cast<int>(static_cast<int8_t>(packed[i])) : static_cast<int>(packed[i]);
}

void QuantizedWeight::set_q(int64_t r, int64_t c, int v) {
  const int64_t i = r * cols + c;
  if (bits == 4)
    set_nibble(packed, i, v + (symmetric ? 8 : 0));
  else
    packed[i] = static_cast<uint8_t>(v);  // int8 two's complement byte when symmetric
}

float QuantizedWeight::scale(int64_t r, int64_t g) const { return f16_to_f32(scales[r * n_groups() + g]); }

int QuantizedWeight::zero(int64_t r, int64_t g) const {
  if (symmetric) return 0;
  const int64_t i = r * n_groups() + g;
  return bits == 4 ? get_nibble(zeros, i) : zeros[i];
}

void QuantizedWeight::set_zero(int64_t r, int64_t g, int z) {
  const int64_t i = r * n_groups() + g;
  if (bits == 4)
    set_nibble(zeros, i, z);
  else
    zeros[i] = static_cast<uint8_t>(z);
}

void QuantizedWeight::validate(const std::string& name) const {
  const std::string where = "quantized weight '" + name + "': ";
  check(bits == 4 || bits == 8, where + "bits must be 4 or 8, got " + std::to_string(bits));
  check(rows > 0 && cols > 0, where + "shape [" + std::to_string(rows) + ", " + std::to_string(cols) + "] is empty");
  check(group_size >= 0, where + "group size must be ≥ 0, got " + std::to_string(group_size));
  const int64_t ng = n_groups();
  check(packed.size() == packed_bytes(bits, rows * cols),
        where + "packed values hold " + std::to_string(packed.size()) + " bytes, expected " +
            std::to_string(packed_bytes(bits, rows * cols)));
  check(scales.size() == static_cast<size_t>(rows * ng),
        where + "scales hold " + std::to_string(scales.size()) + " values, expected " + std::to_string(rows * ng));
  if (symmetric)
    check(zeros.empty(), where + "symmetric weights carry no zero points");
  else
    check(zeros.size() == packed_bytes(bits, rows * ng),
          where + "zero points hold " + std::to_string(zeros.size()) + " bytes, expected " +
              std::to_string(packed_bytes(bits, rows * ng)));
  for (size_t i = 0; i < scales.size(); ++i) {
    const float s = f16_to_f32(scales[i]);
    check(std::isfinite(s) && s > 0, where + "scale " + std::to_string(i) + " is " + std::to_string(s) +
                                         " (must be finite and positive)");
  }
  if (!g_idx.empty()) {
    check(g_idx.size() == static_cast<size_t>(cols),
          where + "g_idx holds " + std::to_string(g_idx.size()) + " entries, expected " + std::to_string(cols));
    for (size_t c = 0; c < g_idx.size(); ++c)
      check(g_idx[c] >= 0 && g_idx[c] < ng,
            where + "g_idx[" + std::to_string(c) + "] = " + std::to_string(g_idx[c]) + " is outside [0, " +
                std::to_string(ng) + ")");
  }
}

size_t QuantizedWeight::nbytes() const {
  return packed.size() + scales.size() * 2 + zeros.size() + g_idx.size() * 4;
}

void dequantize_rows(const QuantizedWeight& w, int64_t r0, int64_t r1, float* out) {
  const int64_t cols = w.cols, ng = w.n_groups();
  for (int64_t r = r0; r < r1; ++r) {
    float* o = out + (r - r0) * cols;
    if (w.g_idx.empty()) {
      for (int64_t g = 0; g < ng; ++g) {
        const float s = w.scale(r, g);
        const int z = w.zero(r, g);
        for (int64_t c = w.group_begin(g); c < w.group_end(g); ++c) o[c] = s * static_cast<float>(w.q(r, c) - z);
      }
    } else {
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t g = w.g_idx[c];
        o[c] = w.scale(r, g) * static_cast<float>(w.q(r, c) - w.zero(r, g));
      }
    }
  }
}

std::vector<int32_t> act_order_columns(const QuantizedWeight& w, const std::string& where) {
  if (w.g_idx.empty()) return {};
  const int64_t ng = w.n_groups();
  check(static_cast<int64_t>(w.g_idx.size()) == w.cols,
        where + "act-order g_idx has " + std::to_string(w.g_idx.size()) + " entries for " + std::to_string(w.cols) + " columns");
  std::vector<int64_t> count(static_cast<size_t>(ng), 0);
  for (int64_t c = 0; c < w.cols; ++c) {
    const int32_t g = w.g_idx[static_cast<size_t>(c)];
    if (g < 0 || g >= ng)
      throw Error(where + "act-order g_idx[" + std::to_string(c) + "] = " + std::to_string(g) + " is not a group (" +
                  std::to_string(ng) + " groups)");
    ++count[static_cast<size_t>(g)];
  }
  for (int64_t g = 0; g < ng; ++g)
    if (count[static_cast<size_t>(g)] != w.group_end(g) - w.group_begin(g))
      throw Error(where + "act-order g_idx gives group " + std::to_string(g) + " " +
                  std::to_string(count[static_cast<size_t>(g)]) + " columns; contiguous groups need " +
                  std::to_string(w.group_end(g) - w.group_begin(g)) + " (group_size each, the last group the rest)");
  std::vector<int32_t> perm(static_cast<size_t>(w.cols));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return w.g_idx[a] < w.g_idx[b]; });
  for (int64_t c = 0; c < w.cols; ++c)
    if (perm[static_cast<size_t>(c)] != c) return perm;
  return {};  // already in group order
}

Tensor dequantize(const QuantizedWeight& w, const std::string& name) {
  w.validate(name);
  Tensor t(DType::F32, {w.rows, w.cols});
  dequantize_rows(w, 0, w.rows, t.mutable_data<float>());
  return t;
}

}  // namespace llmc
