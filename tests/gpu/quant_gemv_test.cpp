// gemv_quantized (and the repacking behind it) against its CPU twin linear_quantized on random
// weights of every layout the GPU path takes, 1..16 tokens, shapes that are not tile multiples.
#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <vector>

#include "kernels/cpu/quant_gemm.hpp"
#include "kernels/cuda/quant_gemv.hpp"
#include "tests/gpu/gpu_test_util.hpp"

using namespace llmc;
using namespace llmc::kernels::cuda;
using llmc::test::random_half;
using llmc::test::random_quantized;

TEST_CASE("repack_for_gpu and plan_gemv reject what the GPU kernels do not take") {
  // act-order groups of unequal sizes (GPTQ's act-order gives each group_size columns)
  QuantizedWeight act = random_quantized(4, true, 64, 128, 32, 1);
  act.g_idx.assign(128, 0);
  for (int c = 0; c < 128; ++c) act.g_idx[c] = c < 33 ? 0 : 1 + (c - 33) % 3;
  CHECK_THROWS_WITH_AS(repack_for_gpu(act, "blk.0.q"), doctest::Contains("g_idx gives group 0 33 columns"), Error);
  CHECK_THROWS_WITH_AS(repack_for_gpu(act, "blk.0.q"), doctest::Contains("blk.0.q"), Error);
  const QuantizedWeight g16 = random_quantized(4, true, 64, 128, 16, 2);
  CHECK_THROWS_WITH_AS(repack_for_gpu(g16, "blk.0.k"), doctest::Contains("multiple of 32"), Error);
  QuantizedWeight bad_scale = random_quantized(4, true, 64, 128, 32, 3);
  bad_scale.scales[5] = f32_to_f16(-1.0f);
  CHECK_THROWS_WITH_AS(repack_for_gpu(bad_scale, "blk.0.v"), doctest::Contains("blk.0.v"), Error);
  const RepackedWeight r = repack_for_gpu(random_quantized(4, false, 40, 96, 32, 4), "w");
  CHECK(r.layout.tiles == 3);
  CHECK(r.layout.chunks == 2);
  CHECK(r.packed.size() == 3 * 2 * 512);
  CHECK(r.scales.size() == 3 * 3 * 16);
  CHECK(r.zeros.size() == r.scales.size());
  CHECK_THROWS_AS(plan_gemv(r.layout, 17, 132, 16), Error);
  CHECK_THROWS_AS(plan_gemv(r.layout, 0, 132, 16), Error);
  // Llama-7B shapes: one wave of two 8-warp blocks per SM on an H100, K slices in shared memory.
  const RepackedWeight big = repack_for_gpu(random_quantized(4, true, 4096, 11008, 128, 6), "w");
  const GemvPlan p1 = plan_gemv(big.layout, 1, 132, 16);
  CHECK(p1.splits * 32 <= 2 * 132);
  CHECK(p1.splits * p1.chunks_per_split >= big.layout.chunks);
  CHECK(p1.smem_bytes <= 48 * 1024);
  CHECK(plan_gemv(big.layout, 16, 132, 16).smem_bytes <= 48 * 1024);
  CHECK(plan_gemv(big.layout, 1, 132, 3).splits <= 3);
  // 16-warp blocks (one per SM) only above 8 tokens of at least 8192 rows.
  CHECK(p1.warps == 8);
  CHECK(plan_gemv(big.layout, 16, 132, 16).warps == 8);
  const RepackedWeight tall = repack_for_gpu(random_quantized(4, true, 11008, 4096, 128, 7), "w");
  CHECK(plan_gemv(tall.layout, 8, 132, 16).warps == 8);
  const GemvPlan p16 = plan_gemv(tall.layout, 9, 132, 16);
  CHECK(p16.warps == 16);
  CHECK(p16.splits * 43 <= 132);
}

TEST_CASE("group_index gives each 32-column block its group as integer division does") {
  // The kernels take k32 >> shift, or umulhi(k32, magic) where the group size is not a power of
  // two; both are checked here against k32 / k32_per_group for every block below the limit.
  for (int64_t d : {1, 2, 4, 64, 1024}) {
    const GroupIndex gi = group_index(d, 1 << 20);
    REQUIRE(gi.shift >= 0);
    for (int64_t k = 0; k < (1 << 20); k += 7)
      if ((k >> gi.shift) != k / d) FAIL("group size " << d * 32 << ", block " << k);
  }
  CHECK(group_index(0, 1 << 20).shift == 30);  // per channel: every block in group 0
  std::vector<int64_t> sizes;
  for (int64_t d = 3; d < 2048; d += 2) sizes.push_back(d);  // odd sizes, then even non-powers of two
  for (int64_t d : {6, 10, 12, 24, 48, 96, 100, 1000, 4095, 32767, 40000, 65535}) sizes.push_back(d);
  for (const int64_t d : sizes) {
    const GroupIndex gi = group_index(d, (1 << 16) - 1);
    REQUIRE(gi.shift == -1);
    for (uint64_t k = 0; k < (1u << 16); ++k) {
      const uint64_t got = (k * gi.magic) >> 32;  // __umulhi
      if (got != k / static_cast<uint64_t>(d)) FAIL("group size " << d * 32 << ", block " << k << ": " << got);
    }
  }
  CHECK_THROWS_WITH_AS(group_index(3, 1 << 16), doctest::Contains("group indexing"), Error);
  CHECK_NOTHROW(group_index(4, int64_t{1} << 24));  // powers of two have no limit here
  // repacking stores the weight's index in its layout, where the kernels read it
  const GemvLayout g96 = repack_for_gpu(random_quantized(4, true, 20, 192, 96, 3), "w").layout;
  CHECK(g96.groups.shift == -1);
  CHECK(g96.groups.magic == group_index(3, 4).magic);
  CHECK(repack_for_gpu(random_quantized(4, true, 20, 256, 128, 3), "w").layout.groups.shift == 2);
}

TEST_CASE("repacked fragments hold each weight code exactly once") {
  // Decodes the INT8 layout with the fragment map spelled out independently (PTX ISA, f16 A
  // fragment of mma.m16n8k16) and checks it against q(r, c) + 128 everywhere, padding too.
  const QuantizedWeight w = random_quantized(8, true, 21, 70, 0, 5);
  const RepackedWeight r = repack_for_gpu(w, "w");
  const int64_t chunks = r.layout.chunks;
  std::vector<int> seen(21 * 70, 0);
  for (int64_t t = 0; t < r.layout.tiles; ++t)
    for (int64_t c = 0; c < chunks; ++c)
      for (int lane = 0; lane < 32; ++lane)
        for (int h = 0; h < 2; ++h)
          for (int i = 0; i < 8; ++i) {  // fragment element a_i of mma step h
            const int row = 16 * static_cast<int>(t) + lane / 4 + ((i / 2) % 2) * 8;
            const int logical_k = (lane % 4) * 2 + (i % 2) + (i / 4) * 8;  // k within the k16 step
            // logical k 2t+e ↦ column 8t + 4h + e, logical 2t+8+e ↦ 8t + 4h + 2 + e
            const int col = static_cast<int>(c) * 32 + (logical_k % 8) / 2 * 8 + 4 * h + (logical_k / 8) * 2 +
                            logical_k % 2;
            const uint8_t byte = r.packed[((t * chunks + c) * 32 + lane) * 16 + h * 8 + (i / 4) * 4 + i % 4];
            if (row < 21 && col < 70) {
              CHECK(static_cast<int>(byte) == w.q(row, col) + 128);
              ++seen[row * 70 + col];
            } else {
              CHECK(byte == 128);  // padding decodes to 0
            }
          }
  for (int s : seen) CHECK(s == 1);
}

TEST_CASE("an act-order weight is stored in group order: stored column k holds input column perm[k]") {
  // INT8 g32, 21×200 (a last group of 8): decoded with the fragment map of the test above.
  QuantizedWeight w = random_quantized(8, false, 21, 200, 32, 7);
  test::set_act_order(w, 8);
  const RepackedWeight r = repack_for_gpu(w, "w");
  REQUIRE(r.perm.size() == 200);
  std::vector<int> hits(200, 0);
  for (int64_t k = 0; k < 200; ++k) {
    const int32_t c = r.perm[k];
    REQUIRE((c >= 0 && c < 200));
    ++hits[c];
    CHECK(w.g_idx[c] == k / 32);  // the groups contiguous, as without act-order
    if (k > 0 && w.g_idx[r.perm[k - 1]] == w.g_idx[c]) CHECK(r.perm[k - 1] < c);  // ascending within a group
  }
  for (int h : hits) CHECK(h == 1);
  for (int64_t t = 0; t < r.layout.tiles; ++t)
    for (int64_t c = 0; c < r.layout.chunks; ++c)
      for (int lane = 0; lane < 32; ++lane)
        for (int h = 0; h < 2; ++h)
          for (int i = 0; i < 8; ++i) {
            const int row = 16 * static_cast<int>(t) + lane / 4 + ((i / 2) % 2) * 8;
            const int logical_k = (lane % 4) * 2 + (i % 2) + (i / 4) * 8;
            const int col = static_cast<int>(c) * 32 + (logical_k % 8) / 2 * 8 + 4 * h + (logical_k / 8) * 2 +
                            logical_k % 2;
            const uint8_t byte = r.packed[((t * r.layout.chunks + c) * 32 + lane) * 16 + h * 8 + (i / 4) * 4 + i % 4];
            if (row < 21 && col < 200) CHECK(static_cast<int>(byte) == w.q(row, r.perm[col]));
          }
  // the scales stay per group: stored group g is group g
  const RepackedWeight plain = repack_for_gpu(random_quantized(8, false, 21, 200, 32, 7), "w");
  CHECK(r.scales == plain.scales);
  CHECK(r.zeros == plain.zeros);
  // g_idx already in group order: nothing to gather
  QuantizedWeight sorted = random_quantized(4, true, 16, 128, 64, 9);
  sorted.g_idx.assign(128, 0);
  for (int c = 64; c < 128; ++c) sorted.g_idx[c] = 1;
  CHECK(repack_for_gpu(sorted, "w").perm.empty());
}

TEST_CASE("gemv_quantized matches the CPU twin linear_quantized") {
  LLMC_REQUIRE_GPU();
  struct Case {
    int bits;
    bool sym;
    int64_t n, k, gs;
    std::vector<int64_t> ms;
    std::vector<int> splits;  // 0: the planner's choice; 1: the direct epilogue; 3: split-K
    bool act_order = false;   // g_idx from a random column order (the input gathered while staged)
  };
  const std::vector<Case> cases = {
      {4, true, 1000, 576, 64, {1, 2, 5, 8, 9, 13, 16}, {0, 1, 3}},
      {4, false, 1000, 576, 64, {1, 7, 16}, {0, 1, 3}},
      {4, true, 333, 96, 32, {1, 16}, {0, 1}},     // K padded to the 64-column chunk
      {4, false, 37, 100, 0, {1, 3, 16}, {0, 1}},  // per channel, K not a multiple of 8
      {4, true, 4096, 4096, 128, {1, 16}, {0}},
      {4, true, 11008, 4096, 128, {1, 16}, {0}},
      {4, false, 4096, 11008, 128, {1, 16}, {0}},
      {8, true, 1000, 576, 0, {1, 9, 16}, {0, 1, 3}},
      {8, false, 1000, 576, 0, {1, 16}, {0, 1}},
      {8, false, 200, 160, 32, {1, 16}, {0, 1}},
      {8, true, 4096, 4096, 0, {1, 16}, {0}},
      {4, true, 8200, 576, 64, {9, 16}, {0, 1, 3}},  // 16-warp blocks, the last one with a single tile
      {4, false, 8200, 256, 128, {16}, {0, 1}},
      {4, true, 1000, 576, 64, {1, 5, 16}, {0, 1, 3}, true},
      {4, true, 8200, 576, 64, {16}, {0, 3}, true},
      {4, false, 37, 100, 32, {1, 3, 16}, {0, 1}, true},  // K not a multiple of 8, a last group of 4
      {4, true, 4096, 11008, 128, {1, 16}, {0}, true},
      {8, false, 200, 160, 32, {1, 16}, {0, 1}, true},
  };
  uint32_t seed = 100;
  for (const Case& cs : cases) {
    QuantizedWeight w = random_quantized(cs.bits, cs.sym, cs.n, cs.k, cs.gs, ++seed);
    if (cs.act_order) test::set_act_order(w, ++seed);
    const GpuQuantWeight gw = GpuQuantWeight::upload(w, "w");
    // Launch overlap (programmatic dependent launch) changes scheduling only, never the bits.
    GemvWorkspace ws(cs.n), ws_serial(cs.n, 16, GemvOptions{false});
    const Tensor wd = dequantize(w);
    const std::vector<float> wf(wd.data<float>(), wd.data<float>() + cs.n * cs.k);
    for (int64_t m : cs.ms) {
      const auto x = random_half(m * cs.k, ++seed);
      std::vector<float> ref(m * cs.n);
      kernels::cpu::linear_quantized(x.vals.data(), w, nullptr, ref.data(), m);
      const std::vector<double> abs_sum = test::abs_products(x.vals, wf, m, cs.n, cs.k);
      DeviceBuffer<uint16_t> dx(x.bits), dy(m * cs.n);
      const std::vector<uint16_t> poison(m * cs.n, 0x7E00);  // f16 NaN: unwritten outputs fail
      for (int splits : cs.splits) {
        std::ostringstream what_os;
        what_os << "W" << cs.bits << (cs.sym ? " sym" : " asym") << " N=" << cs.n << " K=" << cs.k << " g=" << cs.gs
                << (cs.act_order ? " act-order" : "") << " m=" << m << " splits=" << splits;
        const std::string what = what_os.str();
        dy.upload(poison);
        gemv_quantized(gw, dx.data(), dy.data(), m, ws, nullptr, splits);
        LLMC_CUDA_CHECK(cudaDeviceSynchronize());
        const std::vector<uint16_t> got = dy.download();
        // f32 accumulation of exact products (q − z)·x, one rounding per group scale: the
        // summation error is ~√K·2⁻²⁴·Σ|x·w| ≈ 6e-6·Σ|x·w| at K = 11008; 1e-4 leaves room for
        // the CPU twin's own order while a wrong element (|y| ≈ Σ|x·w|/√K ≥ 1e-2·Σ|x·w|) fails.
        test::check_close(got, ref, abs_sum, 1e-4, what);
        // Same inputs, same bits: the split-K reduction runs in a fixed order and its counters
        // reset themselves for the next launch.
        dy.upload(poison);
        gemv_quantized(gw, dx.data(), dy.data(), m, ws, nullptr, splits);
        LLMC_CUDA_CHECK(cudaDeviceSynchronize());
        INFO(what);
        CHECK(dy.download() == got);
        dy.upload(poison);
        gemv_quantized(gw, dx.data(), dy.data(), m, ws_serial, nullptr, splits);
        LLMC_CUDA_CHECK(cudaDeviceSynchronize());
        CHECK(dy.download() == got);
      }
    }
  }
}

TEST_CASE("a cloned GPU weight computes the same outputs; a workspace too small is refused") {
  LLMC_REQUIRE_GPU();
  const QuantizedWeight w = random_quantized(4, false, 700, 1024, 128, 7);
  const GpuQuantWeight a = GpuQuantWeight::upload(w, "w");
  const GpuQuantWeight b = a.clone();
  const auto x = random_half(4 * 1024, 8);
  DeviceBuffer<uint16_t> dx(x.bits), ya(4 * 700), yb(4 * 700);
  GemvWorkspace ws(700);
  gemv_quantized(a, dx.data(), ya.data(), 4, ws, nullptr);
  gemv_quantized(b, dx.data(), yb.data(), 4, ws, nullptr);
  LLMC_CUDA_CHECK(cudaDeviceSynchronize());
  const auto ga = ya.download();
  CHECK(ga == yb.download());
  bool any_nonzero = false;
  for (uint16_t v : ga) any_nonzero |= (v & 0x7FFF) != 0;
  CHECK(any_nonzero);
  GemvWorkspace small(512);
  CHECK_THROWS_WITH_AS(gemv_quantized(a, dx.data(), ya.data(), 4, small, nullptr), doctest::Contains("workspace"), Error);
}

TEST_CASE("chained GEMVs without synchronization see each other's outputs (launch overlap on and off)") {
  LLMC_REQUIRE_GPU();
  // y1 = W1·x, y2 = W2·y1 back to back on one stream: with programmatic dependent launch the
  // second kernel starts prefetching W2 early but must read y1 only once the first has finished.
  const int64_t m = 5, k = 1024, n1 = 2048, n2 = 768;
  const QuantizedWeight w1 = random_quantized(4, true, n1, k, 128, 11);
  QuantizedWeight w2 = random_quantized(4, false, n2, n1, 64, 12);
  const GpuQuantWeight g1 = GpuQuantWeight::upload(w1, "w1"), g2 = GpuQuantWeight::upload(w2, "w2");
  const auto x = random_half(m * k, 13);
  const Tensor w2d = dequantize(w2);
  const std::vector<float> w2f(w2d.data<float>(), w2d.data<float>() + n2 * n1);
  cudaStream_t stream;
  LLMC_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  for (bool overlap : {true, false}) {
    GemvWorkspace ws(n1, 16, GemvOptions{overlap});
    DeviceBuffer<uint16_t> dx(x.bits), y1(std::vector<uint16_t>(m * n1, 0x7E00)), y2(std::vector<uint16_t>(m * n2, 0x7E00));
    for (int rep = 0; rep < 3; ++rep) {
      gemv_quantized(g1, dx.data(), y1.data(), m, ws, stream);
      gemv_quantized(g2, y1.data(), y2.data(), m, ws, stream);
    }
    LLMC_CUDA_CHECK(cudaStreamSynchronize(stream));
    const std::vector<uint16_t> y1h = y1.download();
    std::vector<float> y1f(m * n1), ref(m * n2);
    for (int64_t i = 0; i < m * n1; ++i) y1f[i] = f16_to_f32(y1h[i]);
    kernels::cpu::linear_quantized(y1f.data(), w2, nullptr, ref.data(), m);
    test::check_close(y2.download(), ref, test::abs_products(y1f, w2f, m, n2, n1), 1e-4,
                      overlap ? "chain, overlapped launches" : "chain, serialized launches");
  }
  LLMC_CUDA_CHECK(cudaStreamDestroy(stream));
}
