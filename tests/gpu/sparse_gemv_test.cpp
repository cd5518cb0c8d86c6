// gemv_sparse24_w4 (sparse_gemv.hpp): its packing checked on the host (the layout decoded back to
// the codes it came from, every metadata nibble a valid index pair, the errors, the 2:4 test the
// runtime plans by), and the kernels against their CPU twins on the same 2:4-pruned INT4 weights:
// the GEMV (1..16 tokens, every block shape, the RMSNorm / SwiGLU prologues with bias and
// residual) against linear_quantized, the dequantization against dequantize() bit for bit; and
// the 2:4 f16 GEMV (gemv_sparse24_f16) against linear_f32 on the same f16 weights.
#include <doctest/doctest.h>

#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cpu/dense.hpp"
#include "kernels/cpu/quant_gemm.hpp"
#include "kernels/cuda/sparse_gemv.hpp"
#include "tests/gpu/gemv_prologue_ref.hpp"
#include "tests/gpu/gpu_test_util.hpp"

using namespace llmc;
using namespace llmc::kernels::cuda;
using llmc::test::check_close_f32;
using llmc::test::random_floats;
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

// A random f16 weight [n, k] with two of every four inputs of each row zero (which two at random),
// as f16 bits and as floats.
struct F16Weight {
  std::vector<uint16_t> bits;
  std::vector<float> vals;
};
F16Weight pruned_f16(int64_t n, int64_t k, uint32_t seed) {
  F16Weight w{test::random_half(n * k, seed, 0.05f).bits, {}};
  std::mt19937 rng(seed * 3 + 2);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c0 = 0; c0 < k; c0 += 4) {
      int order[4] = {0, 1, 2, 3};
      std::shuffle(order, order + 4, rng);
      for (int i = 0; i < 2; ++i)
        if (c0 + order[i] < k) w.bits[r * k + c0 + order[i]] = (i == 0 && r % 7 == 0) ? 0x8000 : 0;  // −0 counts as zero
    }
  w.vals.resize(w.bits.size());
  for (size_t i = 0; i < w.bits.size(); ++i) w.vals[i] = f16_to_f32(w.bits[i]);
  return w;
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
    // the planner's byte count (before packing) is what the packed form holds
    CHECK(sparse24_w4_bytes(s.n, s.k, w.n_groups(), s.sym) ==
          static_cast<int64_t>(r.codes.size() + r.meta.size() + r.scales.size() * 2 + r.zeros.size()));
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

TEST_CASE("is_sparse24_w4: 2:4-pruned INT4 codes yes; a dense weight, one group of three, INT8, act-order no") {
  for (const Sp24Shape& s : {Sp24Shape{true, 40, 96, 32}, Sp24Shape{false, 40, 100, 0}, Sp24Shape{false, 17, 256, 64}}) {
    CAPTURE(s.sym);
    CAPTURE(s.k);
    QuantizedWeight w = pruned_weight(s, 11);
    CHECK(is_sparse24_w4(w));
    // a third non-zero code in the last row's last group of four
    const int64_t r = s.n - 1, c0 = s.k - 4;
    auto zero_at = [&](int64_t c) { return s.sym ? 0 : w.zero(r, w.group_of(c)); };
    int nz = 0;
    for (int64_t c = c0; c < s.k; ++c) nz += w.q(r, c) != zero_at(c);
    REQUIRE(nz <= 2);
    for (int64_t c = c0; c < s.k && nz < 3; ++c)
      if (w.q(r, c) == zero_at(c)) {
        w.set_q(r, c, zero_at(c) == 3 ? 4 : 3);
        ++nz;
      }
    CHECK_FALSE(is_sparse24_w4(w));
    CHECK_FALSE(is_sparse24_w4(random_quantized(4, s.sym, s.n, s.k, s.gs, 12)));
  }
  CHECK_FALSE(is_sparse24_w4(random_quantized(8, true, 16, 64, 32, 4)));
  QuantizedWeight ao = pruned_weight({true, 16, 64, 32}, 5);
  ao.g_idx.assign(64, 0);
  for (int c = 0; c < 64; ++c) ao.g_idx[c] = c % 2;
  CHECK_FALSE(is_sparse24_w4(ao));
}

TEST_CASE("gemv_sparse24_w4 matches linear_quantized on 2:4-pruned INT4 weights, every block shape") {
  LLMC_REQUIRE_GPU();
  uint32_t seed = 600;
  for (const Sp24Shape& s : kShapes) {
    const QuantizedWeight w = pruned_weight(s, ++seed);
    REQUIRE(is_sparse24_w4(w));
    const GpuSparse24QWeight gw = GpuSparse24QWeight::upload(w, "w");
    const Tensor wd = dequantize(w);
    const std::vector<float> wf(wd.data<float>(), wd.data<float>() + s.n * s.k);
    // 3 bits a (padded) weight of codes and metadata, plus 2 bytes of scale (and 1 of zero point)
    // per 16-row tile row and group
    const Sparse24QLayout& l = gw.layout();
    CHECK(gw.weight_bytes() ==
          static_cast<size_t>(l.tiles * 16 * l.supers * 128 * 3 / 8 + l.n_groups * l.tiles * 16 * (s.sym ? 2 : 3)));
    for (int64_t m : {1, 3, 8, 9, 16}) {
      if (!gemv_sparse24_fits(gw.layout(), m)) continue;
      const auto x = random_half(m * s.k, ++seed);
      std::vector<float> ref(m * s.n);
      kernels::cpu::linear_quantized(x.vals.data(), w, nullptr, ref.data(), m);
      const auto abs_sum = test::abs_products(x.vals, wf, m, s.n, s.k);
      DeviceBuffer<uint16_t> dx(x.bits), dy(m * s.n);
      const GemvFusedConfig own = gemv_sparse24_config(gw.layout(), m, gw.sm_count());
      std::vector<uint16_t> first;
      for (GemvFusedConfig cfg : {GemvFusedConfig{}, GemvFusedConfig{8, 1}, GemvFusedConfig{8, 4}, GemvFusedConfig{16, 1},
                                  GemvFusedConfig{16, 16}}) {
        std::ostringstream what;
        what << "2:4 W4" << (s.sym ? " sym" : " asym") << " N=" << s.n << " K=" << s.k << " g=" << s.gs << " m=" << m
             << " warps=" << cfg.warps << " tiles/block=" << cfg.tiles_per_block;
        dy.upload(std::vector<uint16_t>(m * s.n, 0x7E00));  // NaN: unwritten outputs fail
        if (cfg.warps == 0)
          gemv_sparse24_w4(gw, dx.data(), dy.data(), m, nullptr);  // the plain overload
        else
          gemv_sparse24_w4(gw, GemvPrologue{GemvPrologue::Kind::None, Act{dx.data(), s.k, ActType::F16}},
                           GemvEpilogue{Act{dy.data(), s.n, ActType::F16}, nullptr, Act{}}, m, nullptr, cfg);
        LLMC_CUDA_CHECK(cudaDeviceSynchronize());
        const auto got = dy.download();
        test::check_close(got, ref, abs_sum, 1e-4, what.str());
        if (cfg.warps == 0) first = got;
        if (cfg.warps == own.warps && cfg.tiles_per_block == own.tiles_per_block) CHECK(got == first);  // deterministic
      }
    }
  }
}

TEST_CASE("gemv_sparse24_w4 with the RMSNorm prologue, bias and f32 residual matches norm → linear → add on the CPU") {
  LLMC_REQUIRE_GPU();
  uint32_t seed = 650;
  for (const Sp24Shape& s : {Sp24Shape{true, 2560, 2048, 128}, Sp24Shape{false, 1000, 576, 64}}) {
    const QuantizedWeight w = pruned_weight(s, ++seed);
    const GpuSparse24QWeight gw = GpuSparse24QWeight::upload(w, "w");
    const Tensor wd = dequantize(w);
    const std::vector<float> wf(wd.data<float>(), wd.data<float>() + s.n * s.k);
    const auto gamma = random_floats(s.k, ++seed, 0.5f, 1.5f), bias = random_floats(s.n, ++seed, -0.5f, 0.5f);
    for (int64_t m : {1, 5, 16}) {
      const int64_t ld = s.k + 3;  // a view inside a wider buffer
      const test::RmsCase c = test::rms_case(w, wf, gamma, bias, m, ld, seed);
      DeviceBuffer<float> dh(c.h), dg(gamma), db(bias), dr(c.res), dy(std::vector<float>(m * s.n, NAN));
      GemvPrologue pro{GemvPrologue::Kind::RmsNorm, Act{dh.data(), ld, ActType::F32}};
      pro.norm_weight = dg.data();
      pro.eps = 1e-5f;
      const GemvEpilogue epi{Act{dy.data(), s.n, ActType::F32}, db.data(), Act{dr.data(), s.n, ActType::F32}};
      for (GemvFusedConfig cfg : {GemvFusedConfig{}, GemvFusedConfig{8, 2}, GemvFusedConfig{16, 1}}) {
        dy.upload(std::vector<float>(m * s.n, NAN));
        gemv_sparse24_w4(gw, pro, epi, m, nullptr, cfg);
        LLMC_CUDA_CHECK(cudaDeviceSynchronize());
        std::ostringstream what;
        what << "RMSNorm prologue 2:4 W4 N=" << s.n << " K=" << s.k << " m=" << m << " warps=" << cfg.warps
             << " tiles/block=" << cfg.tiles_per_block;
        // a staged x may differ from the host's by one f16 ulp where rsqrtf and 1/sqrt round apart
        check_close_f32(dy.download(), c.ref, c.abs_sum, 2e-4, what.str());
      }
    }
  }
}

TEST_CASE("gemv_sparse24_w4 with the SwiGLU prologue adds into its residual in place (y == residual)") {
  LLMC_REQUIRE_GPU();
  uint32_t seed = 680;
  for (const Sp24Shape& s : {Sp24Shape{true, 2048, 5632, 128}, Sp24Shape{false, 576, 1536, 64}}) {
    const QuantizedWeight w = pruned_weight(s, ++seed);
    const GpuSparse24QWeight gw = GpuSparse24QWeight::upload(w, "w");
    const Tensor wd = dequantize(w);
    const std::vector<float> wf(wd.data<float>(), wd.data<float>() + s.n * s.k);
    for (int64_t m : {1, 4, 8}) {
      if (!gemv_sparse24_fits(gw.layout(), m)) continue;
      const int64_t ld = 2 * s.k;  // gate | up stacked by the linear before
      const auto gu = random_half(m * ld, ++seed, 2.0f);
      const auto res = random_half(m * s.n, ++seed);
      const std::vector<float> x = test::swiglu_staged(gu.vals, m, s.k);
      std::vector<float> ref(m * s.n);
      kernels::cpu::linear_quantized(x.data(), w, nullptr, ref.data(), m);
      for (int64_t i = 0; i < m * s.n; ++i) ref[i] += res.vals[i];
      auto abs_sum = test::abs_products(x, wf, m, s.n, s.k);
      for (int64_t i = 0; i < m * s.n; ++i) abs_sum[i] += std::fabs(res.vals[i]) * 1e-3;  // the f32 add before rounding
      DeviceBuffer<uint16_t> din(gu.bits), dy(res.bits);
      const GemvPrologue pro{GemvPrologue::Kind::SwiGLU, Act{din.data(), ld, ActType::F16}, s.k};
      for (GemvFusedConfig cfg : {GemvFusedConfig{}, GemvFusedConfig{8, 1}, GemvFusedConfig{16, 2}}) {
        dy.upload(res.bits);
        gemv_sparse24_w4(gw, pro, GemvEpilogue{Act{dy.data(), s.n, ActType::F16}, nullptr, Act{dy.data(), s.n, ActType::F16}},
                         m, nullptr, cfg);
        LLMC_CUDA_CHECK(cudaDeviceSynchronize());
        std::ostringstream what;
        what << "SwiGLU prologue 2:4 W4 N=" << s.n << " K=" << s.k << " m=" << m << " warps=" << cfg.warps
             << " tiles/block=" << cfg.tiles_per_block;
        test::check_close(dy.download(), ref, abs_sum, 2e-4, what.str());
      }
    }
  }
}

TEST_CASE("dequantize_sparse24_w4_to_f16 equals dequantize() rounded to f16; the prefill path matches linear_quantized") {
  LLMC_REQUIRE_GPU();
  const CublasHandle cublas;
  uint32_t seed = 700;
  for (const Sp24Shape& s : kShapes) {
    const QuantizedWeight w = pruned_weight(s, ++seed);
    const GpuSparse24QWeight gw = GpuSparse24QWeight::upload(w, "w");
    const Tensor wd = dequantize(w);
    std::vector<uint16_t> want(static_cast<size_t>(s.n * s.k));
    for (int64_t i = 0; i < s.n * s.k; ++i) want[i] = f32_to_f16(wd.data<float>()[i]);
    DeviceBuffer<uint16_t> scratch(std::vector<uint16_t>(s.n * s.k, 0x7E00));  // NaN: unwritten entries fail
    dequantize_sparse24_w4_to_f16(gw, scratch.data(), nullptr);
    LLMC_CUDA_CHECK(cudaDeviceSynchronize());
    const auto got = scratch.download();
    int64_t diff = 0;
    for (size_t i = 0; i < got.size(); ++i) diff += got[i] != want[i];
    INFO("2:4 W4 N=" << s.n << " K=" << s.k << " g=" << s.gs << (s.sym ? " sym" : " asym"));
    CHECK(diff == 0);
    const std::vector<float> wf(wd.data<float>(), wd.data<float>() + s.n * s.k);
    const int64_t m = 40;
    const auto x = random_half(m * s.k, ++seed);
    std::vector<float> ref(m * s.n);
    kernels::cpu::linear_quantized(x.vals.data(), w, nullptr, ref.data(), m);
    DeviceBuffer<uint16_t> dx(x.bits), dy(std::vector<uint16_t>(m * s.n, 0x7E00));
    linear_sparse24_w4_prefill(gw, cublas, dx.data(), dy.data(), m, scratch.data(), nullptr);
    LLMC_CUDA_CHECK(cudaDeviceSynchronize());
    // the weight rounded to f16 once (≤ 2⁻¹¹ relative) and cuBLAS's f32 sums
    test::check_close(dy.download(), ref, test::abs_products(x.vals, wf, m, s.n, s.k), 1e-3, "prefill");
  }
}

TEST_CASE("2:4 f16 packing decodes back to the weight, with valid metadata; a group of three is refused") {
  uint32_t seed = 90;
  for (auto [n, k] : {std::pair<int64_t, int64_t>{40, 96}, {37, 100}, {300, 200}, {2560, 2048}}) {
    CAPTURE(n);
    CAPTURE(k);
    const F16Weight w = pruned_f16(n, k, ++seed);
    const RepackedSparse24F16 r = repack_sparse24_f16(w.bits.data(), n, k, "w");
    CHECK(r.layout.tiles == (n + 15) / 16);
    CHECK(r.layout.supers == (k + 127) / 128);
    CHECK(r.values.size() == static_cast<size_t>(r.layout.tiles * r.layout.supers * 32 * 32));
    CHECK(r.meta.size() == static_cast<size_t>(r.layout.tiles * r.layout.supers * 256));
    CHECK(sparse24_f16_bytes(n, k) == static_cast<int64_t>(r.values.size() * 2 + r.meta.size()));
    const std::vector<uint16_t> got = unpack_sparse24_f16(r);
    REQUIRE(got.size() == w.bits.size());
    int64_t differ = 0;  // as values: a pruned −0 may come back as +0
    for (size_t i = 0; i < got.size(); ++i) differ += f16_to_f32(got[i]) != w.vals[i];
    CHECK(differ == 0);
    int64_t bad = 0;
    for (uint8_t b : r.meta)
      for (int half = 0; half < 2; ++half) {
        const int f = b >> (4 * half) & 0xf;
        if (!((f & 3) < (f >> 2))) ++bad;
      }
    CHECK(bad == 0);
  }
  F16Weight w = pruned_f16(20, 64, 3);
  for (int c = 40; c < 43; ++c) w.bits[17 * 64 + c] = f32_to_f16(0.5f);  // three non-zero in columns 40..43
  w.bits[17 * 64 + 43] = 0;
  CHECK_THROWS_WITH_AS(repack_sparse24_f16(w.bits.data(), 20, 64, "layers.0.q"),
                       doctest::Contains("'layers.0.q' (2:4 f16 GPU upload): row 17, columns 40..43 hold 3 non-zero"),
                       Error);
}

TEST_CASE("gemv_sparse24_f16 and the decompress + cuBLAS path match linear_f32 on the same 2:4 f16 weights") {
  LLMC_REQUIRE_GPU();
  const CublasHandle cublas;
  uint32_t seed = 900;
  for (auto [n, k] : {std::pair<int64_t, int64_t>{1000, 576}, {333, 96}, {37, 100}, {2560, 2048}, {2048, 5632}}) {
    const F16Weight w = pruned_f16(n, k, ++seed);
    const GpuSparse24F16Weight gw = GpuSparse24F16Weight::upload(w.bits.data(), n, k, "w");
    const Sparse24QLayout& l = gw.layout();
    CHECK(gw.weight_bytes() == static_cast<size_t>(l.tiles * 16 * l.supers * 128 * 9 / 8));  // 9/16 of dense f16
    for (int64_t m : {1, 3, 8, 9, 16}) {
      if (!gemv_sparse24_fits(l, m)) continue;
      const auto x = random_half(m * k, ++seed);
      std::vector<float> ref(m * n);
      kernels::cpu::linear_f32(x.vals.data(), w.vals.data(), nullptr, ref.data(), m, n, k);
      const auto abs_sum = test::abs_products(x.vals, w.vals, m, n, k);
      DeviceBuffer<uint16_t> dx(x.bits), dy(m * n);
      const GemvFusedConfig own = gemv_sparse24_config(l, m, gw.sm_count());
      std::vector<uint16_t> first;
      for (GemvFusedConfig cfg : {GemvFusedConfig{}, GemvFusedConfig{8, 1}, GemvFusedConfig{8, 4}, GemvFusedConfig{16, 1},
                                  GemvFusedConfig{16, 16}}) {
        std::ostringstream what;
        what << "2:4 f16 N=" << n << " K=" << k << " m=" << m << " warps=" << cfg.warps
             << " tiles/block=" << cfg.tiles_per_block;
        dy.upload(std::vector<uint16_t>(m * n, 0x7E00));  // NaN: unwritten outputs fail
        if (cfg.warps == 0)
          gemv_sparse24_f16(gw, dx.data(), dy.data(), m, nullptr);
        else
          gemv_sparse24_f16(gw, GemvPrologue{GemvPrologue::Kind::None, Act{dx.data(), k, ActType::F16}},
                            GemvEpilogue{Act{dy.data(), n, ActType::F16}, nullptr, Act{}}, m, nullptr, cfg);
        LLMC_CUDA_CHECK(cudaDeviceSynchronize());
        const auto got = dy.download();
        test::check_close(got, ref, abs_sum, 1e-4, what.str());
        if (cfg.warps == 0) first = got;
        if (cfg.warps == own.warps && cfg.tiles_per_block == own.tiles_per_block) CHECK(got == first);  // deterministic
      }
    }
    {  // the prefill path: decompress (the values bit for bit, ±0 alike) + cuBLAS
      DeviceBuffer<uint16_t> scratch(std::vector<uint16_t>(n * k, 0x7E00));  // NaN: unwritten entries fail
      decompress_sparse24_f16(gw, scratch.data(), nullptr);
      LLMC_CUDA_CHECK(cudaDeviceSynchronize());
      const auto dense = scratch.download();
      int64_t diff = 0;
      for (size_t i = 0; i < dense.size(); ++i) diff += (dense[i] & 0x7fffu ? dense[i] : 0) != (w.bits[i] & 0x7fffu ? w.bits[i] : 0);
      INFO("decompress N=" << n << " K=" << k);
      CHECK(diff == 0);
      const int64_t m = 40;
      const auto x = random_half(m * k, ++seed);
      std::vector<float> ref(m * n);
      kernels::cpu::linear_f32(x.vals.data(), w.vals.data(), nullptr, ref.data(), m, n, k);
      DeviceBuffer<uint16_t> dx(x.bits), dy(std::vector<uint16_t>(m * n, 0x7E00));
      linear_sparse24_f16_prefill(gw, cublas, dx.data(), dy.data(), m, scratch.data(), nullptr);
      LLMC_CUDA_CHECK(cudaDeviceSynchronize());
      test::check_close(dy.download(), ref, test::abs_products(x.vals, w.vals, m, n, k), 1e-4, "2:4 f16 prefill");
    }
    if (n % 16 != 0 || k < 200) continue;
    // the RMSNorm prologue with bias and an f32 residual, through the shared staging/epilogue
    const int64_t m = 5, ld = k + 3;
    const auto gamma = random_floats(k, ++seed, 0.5f, 1.5f), bias = random_floats(n, ++seed, -0.5f, 0.5f);
    const auto h = random_floats(m * ld, ++seed, -3.0f, 3.0f), res = random_floats(m * n, ++seed, -2.0f, 2.0f);
    const std::vector<float> xs = test::rmsnorm_staged(h, ld, gamma, m, k, 1e-5f);
    std::vector<float> ref(m * n);
    kernels::cpu::linear_f32(xs.data(), w.vals.data(), nullptr, ref.data(), m, n, k);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j) ref[r * n + j] += bias[j] + res[r * n + j];
    DeviceBuffer<float> dh(h), dg(gamma), db(bias), dr(res), dy(std::vector<float>(m * n, NAN));
    GemvPrologue pro{GemvPrologue::Kind::RmsNorm, Act{dh.data(), ld, ActType::F32}};
    pro.norm_weight = dg.data();
    pro.eps = 1e-5f;
    gemv_sparse24_f16(gw, pro, GemvEpilogue{Act{dy.data(), n, ActType::F32}, db.data(), Act{dr.data(), n, ActType::F32}}, m,
                      nullptr);
    LLMC_CUDA_CHECK(cudaDeviceSynchronize());
    check_close_f32(dy.download(), ref, test::abs_products(xs, w.vals, m, n, k), 2e-4,
                    "RMSNorm prologue 2:4 f16 N=" + std::to_string(n) + " K=" + std::to_string(k));
  }
}
