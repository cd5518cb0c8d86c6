// 2:4 sparse f16 GEMM (cuSPARSELt, every operand layout, default and searched configurations)
// against the CPU twin linear_f32 on the same 2:4 weight, the 2:4 pattern check and its errors,
// and graph replay after sparse24_prepare.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cpu/dense.hpp"
#include "kernels/cuda/sparse_gemm.hpp"
#include "tests/gpu/gpu_test_util.hpp"

using namespace llmc;
using namespace llmc::kernels::cuda;
using llmc::test::HalfData;
using llmc::test::random_half;

namespace {

// Random normal weights with a random 2:4 pattern along k: per group of 4, two random positions
// kept (one group in eight keeps only one, as magnitude pruning leaves when a value rounds to 0).
HalfData random_24(int64_t n, int64_t k, uint32_t seed) {
  HalfData h = random_half(n * k, seed, 0.05f);
  std::mt19937 rng(seed + 1);
  std::uniform_int_distribution<int> pos(0, 3), one_in_8(0, 7);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < k / 4; ++g) {
      const int a = pos(rng);
      int b = pos(rng);
      while (b == a) b = pos(rng);
      const bool single = one_in_8(rng) == 0;
      for (int i = 0; i < 4; ++i)
        if (i != a && (i != b || single)) {
          h.bits[r * k + 4 * g + i] = 0;
          h.vals[r * k + 4 * g + i] = 0.0f;
        }
    }
  return h;
}

}  // namespace

TEST_CASE("check_2to4 accepts 2:4 weights and names the first row and group that is not") {
  const HalfData w = random_24(32, 64, 1);
  CHECK_NOTHROW(check_2to4_f16(w.bits.data(), 32, 64, "blk.0.mlp.up"));
  CHECK_NOTHROW(check_2to4(w.vals.data(), 32, 64, "blk.0.mlp.up"));
  std::vector<float> bad = w.vals;
  for (int i = 0; i < 4; ++i) bad[5 * 64 + 7 * 4 + i] = 0.25f + i;  // row 5, group 7: four non-zeros
  CHECK_THROWS_WITH_AS(check_2to4(bad.data(), 32, 64, "blk.0.mlp.up"),
                       doctest::Contains("blk.0.mlp.up: not 2:4 sparse along the input dimension: row 5, group 7 "
                                         "(columns 28..31) has 4 non-zeros"),
                       Error);
  std::vector<uint16_t> bad16 = w.bits;
  for (int i = 0; i < 3; ++i) bad16[31 * 64 + 15 * 4 + i] = f32_to_f16(-0.5f);  // last group, three non-zeros
  bad16[31 * 64 + 15 * 4 + 3] = 0x8000;                                          // −0 is a zero
  CHECK_THROWS_WITH_AS(check_2to4_f16(bad16.data(), 32, 64, "w"), doctest::Contains("row 31, group 15"), Error);
  CHECK_THROWS_WITH_AS(check_2to4(w.vals.data(), 32, 62, "w"), doctest::Contains("divisible by 4"), Error);
}

TEST_CASE("linear_sparse24 (cuSPARSELt) matches the CPU twin linear_f32 on the same 2:4 weight, in every layout") {
  LLMC_REQUIRE_GPU();
  if (!sparse24_available()) {
    CHECK_THROWS_WITH_AS(SparseContext(16, 16, 16), doctest::Contains("built without cuSPARSELt"), Error);
    MESSAGE("skipped, built without cuSPARSELt");
    return;
  }
  MESSAGE("cuSPARSELt version " << sparse24_library_version());
  REQUIRE(sparse24_layout_supported(SparseLayout::kSparseA));  // PyTorch's layout: the baseline
  struct Shape {
    int64_t n, k;
    std::vector<int64_t> ms;
  };
  // n, k multiples of 16 (cuSPARSELt's requirement) but not of its tile sizes; m from 1 up,
  // mostly not multiples of 16 (the padded path).
  const std::vector<Shape> shapes = {{144, 272, {1, 3, 16, 77}}, {528, 336, {200, 64}}, {4096, 1024, {5, 300}}};
  for (const SparseLayout layout :
       {SparseLayout::kSparseA, SparseLayout::kSparseAT, SparseLayout::kSparseB, SparseLayout::kSparseBT}) {
    if (!sparse24_layout_supported(layout)) {  // reported, and the bench has no row for it
      MESSAGE("cuSPARSELt makes no plan for layout " << sparse_layout_name(layout));
      continue;
    }
    SparseContext ctx(300, 4096, 1024, false, layout);
    uint32_t seed = 600;
    for (const Shape& s : shapes) {
      const HalfData w = random_24(s.n, s.k, ++seed);
      // the f32 tensor path: the same values, rounded to f16 at upload (exact here)
      const Sparse24Weight sw = Sparse24Weight::upload(ctx, Tensor::from_f32({s.n, s.k}, w.vals), "w");
      CHECK(sw.layout() == layout);
      CHECK(sw.compressed_bytes() < static_cast<size_t>(s.n * s.k * 2 + (64 << 10)));  // values + metadata + slack
      for (const int64_t m : s.ms) {
        const HalfData x = random_half(m * s.k, ++seed);
        std::vector<float> ref(m * s.n);
        kernels::cpu::linear_f32(x.vals.data(), w.vals.data(), nullptr, ref.data(), m, s.n, s.k);
        DeviceBuffer<uint16_t> dx(x.bits), dy(std::vector<uint16_t>(m * s.n, 0x7E00));
        linear_sparse24(ctx, sw, dx.data(), dy.data(), m, nullptr);
        LLMC_CUDA_CHECK(cudaDeviceSynchronize());
        // Exact f16 products summed in f32 on both sides (CUSPARSE_COMPUTE_32F): the dense GEMM's
        // argument and tolerance.
        std::ostringstream what;
        what << sparse_layout_name(layout) << " n=" << s.n << " k=" << s.k << " m=" << m;
        test::check_close(dy.download(), ref, test::abs_products(x.vals, w.vals, m, s.n, s.k), 1e-4, what.str());
      }
    }
  }
  SparseContext ctx(300, 4096, 1024);
  const HalfData dense = random_half(64 * 64, 7);
  CHECK_THROWS_WITH_AS(Sparse24Weight::upload_f16(ctx, dense.bits.data(), 64, 64, "blk.3.attn.q"),
                       doctest::Contains("blk.3.attn.q: not 2:4 sparse"), Error);
  const HalfData odd = random_24(40, 64, 8);
  CHECK_THROWS_WITH_AS(Sparse24Weight::upload_f16(ctx, odd.bits.data(), 40, 64, "w"),
                       doctest::Contains("divisible by 16"), Error);
  // a weight compressed for another layout is refused, not multiplied in the wrong order
  const HalfData w = random_24(64, 64, 9);
  SparseContext other(16, 64, 64, false, SparseLayout::kSparseAT);
  const Sparse24Weight sw = Sparse24Weight::upload_f16(other, w.bits.data(), 64, 64, "w");
  DeviceBuffer<uint16_t> dx(16 * 64), dy(16 * 64);
  CHECK_THROWS_WITH_AS(linear_sparse24(ctx, sw, dx.data(), dy.data(), 16, nullptr),
                       doctest::Contains("compressed for layout sparse_a_t, the context uses sparse_a"), Error);
}

TEST_CASE("f16_relative_max_diff: the search's output check, against a host computation") {
  LLMC_REQUIRE_GPU();
  const int64_t n = 100003;  // not a multiple of the block size
  const HalfData ref = random_half(n, 31);
  HalfData a = random_half(n, 32, 1e-3f);
  double max_ref = 0, max_diff = 0;
  for (int64_t i = 0; i < n; ++i) {
    a.bits[i] = f32_to_f16(ref.vals[i] + a.vals[i]);
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(ref.vals[i])));
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(f16_to_f32(a.bits[i])) - ref.vals[i]));
  }
  DeviceBuffer<uint16_t> da(a.bits), dr(ref.bits);
  CHECK(f16_relative_max_diff(da.data(), dr.data(), n, nullptr) == doctest::Approx(max_diff / max_ref).epsilon(1e-6));
  CHECK(f16_relative_max_diff(dr.data(), dr.data(), n, nullptr) == 0.0);
  a.bits[n - 1] = 0x7E00;  // a NaN anywhere is a mismatch
  da.upload(a.bits);
  CHECK(std::isinf(f16_relative_max_diff(da.data(), dr.data(), n, nullptr)));
}

TEST_CASE("linear_sparse24 replays from a CUDA graph after sparse24_prepare") {
  LLMC_REQUIRE_GPU();
  if (!sparse24_available()) {
    MESSAGE("skipped, built without cuSPARSELt");
    return;
  }
  const int64_t n = 256, k = 512;
  SparseContext ctx(40, n, k);
  const HalfData w = random_24(n, k, 11);
  const Sparse24Weight sw = Sparse24Weight::upload_f16(ctx, w.bits.data(), n, k, "w");
  cudaStream_t s;
  LLMC_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  for (const int64_t m : {int64_t{32}, int64_t{13}}) {  // exact and padded
    const HalfData x = random_half(m * k, 12 + static_cast<uint32_t>(m));
    DeviceBuffer<uint16_t> dx(x.bits), direct(m * n), graphed(std::vector<uint16_t>(m * n, 0x7E00));
    sparse24_prepare(ctx, sw, m, s);
    linear_sparse24(ctx, sw, dx.data(), direct.data(), m, s);
    cudaGraph_t g;
    cudaGraphExec_t ge;
    LLMC_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    linear_sparse24(ctx, sw, dx.data(), graphed.data(), m, s);
    LLMC_CUDA_CHECK(cudaStreamEndCapture(s, &g));
    LLMC_CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
    LLMC_CUDA_CHECK(cudaGraphLaunch(ge, s));
    LLMC_CUDA_CHECK(cudaStreamSynchronize(s));
    INFO("m=" << m);
    CHECK(graphed.download() == direct.download());
    LLMC_CUDA_CHECK(cudaGraphExecDestroy(ge));
    LLMC_CUDA_CHECK(cudaGraphDestroy(g));
  }
  LLMC_CUDA_CHECK(cudaStreamDestroy(s));
}

// Last in the file: the search runs every cuSPARSELt configuration, and should one fault (a
// fault is sticky for the process) nothing else is lost.
TEST_CASE("linear_sparse24 with searched configurations matches the CPU twin") {
  LLMC_REQUIRE_GPU();
  if (!sparse24_available()) {
    MESSAGE("skipped, built without cuSPARSELt");
    return;
  }
  if (sparse24_library_version() < 1000) {  // 0.8.0: the search failed, one configuration faulted
    CHECK_THROWS_WITH_AS(SparseContext(64, 64, 64, true), doctest::Contains("needs cuSPARSELt >= 0.10.0"), Error);
    return;
  }
  const int64_t n = 512, k = 768;
  for (const SparseLayout layout : {SparseLayout::kSparseA, SparseLayout::kSparseB}) {
    if (layout != SparseLayout::kSparseA && !sparse24_layout_supported(layout)) continue;  // reported above
    SparseContext ctx(64, n, k, /*search=*/true, layout);
    const HalfData w = random_24(n, k, 21);
    const Sparse24Weight sw = Sparse24Weight::upload_f16(ctx, w.bits.data(), n, k, "w");
    for (const int64_t m : {int64_t{1}, int64_t{48}, int64_t{64}}) {  // buckets 16, 64 (searched at 64)
      const HalfData x = random_half(m * k, 22 + static_cast<uint32_t>(m));
      std::vector<float> ref(m * n);
      kernels::cpu::linear_f32(x.vals.data(), w.vals.data(), nullptr, ref.data(), m, n, k);
      DeviceBuffer<uint16_t> dx(x.bits), dy(std::vector<uint16_t>(m * n, 0x7E00));
      linear_sparse24(ctx, sw, dx.data(), dy.data(), m, nullptr);
      LLMC_CUDA_CHECK(cudaDeviceSynchronize());
      test::check_close(dy.download(), ref, test::abs_products(x.vals, w.vals, m, n, k), 1e-4,
                        std::string("searched plan, ") + sparse_layout_name(layout) + ", m=" + std::to_string(m));
    }
    const std::string report = sparse24_search_report(ctx);
    CHECK(report.find("m=16 [") != std::string::npos);  // one search per bucket, 16 and 64
    CHECK(report.find("m=64 [") != std::string::npos);
    CHECK(report.find("kept") != std::string::npos);
    MESSAGE(report);
  }
}
