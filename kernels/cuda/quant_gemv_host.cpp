// Host side of the quantized GEMV: repacking QuantizedWeight into the fragment layout described
// in quant_gemv.hpp, uploading it, and choosing the split-K plan of a launch.
#include <algorithm>

#include "kernels/cuda/quant_gemv.hpp"

namespace llmc::kernels::cuda {

namespace {

constexpr int kRowsPerBlock = 128;         // the shorter row block (8 warps × 16 rows): one split-K counter each
constexpr size_t kSmemBudget = 48 * 1024;    // default dynamic shared memory, no opt-in needed

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

GroupIndex group_index(int64_t k32_per_group, int64_t k32_blocks, const std::string& where) {
  GroupIndex gi;
  if (k32_per_group == 0) {
    gi.shift = 30;  // k32 < 2³⁰: every block in group 0
    return gi;
  }
  check(k32_per_group > 0 && k32_blocks >= 0, where + "group_index: negative sizes");
  for (int s = 0; s < 30; ++s)
    if (k32_per_group == (int64_t{1} << s)) {
      gi.shift = s;
      return gi;
    }
  if (k32_blocks >= (int64_t{1} << 16) || k32_per_group >= (int64_t{1} << 16))
    throw Error(where + std::to_string(k32_blocks * 32) + " inputs in groups of " + std::to_string(k32_per_group * 32) +
                    " exceed the GPU kernels' group indexing (fewer than 2^21 inputs where the group size is not "
                    "a power of two)");
  gi.shift = -1;
  gi.magic = static_cast<uint32_t>(((uint64_t{1} << 32) + static_cast<uint64_t>(k32_per_group) - 1) /
                                   static_cast<uint64_t>(k32_per_group));
  return gi;
}

RepackedWeight repack_for_gpu(const QuantizedWeight& w, const std::string& name) {
  w.validate(name);
  const std::string where = "quantized weight '" + name + "' (GPU upload): ";
  // The kernels find a 32-column block's group as min(k32 / (gl / 32), ng − 1) (quant_gemv.cu
  // group_of, prefill.cu dequant_kernel). With gl a multiple of 32 that is column / gl for every
  // real column, so a shorter last group (cols not a multiple of gl, n_groups = ceil(cols / gl))
  // needs nothing more; padding columns past K meet zero activations or are never stored.
  const int64_t gl = w.group_len(), ng = w.n_groups();
  check(ng == 1 || gl % 32 == 0,
        where + "group size " + std::to_string(gl) + " must be a multiple of 32 (or span the whole row)");
  check(w.rows < (int64_t{1} << 31) && w.cols < (int64_t{1} << 31), where + "shape too large for 32-bit indexing");

  RepackedWeight r;
  r.perm = act_order_columns(w, where);
  GemvLayout& l = r.layout;
  l.bits = w.bits;
  l.symmetric = w.symmetric;
  l.rows = w.rows;
  l.cols = w.cols;
  l.tiles = ceil_div(w.rows, 16);
  l.chunk_k = w.bits == 4 ? 64 : 32;
  l.chunks = ceil_div(w.cols, l.chunk_k);
  l.n_groups = ng;
  l.k32_per_group = ng == 1 ? 0 : gl / 32;
  l.groups = group_index(l.k32_per_group, l.chunks * l.chunk_k / 32, where);

  // Padding (rows ≥ N or columns ≥ K) gets the code of value 0; the kernel also zero-fills the
  // activations past K, and rows ≥ N are never written.
  const uint32_t pad = w.symmetric ? (w.bits == 4 ? 8u : 128u) : 0u;
  const uint32_t sym_offset = w.symmetric ? (w.bits == 4 ? 8u : 128u) : 0u;
  auto code = [&](int64_t row, int64_t col) -> uint32_t {  // col: the stored column
    if (row >= w.rows || col >= w.cols) return pad;
    const int64_t in = r.perm.empty() ? col : r.perm[static_cast<size_t>(col)];
    return static_cast<uint32_t>(w.q(row, in) + static_cast<int>(sym_offset));
  };

  r.packed.assign(static_cast<size_t>(l.tiles * l.chunks * 512), 0);
  for (int64_t t = 0; t < l.tiles; ++t)
    for (int64_t c = 0; c < l.chunks; ++c)
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane >> 2, tig = lane & 3;
        const int64_t r0 = 16 * t + g, r1 = r0 + 8;
        uint8_t* dst = r.packed.data() + ((t * l.chunks + c) * 32 + lane) * 16;
        for (int j = 0; j < 4; ++j) {  // one 32-bit word per j
          uint32_t word = 0;
          if (w.bits == 4) {
            // word j = mma step j: k32 block j/2, half j%2; fragment a0..a7 (PTX ISA, mma.m16n8k16
            // f16 A layout: a0,a1 row g; a2,a3 row g+8; a4,a5 row g, k+8; a6,a7 row g+8, k+8),
            // with logical k 2t+{0,1} → column kb+{0,1} and 2t+8+{0,1} → kb+{2,3}.
            const int64_t kb = c * 64 + (j >> 1) * 32 + tig * 8 + (j & 1) * 4;
            const uint32_t a[8] = {code(r0, kb),     code(r0, kb + 1), code(r1, kb),     code(r1, kb + 1),
                                   code(r0, kb + 2), code(r0, kb + 3), code(r1, kb + 2), code(r1, kb + 3)};
            // Nibble order a0 a2 a4 a6 a1 a3 a5 a7: masks 0x000f000f / 0x00f000f0 then pick (a0,a1)
            // and (a2,a3) as f16 pairs, and the same after >> 8 gives (a4,a5), (a6,a7).
            static constexpr int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
            for (int i = 0; i < 8; ++i) word |= a[order[i]] << (4 * i);
          } else {
            // words 2h, 2h+1 = mma step h: bytes (a0,a1,a2,a3) and (a4,a5,a6,a7).
            const int h = j >> 1;
            const int64_t kb = c * 32 + tig * 8 + h * 4 + (j & 1) * 2;
            const uint32_t a[4] = {code(r0, kb), code(r0, kb + 1), code(r1, kb), code(r1, kb + 1)};
            for (int i = 0; i < 4; ++i) word |= a[i] << (8 * i);
          }
          for (int b = 0; b < 4; ++b) dst[j * 4 + b] = static_cast<uint8_t>(word >> (8 * b));
        }
      }

  pack_group_params(w, l.tiles, r.scales, r.zeros);
  return r;
}

void pack_group_params(const QuantizedWeight& w, int64_t tiles, std::vector<uint16_t>& scales,
                       std::vector<uint8_t>& zeros) {
  const int64_t ng = w.n_groups();
  scales.assign(static_cast<size_t>(ng * tiles * 16), 0);
  zeros.clear();
  if (!w.symmetric) zeros.assign(scales.size(), 0);
  for (int64_t grp = 0; grp < ng; ++grp)
    for (int64_t t = 0; t < tiles; ++t)
      for (int g = 0; g < 8; ++g)
        for (int e = 0; e < 2; ++e) {
          const int64_t row = 16 * t + g + 8 * e;
          if (row >= w.rows) continue;
          const size_t i = static_cast<size_t>(((grp * tiles + t) * 8 + g) * 2 + e);
          scales[i] = w.scales[row * ng + grp];
          if (!w.symmetric) zeros[i] = static_cast<uint8_t>(w.zero(row, grp));
        }
}

GemvPlan plan_gemv(const GemvLayout& l, int64_t m, int sm_count, int max_splits, int forced_splits) {
  check(m >= 1 && m <= 16, "gemv_quantized: m must be in [1, 16], got " + std::to_string(m));
  check(max_splits >= 1, "gemv_quantized: max_splits must be ≥ 1");
  const int64_t mp = m <= 8 ? 8 : 16;  // activation rows staged (one or two n8 mma tiles)
  // More than 8 tokens and at least 8192 rows: blocks of 16 warps, one per SM. Every block stages
  // its K slice of all 16 rows of x; twice the rows per block halve that traffic and each
  // thread's share of it. Measured at 16 tokens (H100, docs/perf/cuda.md "W4 GEMV at 16 tokens"):
  // 11008×4096 15.02 → 14.21 µs, 11264×2048 9.35 → 9.25; with fewer rows too few blocks remain
  // (4096×4096 10.36 → 10.43, 2048×5632 11.61 → 12.71).
  const int warps = m > 8 && l.padded_rows() >= 8192 ? 16 : 8, blocks_per_sm = 16 / warps;
  const int64_t row_blocks = ceil_div(l.padded_rows(), int64_t{16} * warps);
  const int64_t max_cps = std::max<int64_t>(1, (static_cast<int64_t>(kSmemBudget) / (2 * mp) - 32) / l.chunk_k);
  int64_t cps;
  if (forced_splits > 0) {
    cps = ceil_div(l.chunks, std::min(forced_splits, max_splits));
  } else {
    // Sixteen resident warps per SM keep ~64 KB of loads in flight per SM; split K until the
    // grid fills that, but no finer than one chunk per split.
    const int64_t target = blocks_per_sm * static_cast<int64_t>(sm_count);
    const int64_t splits = std::clamp<int64_t>((target + row_blocks / 2) / row_blocks, 1, l.chunks);
    cps = std::max(std::min(ceil_div(l.chunks, splits), max_cps), ceil_div(l.chunks, max_splits));
  }
  GemvPlan p;
  p.warps = warps;
  p.chunks_per_split = static_cast<int>(cps);
  p.splits = static_cast<int>(ceil_div(l.chunks, cps));
  const int64_t kslice = cps * l.chunk_k;
  // Row stride ≡ 32 halves (mod 64): the two rows a quarter-warp reads land in disjoint banks.
  p.xs_stride = static_cast<int>(kslice + (kslice % 64 == 0 ? 32 : 0));
  p.smem_bytes = static_cast<size_t>(mp * p.xs_stride * 2);
  return p;
}

GpuQuantWeight GpuQuantWeight::upload(const QuantizedWeight& w, const std::string& name) {
  return upload(repack_for_gpu(w, name));
}

GpuQuantWeight GpuQuantWeight::upload(const RepackedWeight& r) {
  GpuQuantWeight g;
  g.layout_ = r.layout;
  g.packed_ = DeviceBuffer<uint8_t>(r.packed);
  g.scales_ = DeviceBuffer<uint16_t>(r.scales);
  if (!r.zeros.empty()) g.zeros_ = DeviceBuffer<uint8_t>(r.zeros);
  if (!r.perm.empty()) {
    std::vector<int32_t> inv(r.perm.size());
    for (size_t k = 0; k < r.perm.size(); ++k) inv[static_cast<size_t>(r.perm[k])] = static_cast<int32_t>(k);
    g.perm_ = DeviceBuffer<int32_t>(r.perm);
    g.perm_inv_ = DeviceBuffer<int32_t>(inv);
  }
  g.sm_count_ = current_device_attribute(cudaDevAttrMultiProcessorCount);
  g.compute_major_ = current_device_attribute(cudaDevAttrComputeCapabilityMajor);
  return g;
}

GpuQuantWeight GpuQuantWeight::clone() const {
  GpuQuantWeight g;
  g.layout_ = layout_;
  g.packed_ = packed_.clone();
  g.scales_ = scales_.clone();
  g.zeros_ = zeros_.clone();
  g.perm_ = perm_.clone();
  g.perm_inv_ = perm_inv_.clone();
  g.sm_count_ = sm_count_;
  g.compute_major_ = compute_major_;
  return g;
}

GemvWorkspace::GemvWorkspace(int64_t max_rows, int max_splits, GemvOptions options)
    : max_rows_(ceil_div(max_rows, kRowsPerBlock) * kRowsPerBlock),
      max_splits_(max_splits),
      options_(options),
      partials_(static_cast<size_t>(max_splits) * 16 * static_cast<size_t>(max_rows_)),
      counters_(static_cast<size_t>(max_rows_ / kRowsPerBlock)) {
  check(max_rows > 0 && max_splits >= 1, "GemvWorkspace: bad size rows=" + std::to_string(max_rows) +
                                             " splits=" + std::to_string(max_splits));
  LLMC_CUDA_CHECK(cudaMemset(counters_.data(), 0, counters_.bytes()));
}

}  // namespace llmc::kernels::cuda
