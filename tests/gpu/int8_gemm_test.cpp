// W8A8 on the GPU against its CPU twins: quantize_act_s8 bit for bit against
// quantize_per_token_s8 / quantize_static_s8 on x / smooth, and linear_w8a8 (both GEMM backends)
// against kernels::cpu::linear_w8a8, on random data and shapes that are not tile multiples.
#include <doctest/doctest.h>

#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cpu/quant_gemm.hpp"
#include "kernels/cuda/int8_gemm.hpp"
#include "tests/gpu/gpu_test_util.hpp"

using namespace llmc;
using namespace llmc::kernels::cuda;
using llmc::test::random_half;
using llmc::test::random_quantized;

namespace {

int64_t pad16(int64_t k) { return (k + 15) / 16 * 16; }

// SmoothQuant divisors as compress/smoothquant.cpp makes them: positive, spread over a decade.
std::vector<float> random_smooth(int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> s(k);
  for (auto& v : s) v = std::pow(10.0f, d(rng) * 0.5f);
  return s;
}

// What the CPU path quantizes: x / smooth in f32 (x itself when smooth is empty).
std::vector<float> smoothed(const std::vector<float>& x, const std::vector<float>& smooth, int64_t m, int64_t k) {
  std::vector<float> v(x);
  if (!smooth.empty())
    for (int64_t t = 0; t < m; ++t)
      for (int64_t j = 0; j < k; ++j) v[t * k + j] = x[t * k + j] / smooth[j];
  return v;
}

}  // namespace

TEST_CASE("Int8Weight::upload rejects weights W8A8 cannot take, naming them") {
  CHECK_THROWS_WITH_AS(Int8Weight::upload(random_quantized(4, true, 16, 64, 0, 1), "blk.0.q"),
                       doctest::Contains("blk.0.q"), Error);
  CHECK_THROWS_WITH_AS(Int8Weight::upload(random_quantized(8, false, 16, 64, 0, 2), "blk.0.k"),
                       doctest::Contains("asymmetric"), Error);
  CHECK_THROWS_WITH_AS(Int8Weight::upload(random_quantized(8, true, 16, 64, 32, 3), "blk.0.v"),
                       doctest::Contains("group_size=32"), Error);
}

TEST_CASE("quantize_act_s8 equals the CPU quantizers on x / smooth, bit for bit") {
  LLMC_REQUIRE_GPU();
  struct Case {
    int64_t m, k;
    bool smooth;
    float act_scale;  // 0: per token
  };
  uint32_t seed = 700;
  // k = 100 and 37 take the scalar path (k % 8 != 0), 4104 and 264 the 16-byte one; the static
  // scale 0.01 clamps most of the tail (|x| up to ~4 → codes up to ~400).
  for (const Case c : {Case{5, 100, false, 0}, Case{37, 4104, true, 0}, Case{3, 37, true, 0}, Case{64, 264, false, 0},
                       Case{7, 264, true, 0.02f}, Case{9, 100, false, 0.01f}}) {
    auto x = random_half(c.m * c.k, ++seed);
    if (c.act_scale == 0) {  // one all-zero token (scale 1 by convention) among random ones
      for (int64_t j = 0; j < c.k; ++j) x.bits[j] = 0, x.vals[j] = 0.0f;
    }
    const std::vector<float> sm = c.smooth ? random_smooth(c.k, ++seed) : std::vector<float>{};
    const std::vector<float> v = smoothed(x.vals, sm, c.m, c.k);
    std::vector<int8_t> qref(c.m * c.k);
    std::vector<float> sref(c.m, c.act_scale);
    if (c.act_scale == 0)
      kernels::cpu::quantize_per_token_s8(v.data(), qref.data(), sref.data(), c.m, c.k);
    else
      kernels::cpu::quantize_static_s8(v.data(), qref.data(), c.act_scale, c.m * c.k);

    const int64_t kp = pad16(c.k);
    DeviceBuffer<uint16_t> dx(x.bits);
    DeviceBuffer<float> dsm(sm);
    DeviceBuffer<int8_t> dq(std::vector<int8_t>(c.m * kp, 99));  // poison: padding must become 0
    DeviceBuffer<float> ds(std::vector<float>(c.m, -1.0f));
    quantize_act_s8(dx.data(), c.smooth ? dsm.data() : nullptr, dq.data(), ds.data(), c.m, c.k, kp, c.act_scale,
                    nullptr);
    LLMC_CUDA_CHECK(cudaDeviceSynchronize());
    const std::vector<int8_t> q = dq.download();
    const std::vector<float> s = ds.download();
    int64_t bad_q = 0, bad_pad = 0, bad_s = 0, clamped = 0;
    for (int64_t t = 0; t < c.m; ++t) {
      bad_s += s[t] != sref[t];
      for (int64_t j = 0; j < kp; ++j) {
        if (j < c.k) {
          bad_q += q[t * kp + j] != qref[t * c.k + j];
          clamped += qref[t * c.k + j] == 127 || qref[t * c.k + j] == -127;
        } else {
          bad_pad += q[t * kp + j] != 0;
        }
      }
    }
    INFO("m=" << c.m << " k=" << c.k << " smooth=" << c.smooth << " static=" << c.act_scale);
    CHECK(bad_q == 0);
    CHECK(bad_pad == 0);
    CHECK(bad_s == 0);
    if (c.act_scale == 0) CHECK(s[0] == 1.0f);
    CHECK(clamped > 0);  // the extremes are reached: per token at each row's max, static by clamping
  }
}

TEST_CASE("linear_w8a8 (cuBLASLt and CUTLASS) matches the CPU twin linear_w8a8") {
  LLMC_REQUIRE_GPU();
  struct Case {
    int64_t m, n, k;
    bool smooth, bias;
    float act_scale;
  };
  std::vector<Int8Backend> backends = {Int8Backend::kCublasLt, Int8Backend::kAuto};
  if (int8_cutlass_available())
    backends.push_back(Int8Backend::kCutlass);
  else
    MESSAGE("CUTLASS W8A8 path not built or no sm_90 device: testing cuBLASLt only");
  uint32_t seed = 800;
  // m covers the three CUTLASS tile configurations (≤ 64, ≤ 128, > 128); n = 201 and 99 are not
  // multiples of 8 (cuBLASLt only); k = 100 and 520 are padded to 16.
  const std::vector<Case> cases = {{1, 264, 520, false, true, 0},   {7, 201, 100, true, false, 0},
                                   {33, 136, 4104, true, true, 0},  {100, 264, 264, false, true, 0.02f},
                                   {130, 520, 200, true, true, 0},  {300, 4096, 1024, false, false, 0},
                                   {257, 99, 136, false, true, 0}};
  int64_t max_m = 0, max_n = 0, max_k = 0;
  for (const Case& c : cases) max_m = std::max(max_m, c.m), max_n = std::max(max_n, c.n), max_k = std::max(max_k, c.k);
  W8A8Context ctx(max_m, max_n, max_k);
  for (const Case& c : cases) {
    const QuantizedWeight w = random_quantized(8, true, c.n, c.k, 0, ++seed);
    const Int8Weight gw = Int8Weight::upload(w, "w");
    const auto x = random_half(c.m * c.k, ++seed);
    const auto bias = random_half(c.n, ++seed, 0.5f);
    const std::vector<float> sm = c.smooth ? random_smooth(c.k, ++seed) : std::vector<float>{};
    const std::vector<float> v = smoothed(x.vals, sm, c.m, c.k);
    std::vector<float> ref(c.m * c.n);
    kernels::cpu::linear_w8a8(v.data(), w, c.bias ? bias.vals.data() : nullptr, ref.data(), c.m,
                              c.act_scale > 0 ? &c.act_scale : nullptr);
    // Scale of the f32 rounding in the dequantization: Σ|s_x·q_x·s_w·q_w| over k.
    std::vector<int8_t> qx(c.m * c.k);
    std::vector<float> sx(c.m, c.act_scale);
    if (c.act_scale == 0)
      kernels::cpu::quantize_per_token_s8(v.data(), qx.data(), sx.data(), c.m, c.k);
    else
      kernels::cpu::quantize_static_s8(v.data(), qx.data(), c.act_scale, c.m * c.k);
    std::vector<float> xd(c.m * c.k), wd(c.n * c.k);
    for (int64_t t = 0; t < c.m; ++t)
      for (int64_t j = 0; j < c.k; ++j) xd[t * c.k + j] = sx[t] * qx[t * c.k + j];
    for (int64_t r = 0; r < c.n; ++r)
      for (int64_t j = 0; j < c.k; ++j) wd[r * c.k + j] = w.scale(r, 0) * w.q(r, j);
    const std::vector<double> abs_sum = test::abs_products(xd, wd, c.m, c.n, c.k);

    DeviceBuffer<uint16_t> dx(x.bits), db(bias.bits);
    DeviceBuffer<float> dsm(sm);
    for (const Int8Backend be : backends) {
      if (be == Int8Backend::kCutlass && c.n % 8 != 0) {
        DeviceBuffer<uint16_t> dy(c.m * c.n);
        CHECK_THROWS_WITH_AS(linear_w8a8(ctx, dx.data(), gw, nullptr, 0, nullptr, dy.data(), c.m, nullptr, 0, be),
                             doctest::Contains("n % 8 == 0"), Error);
        continue;
      }
      DeviceBuffer<uint16_t> dy(std::vector<uint16_t>(c.m * c.n, 0x7E00));  // NaN poison
      linear_w8a8(ctx, dx.data(), gw, c.smooth ? dsm.data() : nullptr, c.act_scale, c.bias ? db.data() : nullptr,
                  dy.data(), c.m, nullptr, 0, be);
      LLMC_CUDA_CHECK(cudaDeviceSynchronize());
      // Integer products are exact on both sides; what differs is the order of the f32 scale
      // multiplications and a possible FMA (a few ulps, 1e-6 of Σ|terms|), then f16 rounding.
      std::ostringstream what;
      what << "m=" << c.m << " n=" << c.n << " k=" << c.k << " backend=" << static_cast<int>(be)
           << (c.smooth ? " smooth" : "") << (c.act_scale > 0 ? " static" : " dynamic");
      test::check_close(dy.download(), ref, abs_sum, 1e-6, what.str());
    }
  }
}

TEST_CASE("linear_w8a8 replays from a CUDA graph with the same bits") {
  LLMC_REQUIRE_GPU();
  const int64_t m = 48, n = 256, k = 320;
  const QuantizedWeight w = random_quantized(8, true, n, k, 0, 901);
  const Int8Weight gw = Int8Weight::upload(w, "w");
  const auto x = random_half(m * k, 902);
  W8A8Context ctx(m, n, k);
  DeviceBuffer<uint16_t> dx(x.bits), direct(m * n), graphed(std::vector<uint16_t>(m * n, 0x7E00));
  cudaStream_t s;
  LLMC_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  linear_w8a8(ctx, dx.data(), gw, nullptr, 0, nullptr, direct.data(), m, s);  // first call: plans, heuristics
  cudaGraph_t g;
  cudaGraphExec_t ge;
  LLMC_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  linear_w8a8(ctx, dx.data(), gw, nullptr, 0, nullptr, graphed.data(), m, s);
  LLMC_CUDA_CHECK(cudaStreamEndCapture(s, &g));
  LLMC_CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
  LLMC_CUDA_CHECK(cudaGraphLaunch(ge, s));
  LLMC_CUDA_CHECK(cudaStreamSynchronize(s));
  CHECK(graphed.download() == direct.download());
  LLMC_CUDA_CHECK(cudaGraphExecDestroy(ge));
  LLMC_CUDA_CHECK(cudaGraphDestroy(g));
  LLMC_CUDA_CHECK(cudaStreamDestroy(s));
}
