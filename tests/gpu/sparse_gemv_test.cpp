// gemv_sparse24_w4 (sparse_gemv.hpp): its packing checked on the host (the layout decoded back to
// the codes it came from, every metadata nibble a valid index pair, the errors), and the kernel
// against the CPU twin linear_quantized on the same 2:4-pruned INT4 weights, 1..16 tokens.
#include <doctest/doctest.h>

#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cpu/quant_gemm.hpp"
#include "kernels/cuda/sparse_gemv.hpp"
#include "tests/gpu/gpu_test_util.hpp"

using namespace llmc;
using namespace llmc::kernels::cuda;
using llmc::test::random_half;
using llmc::test::random_quantized;

namespace {

struct Sp24Shape {
  bool sym;
  int64_t n, k, gs;
};

// A random INT4 weight with two of every four inputs of each row set to value 0 (which two, at
// random); the random codes zero a few more on their own, so some groups keep fewer than two.
QuantizedWeight pruned_weight(const Sp24Shape& s, uint32_t seed) {
  QuantizedWeight w = random_quantized(4, s.sym, s.n, s.k, s.gs, seed);
  std::mt19937 rng(seed * 7 + 1);
  for (int64_t r = 0; r < s.n; ++r)
    for (int64_t c0 = 0; c0 < s.k; c0 += 4) {
      int order[4] = {0, 1, 2, 3};
      std::shuffle(order, order + 4, rng);
      for (int i = 0; i < 2; ++i) {
        const int64_t c = c0 + order[i];
        if (c < s.k) w.set_q(r, c, s.sym ? 0 : w.zero(r, w.group_of(c)));
      }
    }
  return w;
}

std::vector<uint8_t> codes_of(const QuantizedWeight& w) {
  std::vector<uint8_t> out(static_cast<size_t>(w.rows * w.cols));
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; ++c) out[r * w.cols + c] = static_cast<uint8_t>(w.q(r, c) + (w.symmetric ? 8 : 0));
  return out;
}

const std::vector<Sp24Shape> kShapes = {
    {true, 1000, 576, 64}, {false, 1000, 576, 64}, {true, 333, 96, 32}, {false, 37, 100, 0},
    {true, 2560, 2048, 128}, {false, 300, 200, 32}, {true, 2048, 5632, 128},
};

}  // namespace

TEST_CASE("2:4 INT4 packing decodes back to the weight's codes, with valid metadata everywhere") {
  uint32_t seed = 40;
  for (const Sp24Shape& s : kShapes) {
    CAPTURE(s.n);
    CAPTURE(s.k);
    CAPTURE(s.sym);
    const QuantizedWeight w = pruned_weight(s, ++seed);
    const RepackedSparse24Q r = repack_sparse24_w4(w, "w");
    CHECK(r.layout.tiles == (s.n + 15) / 16);
    CHECK(r.layout.supers == (s.k + 127) / 128);
    CHECK(r.codes.size() == static_cast<size_t>(r.layout.tiles * r.layout.supers * 512));
    CHECK(r.meta.size() == static_cast<size_t>(r.layout.tiles * r.layout.supers * 256));
    CHECK(unpack_sparse24_w4(r) == codes_of(w));
    // every 4-bit metadata field: two different indices, the first below the second (PTX: 0b0000,
    // 0b0101, 0b1010, 0b1111 are undefined; the ordered-metadata MMA wants ascending pairs)
    int64_t bad = 0;
    for (uint8_t b : r.meta)
      for (int half = 0; half < 2; ++half) {
        const int f = b >> (4 * half) & 0xf;
        if (!((f & 3) < (f >> 2))) ++bad;
      }
    CHECK(bad == 0);
  }
}

TEST_CASE("2:4 INT4 packing refuses what the kernel cannot take, naming the place") {
  QuantizedWeight w = pruned_weight({true, 20, 64, 32}, 3);
  w.set_q(17, 40, 3);
  w.set_q(17, 41, -2);
  w.set_q(17, 42, 5);  // three non-zero weights in columns 40..43 of row 17
  w.set_q(17, 43, 0);
  std::string msg;
  try {
    repack_sparse24_w4(w, "layers.0.q");
  } catch (const Error& e) {
    msg = e.what();
  }
  INFO(msg);
  CHECK(msg.find("'layers.0.q'") != std::string::npos);
  CHECK(msg.find("row 17, columns 40..43 hold 3 non-zero weights") != std::string::npos);
  const QuantizedWeight w8 = random_quantized(8, true, 16, 64, 32, 4);
  CHECK_THROWS_WITH_AS(repack_sparse24_w4(w8, "w8"), doctest::Contains("takes INT4"), Error);
}

TEST_CASE("gemv_sparse24_w4 matches linear_quantized on 2:4-pruned INT4 weights") {
  LLMC_REQUIRE_GPU();
  uint32_t seed = 600;
  for (const Sp24Shape& s : kShapes) {
    const QuantizedWeight w = pruned_weight(s, ++seed);
    const GpuSparse24QWeight gw = GpuSparse24QWeight::upload(w, "w");
    const Tensor wd = dequantize(w);
    const std::vector<float> wf(wd.data<float>(), wd.data<float>() + s.n * s.k);
    // 3 bits a (padded) weight of codes and metadata, plus 2 bytes of scale (and 1 of zero point)
    // per 16-row tile row and group
    const Sparse24QLayout& l = gw.layout();
    CHECK(gw.weight_bytes() ==
          static_cast<size_t>(l.tiles * 16 * l.supers * 128 * 3 / 8 + l.n_groups * l.tiles * 16 * (s.sym ? 2 : 3)));
    for (int64_t m : {1, 3, 8, 9, 16}) {
      if (!gemv_sparse24_w4_fits(gw.layout(), m)) continue;
      const auto x = random_half(m * s.k, ++seed);
      std::vector<float> ref(m * s.n);
      kernels::cpu::linear_quantized(x.vals.data(), w, nullptr, ref.data(), m);
      const auto abs_sum = test::abs_products(x.vals, wf, m, s.n, s.k);
      DeviceBuffer<uint16_t> dx(x.bits), dy(std::vector<uint16_t>(m * s.n, 0x7E00));  // NaN: unwritten outputs fail
      gemv_sparse24_w4(gw, dx.data(), dy.data(), m, nullptr);
      LLMC_CUDA_CHECK(cudaDeviceSynchronize());
      const auto got = dy.download();
      std::ostringstream what;
      what << "2:4 W4" << (s.sym ? " sym" : " asym") << " N=" << s.n << " K=" << s.k << " g=" << s.gs << " m=" << m;
      test::check_close(got, ref, abs_sum, 1e-4, what.str());
      gemv_sparse24_w4(gw, dx.data(), dy.data(), m, nullptr);
      LLMC_CUDA_CHECK(cudaDeviceSynchronize());
      CHECK(dy.download() == got);  // deterministic
    }
  }
}
