// Host side of the 2:4 sparse INT4 GEMV: packing QuantizedWeight into the layout of
// sparse_gemv.hpp (and back, for tests) and uploading it.
#include <algorithm>
#include <array>

#include "kernels/cuda/quant_gemv.hpp"
#include "kernels/cuda/sparse_gemv.hpp"

namespace llmc::kernels::cuda {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// quant_gemv.hpp's nibble order: fragment elements a0 a2 a4 a6 a1 a3 a5 a7 from the low nibble up.
constexpr int kNibbleOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

// The fragment element i (0..7) of lane (g, t) in one chunk: its row offset in the tile (g or
// g + 8), its 4-input group in the chunk (t or t + 4) and which kept value (first or second) —
// the m16n8k16 A layout over the compressed columns 2t, 2t + 1 (elements 0-3) and 2t + 8, 2t + 9
// (elements 4-7), two compressed columns per group.
struct Slot {
  int row_off, group, kept;
};
Slot slot(int g, int t, int i) { return {g + ((i >> 1) & 1) * 8, t + (i >> 2) * 4, i & 1}; }

// The metadata word of lane (g, t) for chunk pair h of a super: chunk 2h + t / 2 (selector t / 2),
// inputs 16·(t % 2) .. + 15 of it.
int meta_chunk(int t, int h) { return 2 * h + (t >> 1); }

// The two kept positions (ascending) of every (row, group of four inputs) of the padded
// [tiles·16, supers·128] matrix, row-major: the non-zero inputs (nonzero(row, col) for real rows and
// columns; padding counts as zero), completed with the first zero positions (their value is 0).
using Kept = std::array<uint8_t, 2>;
template <class NonZero>
std::vector<Kept> kept_positions(const Sparse24QLayout& l, NonZero nonzero, const std::string& where) {
  const int64_t prow = l.tiles * 16, pgroups = l.supers * 32;
  std::vector<Kept> kept(static_cast<size_t>(prow * pgroups));
  for (int64_t row = 0; row < prow; ++row)
    for (int64_t q = 0; q < pgroups; ++q) {
      int nz[4], n = 0;
      for (int e = 0; e < 4; ++e)
        if (row < l.rows && 4 * q + e < l.cols && nonzero(row, 4 * q + e)) nz[n++] = e;
      if (n > 2)
        throw Error(where + "row " + std::to_string(row) + ", columns " + std::to_string(4 * q) + ".." +
                    std::to_string(4 * q + 3) + " hold " + std::to_string(n) +
                    " non-zero weights; 2:4 allows two in every four (prune with --pattern 2:4 first)");
      for (int e = 0; e < 4 && n < 2; ++e)
        if (std::find(nz, nz + n, e) == nz + n) nz[n++] = e;
      std::sort(nz, nz + 2);
      kept[static_cast<size_t>(row * pgroups + q)] = {static_cast<uint8_t>(nz[0]), static_cast<uint8_t>(nz[1])};
    }
  return kept;
}

// The metadata bytes [tile][super][lane][2 words] (sparse_gemv.hpp) of the kept positions.
std::vector<uint8_t> pack_meta(const Sparse24QLayout& l, const std::vector<Kept>& kept) {
  const int64_t pgroups = l.supers * 32;
  // 16 metadata bits of `row` for inputs 16·half .. + 15 of chunk k32: four bits per group.
  auto meta16 = [&](int64_t row, int64_t k32, int half) {
    uint32_t m = 0;
    for (int q = 0; q < 4; ++q) {
      const Kept& k = kept[static_cast<size_t>(row * pgroups + k32 * 8 + half * 4 + q)];
      m |= static_cast<uint32_t>(k[0] | k[1] << 2) << (4 * q);
    }
    return m;
  };
  std::vector<uint8_t> meta(static_cast<size_t>(l.tiles * l.supers * 32 * 8), 0);
  for (int64_t t = 0; t < l.tiles; ++t)
    for (int64_t s = 0; s < l.supers; ++s)
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane >> 2, tig = lane & 3;
        const int64_t r0 = 16 * t + g;
        const size_t at = static_cast<size_t>((t * l.supers + s) * 32 + lane);
        for (int h = 0; h < 2; ++h) {
          const int64_t k32 = s * 4 + meta_chunk(tig, h);
          const uint32_t word = meta16(r0, k32, tig & 1) | meta16(r0 + 8, k32, tig & 1) << 16;
          for (int b = 0; b < 4; ++b) meta[at * 8 + h * 4 + b] = static_cast<uint8_t>(word >> (8 * b));
        }
      }
  return meta;
}

// The column of fragment element i of lane (g, t) in chunk k32, and its row, given the kept positions.
struct Place {
  int64_t row, col;
};
Place place_of(const Sparse24QLayout& l, const std::vector<Kept>& kept, int64_t t, int64_t k32, int g, int tig, int i) {
  const Slot sl = slot(g, tig, i);
  const int64_t row = 16 * t + sl.row_off, q = k32 * 8 + sl.group;
  return {row, 4 * q + kept[static_cast<size_t>(row * l.supers * 32 + q)][sl.kept]};
}

}  // namespace

Sparse24QLayout sparse24_layout(int64_t rows, int64_t cols) {
  Sparse24QLayout l;
  l.rows = rows;
  l.cols = cols;
  l.tiles = ceil_div(rows, 16);
  l.supers = ceil_div(cols, 128);
  return l;
}

int64_t sparse24_w4_bytes(int64_t rows, int64_t cols, int64_t n_groups, bool symmetric) {
  const Sparse24QLayout l = sparse24_layout(rows, cols);
  return l.tiles * l.supers * 32 * (16 + 8) + n_groups * l.tiles * 16 * (symmetric ? 2 : 3);
}

int64_t sparse24_f16_bytes(int64_t rows, int64_t cols) {
  const Sparse24QLayout l = sparse24_layout(rows, cols);
  return l.tiles * l.supers * 32 * (64 + 8);
}

bool is_sparse24_w4(const QuantizedWeight& w) {
  if (w.bits != 4 || !w.g_idx.empty() || w.rows <= 0 || w.cols <= 0) return false;
  const int64_t gl = w.group_len();
  if (w.n_groups() != 1 && gl % 32 != 0) return false;  // then no group of four straddles two groups
  if (w.packed.size() < static_cast<size_t>((w.rows * w.cols + 1) / 2)) return false;
  auto nibble = [&](int64_t i) { return (i & 1) ? w.packed[static_cast<size_t>(i >> 1)] >> 4 : w.packed[static_cast<size_t>(i >> 1)] & 15; };
  for (int64_t r = 0; r < w.rows; ++r) {
    const int64_t base = r * w.cols;
    int zc = w.symmetric ? 8 : w.zero(r, 0);  // the stored code of value 0
    for (int64_t c0 = 0; c0 < w.cols; c0 += 4) {
      if (!w.symmetric && c0 % gl == 0) zc = w.zero(r, c0 / gl);
      int nz = 0;
      for (int64_t c = c0; c < std::min(c0 + 4, w.cols); ++c) nz += nibble(base + c) != zc;
      if (nz > 2) return false;  // dense weights stop at their first group of four
    }
  }
  return true;
}

RepackedSparse24Q repack_sparse24_w4(const QuantizedWeight& w, const std::string& name) {
  w.validate(name);
  const std::string where = "quantized weight '" + name + "' (2:4 INT4 GPU upload): ";
  check(w.bits == 4, where + std::to_string(w.bits) + "-bit codes; the 2:4 kernel takes INT4");
  check(w.g_idx.empty(), where + "act-order g_idx is not supported by the GPU kernels; reorder the columns first");
  const int64_t gl = w.group_len(), ng = w.n_groups();
  check(ng == 1 || gl % 32 == 0,
        where + "group size " + std::to_string(gl) + " must be a multiple of 32 (or span the whole row)");
  check(w.rows < (int64_t{1} << 31) && w.cols < (int64_t{1} << 31), where + "shape too large for 32-bit indexing");

  RepackedSparse24Q r;
  Sparse24QLayout& l = r.layout;
  l = sparse24_layout(w.rows, w.cols);
  l.symmetric = w.symmetric;
  l.n_groups = ng;
  l.k32_per_group = ng == 1 ? 0 : gl / 32;
  l.groups = group_index(l.k32_per_group, l.chunks(), where);

  // The code of value 0 in (row, column)'s group: what padding and pruned inputs hold.
  const int offset = w.symmetric ? 8 : 0;
  auto zero_code = [&](int64_t row, int64_t col) -> int {
    return !w.symmetric && row < w.rows ? w.zero(row, w.group_of(std::min(col, w.cols - 1))) : offset;
  };
  auto code = [&](int64_t row, int64_t col) -> int {
    if (row >= w.rows || col >= w.cols) return zero_code(row, col);
    return w.q(row, col) + offset;
  };
  const std::vector<Kept> kept =
      kept_positions(l, [&](int64_t row, int64_t col) { return code(row, col) != zero_code(row, col); }, where);

  r.codes.assign(static_cast<size_t>(l.tiles * l.supers * 32 * 16), 0);
  for (int64_t t = 0; t < l.tiles; ++t)
    for (int64_t s = 0; s < l.supers; ++s)
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane >> 2, tig = lane & 3;
        const size_t at = static_cast<size_t>((t * l.supers + s) * 32 + lane);
        for (int c = 0; c < 4; ++c) {
          uint32_t word = 0;
          for (int n = 0; n < 8; ++n) {
            const Place pl = place_of(l, kept, t, s * 4 + c, g, tig, kNibbleOrder[n]);
            word |= static_cast<uint32_t>(code(pl.row, pl.col)) << (4 * n);
          }
          for (int b = 0; b < 4; ++b) r.codes[at * 16 + c * 4 + b] = static_cast<uint8_t>(word >> (8 * b));
        }
      }
  r.meta = pack_meta(l, kept);
  pack_group_params(w, l.tiles, r.scales, r.zeros);
  return r;
}

RepackedSparse24F16 repack_sparse24_f16(const uint16_t* w, int64_t rows, int64_t cols, const std::string& name) {
  const std::string where = "weight '" + name + "' (2:4 f16 GPU upload): ";
  check(rows > 0 && cols > 0 && rows < (int64_t{1} << 31) && cols < (int64_t{1} << 31),
        where + "bad shape " + std::to_string(rows) + " x " + std::to_string(cols));
  RepackedSparse24F16 r;
  Sparse24QLayout& l = r.layout;
  l = sparse24_layout(rows, cols);
  auto value = [&](int64_t row, int64_t col) -> uint16_t { return row < rows && col < cols ? w[row * cols + col] : 0; };
  const std::vector<Kept> kept =
      kept_positions(l, [&](int64_t row, int64_t col) { return (value(row, col) & 0x7fffu) != 0; }, where);
  r.values.assign(static_cast<size_t>(l.tiles * l.supers * 32 * 32), 0);
  for (int64_t t = 0; t < l.tiles; ++t)
    for (int64_t s = 0; s < l.supers; ++s)
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane >> 2, tig = lane & 3;
        for (int c = 0; c < 4; ++c)
          for (int i = 0; i < 8; ++i) {  // a0..a7 in register order
            const Place pl = place_of(l, kept, t, s * 4 + c, g, tig, i);
            r.values[static_cast<size_t>((((t * l.supers + s) * 4 + c) * 32 + lane) * 8 + i)] = value(pl.row, pl.col);
          }
      }
  r.meta = pack_meta(l, kept);
  return r;
}

std::vector<uint8_t> unpack_sparse24_w4(const RepackedSparse24Q& r) {
  const Sparse24QLayout& l = r.layout;
  const int64_t pcols = l.supers * 128;
  // Start from the value-0 code: the symmetric offset, or each group's zero point.
  std::vector<uint8_t> out(static_cast<size_t>(l.rows * l.cols), l.symmetric ? 8 : 0);
  std::vector<int> placed(static_cast<size_t>(l.tiles * 16 * pcols), -1);
  auto word_at = [](const std::vector<uint8_t>& v, size_t byte) {
    return static_cast<uint32_t>(v[byte]) | static_cast<uint32_t>(v[byte + 1]) << 8 |
           static_cast<uint32_t>(v[byte + 2]) << 16 | static_cast<uint32_t>(v[byte + 3]) << 24;
  };
  for (int64_t t = 0; t < l.tiles; ++t)
    for (int64_t s = 0; s < l.supers; ++s)
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane >> 2, tig = lane & 3;
        const size_t at = static_cast<size_t>((t * l.supers + s) * 32 + lane);
        // The metadata of this lane's rows comes from the lanes holding it for each chunk/half.
        auto index_of = [&](int64_t row_off, int64_t k32_in_super, int group, int kept) {
          const int half = group >> 2, h = static_cast<int>(k32_in_super >> 1);
          const int holder = g * 4 + (static_cast<int>(k32_in_super & 1) << 1) + half;  // lane with that metadata
          const uint32_t m = word_at(r.meta, static_cast<size_t>((t * l.supers + s) * 32 + holder) * 8 + h * 4);
          const uint32_t bits = (row_off >= 8 ? m >> 16 : m) & 0xffffu;
          return static_cast<int>(bits >> (4 * (group & 3) + 2 * kept) & 3u);
        };
        for (int c = 0; c < 4; ++c) {
          const uint32_t word = word_at(r.codes, at * 16 + c * 4);
          for (int n = 0; n < 8; ++n) {
            const Slot sl = slot(g, tig, kNibbleOrder[n]);
            const int64_t row = 16 * t + sl.row_off;
            const int64_t col = (s * 4 + c) * 32 + sl.group * 4 + index_of(sl.row_off, c, sl.group, sl.kept);
            placed[static_cast<size_t>(row * pcols + col)] = static_cast<int>(word >> (4 * n) & 0xfu);
          }
        }
      }
  for (int64_t row = 0; row < l.rows; ++row)
    for (int64_t col = 0; col < l.cols; ++col) {
      const int v = placed[static_cast<size_t>(row * pcols + col)];
      if (v >= 0) {
        out[static_cast<size_t>(row * l.cols + col)] = static_cast<uint8_t>(v);
      } else if (!l.symmetric) {  // a pruned input: its group's zero point
        const int64_t grp = l.k32_per_group == 0 ? 0 : std::min(col / (32 * l.k32_per_group), l.n_groups - 1);
        out[static_cast<size_t>(row * l.cols + col)] =
            r.zeros[static_cast<size_t>(((grp * l.tiles + row / 16) * 8 + row % 8) * 2 + (row % 16) / 8)];
      }
    }
  return out;
}

std::vector<uint16_t> unpack_sparse24_f16(const RepackedSparse24F16& r) {
  const Sparse24QLayout& l = r.layout;
  std::vector<uint16_t> out(static_cast<size_t>(l.rows * l.cols), 0);
  auto word_at = [](const std::vector<uint8_t>& v, size_t byte) {
    return static_cast<uint32_t>(v[byte]) | static_cast<uint32_t>(v[byte + 1]) << 8 |
           static_cast<uint32_t>(v[byte + 2]) << 16 | static_cast<uint32_t>(v[byte + 3]) << 24;
  };
  for (int64_t t = 0; t < l.tiles; ++t)
    for (int64_t s = 0; s < l.supers; ++s)
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane >> 2, tig = lane & 3;
        for (int c = 0; c < 4; ++c)
          for (int i = 0; i < 8; ++i) {
            const Slot sl = slot(g, tig, i);
            // the kept index from the lane holding this row's metadata for chunk c, half sl.group / 4
            const int holder = g * 4 + ((c & 1) << 1) + (sl.group >> 2);
            const uint32_t m = word_at(r.meta, static_cast<size_t>((t * l.supers + s) * 32 + holder) * 8 + (c >> 1) * 4);
            const uint32_t bits = (sl.row_off >= 8 ? m >> 16 : m) & 0xffffu;
            const int idx = static_cast<int>(bits >> (4 * (sl.group & 3) + 2 * sl.kept) & 3u);
            const int64_t row = 16 * t + sl.row_off, col = (s * 4 + c) * 32 + sl.group * 4 + idx;
            const uint16_t v = r.values[static_cast<size_t>((((t * l.supers + s) * 4 + c) * 32 + lane) * 8 + i)];
            if (row < l.rows && col < l.cols) {
              out[static_cast<size_t>(row * l.cols + col)] = v;
            } else if ((v & 0x7fffu) != 0) {
              throw Error("unpack_sparse24_f16: a non-zero value packed in the padding");
            }
          }
      }
  return out;
}

GpuSparse24F16Weight GpuSparse24F16Weight::upload(const RepackedSparse24F16& r) {
  GpuSparse24F16Weight g;
  g.layout_ = r.layout;
  g.values_ = DeviceBuffer<uint16_t>(r.values);
  g.meta_ = DeviceBuffer<uint8_t>(r.meta);
  g.sm_count_ = current_device_attribute(cudaDevAttrMultiProcessorCount);
  g.compute_major_ = current_device_attribute(cudaDevAttrComputeCapabilityMajor);
  return g;
}

GpuSparse24F16Weight GpuSparse24F16Weight::clone() const {
  GpuSparse24F16Weight g;
  g.layout_ = layout_;
  g.values_ = values_.clone();
  g.meta_ = meta_.clone();
  g.sm_count_ = sm_count_;
  g.compute_major_ = compute_major_;
  return g;
}

GpuSparse24QWeight GpuSparse24QWeight::upload(const QuantizedWeight& w, const std::string& name) {
  return upload(repack_sparse24_w4(w, name));
}

GpuSparse24QWeight GpuSparse24QWeight::upload(const RepackedSparse24Q& r) {
  GpuSparse24QWeight g;
  g.layout_ = r.layout;
  g.codes_ = DeviceBuffer<uint8_t>(r.codes);
  g.meta_ = DeviceBuffer<uint8_t>(r.meta);
  g.scales_ = DeviceBuffer<uint16_t>(r.scales);
  if (!r.zeros.empty()) g.zeros_ = DeviceBuffer<uint8_t>(r.zeros);
  g.sm_count_ = current_device_attribute(cudaDevAttrMultiProcessorCount);
  g.compute_major_ = current_device_attribute(cudaDevAttrComputeCapabilityMajor);
  return g;
}

GpuSparse24QWeight GpuSparse24QWeight::clone() const {
  GpuSparse24QWeight g;
  g.layout_ = layout_;
  g.codes_ = codes_.clone();
  g.meta_ = meta_.clone();
  g.scales_ = scales_.clone();
  g.zeros_ = zeros_.clone();
  g.sm_count_ = sm_count_;
  g.compute_major_ = compute_major_;
  return g;
}

}  // namespace llmc::kernels::cuda
