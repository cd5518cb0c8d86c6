// gemv_fused (quant_gemv_fused.hpp) against its CPU twins: the prologue's op (RMSNorm, SwiGLU) on
// the host, rounded to f16 as the unfused path stores it, then linear_quantized, then bias and
// residual in float; every layout the GPU path takes, 1..16 tokens, every block shape.
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cpu/quant_gemm.hpp"
#include "kernels/cuda/quant_gemv_fused.hpp"
#include "tests/gpu/gemv_prologue_ref.hpp"
#include "tests/gpu/gpu_test_util.hpp"

using namespace llmc;
using namespace llmc::kernels::cuda;
using llmc::test::check_close_f32;
using llmc::test::random_floats;
using llmc::test::random_half;
using llmc::test::random_quantized;

namespace {

struct GemvShape {
  int bits;
  bool sym;
  int64_t n, k, gs;
  bool act_order = false;  // g_idx from a random column order: the kernel gathers x while staging
};

// A random quantized weight of this shape, uploaded, and its dequantized values (for Σ|x·w|).
struct TestWeight {
  QuantizedWeight w;
  GpuQuantWeight gw;
  std::vector<float> wf;
};
TestWeight test_weight(const GemvShape& s, uint32_t seed) {
  QuantizedWeight w = random_quantized(s.bits, s.sym, s.n, s.k, s.gs, seed);
  if (s.act_order) test::set_act_order(w, seed + 7);
  GpuQuantWeight gw = GpuQuantWeight::upload(w, "w");
  const Tensor wd = dequantize(w);
  std::vector<float> wf(wd.data<float>(), wd.data<float>() + s.n * s.k);
  return TestWeight{std::move(w), std::move(gw), std::move(wf)};
}

}  // namespace

TEST_CASE("gemv_fused without prologue matches linear_quantized for every block shape") {
  LLMC_REQUIRE_GPU();
  const std::vector<GemvShape> shapes = {
      {4, true, 1000, 576, 64},  {4, false, 1000, 576, 64}, {4, true, 333, 96, 32},  {4, false, 37, 100, 0},
      {4, true, 2560, 2048, 128}, {4, true, 2048, 5632, 128}, {8, true, 1000, 576, 0}, {8, false, 200, 160, 32},
      {4, true, 1000, 576, 64, true}, {4, false, 37, 100, 32, true}, {8, true, 200, 160, 32, true},
  };
  uint32_t seed = 500;
  for (const GemvShape& s : shapes) {
    const TestWeight tw = test_weight(s, ++seed);
    const QuantizedWeight& w = tw.w;
    const GpuQuantWeight& gw = tw.gw;
    const std::vector<float>& wf = tw.wf;
    for (int64_t m : {1, 3, 8, 9, 16}) {
      if (!gemv_fused_fits(gw.layout(), m)) continue;
      const auto x = random_half(m * s.k, ++seed);
      std::vector<float> ref(m * s.n);
      kernels::cpu::linear_quantized(x.vals.data(), w, nullptr, ref.data(), m);
      const auto abs_sum = test::abs_products(x.vals, wf, m, s.n, s.k);
      DeviceBuffer<uint16_t> dx(x.bits), dy(m * s.n);
      std::vector<uint16_t> first;
      const GemvFusedConfig own = gemv_fused_config(gw.layout(), m, gw.sm_count());
      for (GemvFusedConfig cfg : {GemvFusedConfig{}, GemvFusedConfig{8, 1}, GemvFusedConfig{8, 2}, GemvFusedConfig{8, 8},
                                  GemvFusedConfig{16, 1}, GemvFusedConfig{16, 4}, GemvFusedConfig{16, 16}}) {
        std::ostringstream what;
        what << "W" << s.bits << (s.sym ? " sym" : " asym") << " N=" << s.n << " K=" << s.k << " g=" << s.gs
             << (s.act_order ? " act-order" : "") << " m=" << m << " warps=" << cfg.warps << " tiles/block=" << cfg.tiles_per_block;
        dy.upload(std::vector<uint16_t>(m * s.n, 0x7E00));  // NaN: unwritten outputs fail
        gemv_fused(gw, GemvPrologue{GemvPrologue::Kind::None, Act{dx.data(), s.k, ActType::F16}},
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

TEST_CASE("gemv_fused without prologue reads a strided f16 view only inside K") {
  LLMC_REQUIRE_GPU();
  // K = 100 in rows 104 apart: aligned for 16-byte copies, the last vector half inside K, and NaN
  // in the 4 columns past K, which must not reach the output.
  const GemvShape s{4, false, 37, 100, 0};
  const TestWeight tw = test_weight(s, 650);
  const int64_t ld = 104;
  for (int64_t m : {1, 16}) {
    const auto x = random_half(m * s.k, 651 + static_cast<uint32_t>(m));
    std::vector<uint16_t> view(m * ld, 0x7E00);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < s.k; ++c) view[r * ld + c] = x.bits[r * s.k + c];
    std::vector<float> ref(m * s.n);
    kernels::cpu::linear_quantized(x.vals.data(), tw.w, nullptr, ref.data(), m);
    const auto abs_sum = test::abs_products(x.vals, tw.wf, m, s.n, s.k);
    DeviceBuffer<uint16_t> dx(view), dy(m * s.n);
    for (GemvFusedConfig cfg : {GemvFusedConfig{}, GemvFusedConfig{16, 2}}) {
      dy.upload(std::vector<uint16_t>(m * s.n, 0x7E00));
      gemv_fused(tw.gw, GemvPrologue{GemvPrologue::Kind::None, Act{dx.data(), ld, ActType::F16}},
                 GemvEpilogue{Act{dy.data(), s.n, ActType::F16}, nullptr, Act{}}, m, nullptr, cfg);
      LLMC_CUDA_CHECK(cudaDeviceSynchronize());
      test::check_close(dy.download(), ref, abs_sum, 1e-4,
                        "strided view, m=" + std::to_string(m) + " warps=" + std::to_string(cfg.warps));
    }
  }
}

TEST_CASE("gemv_fused with the RMSNorm prologue, bias and f32 residual matches norm → linear → add on the CPU") {
  LLMC_REQUIRE_GPU();
  // 4608 inputs: one token's row takes the general path on 8 warps (one warp per row segment),
  // the one-round path on 16. Rows 4 floats apart past K are read 16 bytes at a time (300 inputs:
  // the last vector half inside K), rows 3 past K one float at a time.
  const std::vector<GemvShape> shapes = {{4, true, 2560, 2048, 128},     {4, false, 1000, 576, 64},
                                         {8, true, 300, 200, 0},          {4, true, 300, 4608, 128},
                                         {8, false, 100, 300, 0},         {4, true, 2560, 2048, 128, true},
                                         {4, false, 1000, 576, 64, true}, {8, true, 100, 300, 32, true}};
  uint32_t seed = 700;
  for (const GemvShape& s : shapes) {
    const TestWeight tw = test_weight(s, ++seed);
    const QuantizedWeight& w = tw.w;
    const GpuQuantWeight& gw = tw.gw;
    const std::vector<float>& wf = tw.wf;
    const auto gamma = random_floats(s.k, ++seed, 0.5f, 1.5f), bias = random_floats(s.n, ++seed, -0.5f, 0.5f);
    for (int64_t m : {1, 5, 16}) {
      for (int64_t pad : {3, 4}) {
        if (!gemv_fused_fits(gw.layout(), m)) continue;
        const int64_t ld = s.k + pad;  // a view inside a wider buffer
        const test::RmsCase c = test::rms_case(w, wf, gamma, bias, m, ld, seed);
        DeviceBuffer<float> dh(c.h), dg(gamma), db(bias), dr(c.res), dy(std::vector<float>(m * s.n, NAN));
        GemvPrologue pro{GemvPrologue::Kind::RmsNorm, Act{dh.data(), ld, ActType::F32}};
        pro.norm_weight = dg.data();
        pro.eps = 1e-5f;
        GemvEpilogue epi{Act{dy.data(), s.n, ActType::F32}, db.data(), Act{dr.data(), s.n, ActType::F32}};
        for (GemvFusedConfig cfg : {GemvFusedConfig{}, GemvFusedConfig{8, 1}, GemvFusedConfig{16, 2}}) {
          dy.upload(std::vector<float>(m * s.n, NAN));
          gemv_fused(gw, pro, epi, m, nullptr, cfg);
          LLMC_CUDA_CHECK(cudaDeviceSynchronize());
          std::ostringstream what;
          what << "RMSNorm prologue W" << s.bits << (s.act_order ? " act-order" : "") << " N=" << s.n << " K=" << s.k << " ld=" << ld << " m=" << m
               << " warps=" << cfg.warps << " tiles/block=" << cfg.tiles_per_block;
          // A staged x may differ from the host's by one f16 ulp where rsqrtf and 1/sqrt round apart.
          check_close_f32(dy.download(), c.ref, c.abs_sum, 2e-4, what.str());
        }
      }
    }
  }
}

TEST_CASE("gemv_fused with the SwiGLU prologue adds into its residual in place (y == residual)") {
  LLMC_REQUIRE_GPU();
  const std::vector<GemvShape> shapes = {{4, true, 2048, 5632, 128},       {4, false, 576, 1536, 64},
                                         {8, false, 100, 300, 0},          {4, true, 2048, 5632, 128, true},
                                         {4, false, 576, 1536, 64, true}};
  uint32_t seed = 900;
  for (const GemvShape& s : shapes) {
    const TestWeight tw = test_weight(s, ++seed);
    const QuantizedWeight& w = tw.w;
    const GpuQuantWeight& gw = tw.gw;
    const std::vector<float>& wf = tw.wf;
    for (int64_t m : {1, 4, 8}) {
      if (!gemv_fused_fits(gw.layout(), m)) continue;
      const int64_t ld = 2 * s.k;  // gate | up stacked by the linear before
      const auto gu = random_half(m * ld, ++seed, 2.0f);
      const auto res = random_half(m * s.n, ++seed);
      const std::vector<float> x = test::swiglu_staged(gu.vals, m, s.k);
      std::vector<float> ref(m * s.n);
      kernels::cpu::linear_quantized(x.data(), w, nullptr, ref.data(), m);
      for (int64_t i = 0; i < m * s.n; ++i) ref[i] += res.vals[i];
      auto abs_sum = test::abs_products(x, wf, m, s.n, s.k);
      // The residual add in f32 before the output's f16 rounding: ≤ 2⁻²⁴·|res| (6e-8·|res|; this allows 2e-7).
      for (int64_t i = 0; i < m * s.n; ++i) abs_sum[i] += std::fabs(res.vals[i]) * 1e-3;
      DeviceBuffer<uint16_t> din(gu.bits), dy(res.bits);
      GemvPrologue pro{GemvPrologue::Kind::SwiGLU, Act{din.data(), ld, ActType::F16}, s.k};
      for (GemvFusedConfig cfg : {GemvFusedConfig{}, GemvFusedConfig{8, 2}, GemvFusedConfig{16, 1}}) {
        dy.upload(res.bits);
        gemv_fused(gw, pro, GemvEpilogue{Act{dy.data(), s.n, ActType::F16}, nullptr, Act{dy.data(), s.n, ActType::F16}},
                   m, nullptr, cfg);
        LLMC_CUDA_CHECK(cudaDeviceSynchronize());
        std::ostringstream what;
        what << "SwiGLU prologue W" << s.bits << (s.act_order ? " act-order" : "") << " N=" << s.n << " K=" << s.k << " m=" << m << " warps=" << cfg.warps
             << " tiles/block=" << cfg.tiles_per_block;
        // The kernel's fast exp and reciprocal stay within a few f32 ulps of silu: at most one f16
        // ulp of a staged x, as the RMSNorm case allows.
        test::check_close(dy.download(), ref, abs_sum, 2e-4, what.str());
      }
    }
  }
}

TEST_CASE("gemv_fused refuses what it cannot stage") {
  LLMC_REQUIRE_GPU();
  const GpuQuantWeight gw = GpuQuantWeight::upload(random_quantized(4, true, 64, 11008, 128, 3), "w");
  CHECK(gemv_fused_fits(gw.layout(), 1));
  CHECK_FALSE(gemv_fused_fits(gw.layout(), 16));  // 16 × 11008 f16 = 344 KiB
  CHECK_FALSE(gemv_fused_fits(gw.layout(), 17));
  DeviceBuffer<uint16_t> x(16 * 11008), y(16 * 64);
  CHECK_THROWS_WITH_AS(gemv_fused(gw, GemvPrologue{GemvPrologue::Kind::None, Act{x.data(), 11008, ActType::F16}},
                                  GemvEpilogue{Act{y.data(), 64, ActType::F16}, nullptr, Act{}}, 16, nullptr),
                       doctest::Contains("do not fit"), Error);
}
