// The element-wise and row-wise transformer kernels (transformer_ops.hpp, sampling.hpp) against
// their CPU twins (kernels/cpu/dense.hpp, kernels/cpu/transformer_ops.hpp) on random inputs of
// widths that are not multiples of the block sizes, through strided views where the session uses them.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/dense.hpp"
#include "kernels/cpu/transformer_ops.hpp"
#include "kernels/cuda/sampling.hpp"
#include "kernels/cuda/transformer_ops.hpp"
#include "tests/gpu/gpu_test_util.hpp"
#include "tests/gpu/ops_test_util.hpp"

using namespace llmc;
using namespace llmc::test;
namespace kcpu = llmc::kernels::cpu;

namespace {

std::vector<float> random_f32(int64_t n, uint32_t seed, float scale = 1.0f, float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(mean, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// One f16 rounding of a value computed in f32: half an ulp, 2⁻¹¹ relative, plus the f16
// subnormal spacing.
constexpr double kHalfUlp = 1.0 / 2048;

}  // namespace

TEST_CASE("embedding gathers f16 rows into f32 and f16 activations; a bad id gives NaN") {
  LLMC_REQUIRE_GPU();
  const int64_t V = 1000, D = 77, rows = 37;
  const HalfData table = random_half(V * D, 11);
  std::mt19937 rng(12);
  std::vector<int32_t> ids(rows);
  for (auto& i : ids) i = static_cast<int32_t>(rng() % V);
  kcu::DeviceBuffer<uint16_t> dt(table.bits);
  kcu::DeviceBuffer<int32_t> did(ids);
  kcu::DeviceBuffer<float> o32(rows * D);
  kcu::DeviceBuffer<uint16_t> o16(rows * 80);
  kcu::embedding(dt.data(), V, D, did.data(), f32_view(o32, D), rows, nullptr);
  kcu::embedding(dt.data(), V, D, did.data(), f16_view(o16, 80), rows, nullptr);
  std::vector<float> ref(rows * D);
  kcpu::embedding_gather(table.vals.data(), D, ids.data(), ref.data(), rows);
  CHECK(o32.download() == ref);  // a gather is exact
  const auto h = o16.download();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < D; ++c) REQUIRE(f16_to_f32(h[r * 80 + c]) == ref[r * D + c]);
  ids[3] = static_cast<int32_t>(V);
  did.upload(ids);
  kcu::embedding(dt.data(), V, D, did.data(), f32_view(o32, D), rows, nullptr);
  const auto bad = o32.download();
  CHECK(std::isnan(bad[3 * D]));
  CHECK(std::isnan(bad[3 * D + D - 1]));
  CHECK(bad[2 * D] == ref[2 * D]);
}

TEST_CASE("positions read the offset from device memory") {
  LLMC_REQUIRE_GPU();
  kcu::DeviceBuffer<int32_t> past(std::vector<int32_t>{11});
  kcu::DeviceBuffer<int32_t> out(21);
  kcu::positions(past.data(), out.data(), 21, 7, nullptr);
  const auto p = out.download();
  for (int r = 0; r < 21; ++r) CHECK(p[r] == 11 + r % 7);
}

TEST_CASE("add, residual add fused into RMSNorm / LayerNorm, and the plain norms") {
  LLMC_REQUIRE_GPU();
  const int64_t rows = 5, D = 1000;  // not a multiple of the 256-thread block
  const auto a = random_f32(rows * D, 21, 3.0f);
  const HalfData r = random_half(rows * D, 22);
  const auto w = random_f32(D, 23, 0.2f, 1.0f), b = random_f32(D, 24, 0.5f);
  kcu::DeviceBuffer<float> da(a), dw(w), db(b), dh(rows * D), ds(rows * D);
  kcu::DeviceBuffer<uint16_t> dr(r.bits), dy(rows * D);
  std::vector<float> h(rows * D);
  kcpu::add(a.data(), r.vals.data(), h.data(), rows * D);

  kcu::add(f32_view(da, D), f16_view(dr, D), f32_view(ds, D), rows, D, nullptr);
  CHECK(ds.download() == h);  // one f32 addition of the same operands

  for (bool layer : {false, true}) {
    CAPTURE(layer);
    kcu::NormParams p;
    p.layer_norm = layer;
    p.weight = dw.data();
    p.bias = layer ? db.data() : nullptr;
    p.eps = 1e-5f;
    kcu::norm(f32_view(da, D), f16_view(dr, D), f32_view(dh, D), f16_view(dy, D), rows, D, p, nullptr);
    CHECK(dh.download() == h);
    std::vector<float> ref(rows * D);
    if (layer)
      kcpu::layer_norm(h.data(), w.data(), b.data(), ref.data(), rows, D, 1e-5f);
    else
      kcpu::rms_norm(h.data(), w.data(), ref.data(), rows, D, 1e-5f);
    // f32 statistics over 1000 terms (~1e-6 relative), then one f16 rounding
    expect_close(f16_values(dy.download()), ref, {kHalfUlp + 1e-5, 0, 1e-6}, layer ? "add+layer_norm" : "add+rms_norm");

    // unfused, f16 input, f32 output
    kcu::norm(f16_view(dr, D), kcu::Act{}, kcu::Act{}, f32_view(ds, D), rows, D, p, nullptr);
    if (layer)
      kcpu::layer_norm(r.vals.data(), w.data(), b.data(), ref.data(), rows, D, 1e-5f);
    else
      kcpu::rms_norm(r.vals.data(), w.data(), ref.data(), rows, D, 1e-5f);
    expect_close(ds.download(), ref, {1e-5, 0, 1e-6}, layer ? "layer_norm" : "rms_norm");
  }
}

TEST_CASE("SwiGLU over strided gate/up views, GELU erf and tanh, bias and conversion") {
  LLMC_REQUIRE_GPU();
  const int64_t rows = 7, F = 301;
  const HalfData gu = random_half(rows * 2 * F, 31, 2.0f);  // [rows, gate | up] as a stacked linear writes it
  kcu::DeviceBuffer<uint16_t> dgu(gu.bits), dout(rows * F);
  kcu::swiglu(f16_view(dgu, 2 * F, 0), f16_view(dgu, 2 * F, F), f16_view(dout, F), rows, F, nullptr);
  std::vector<float> g(rows * F), u(rows * F), ref(rows * F);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < F; ++c) {
      g[r * F + c] = gu.vals[r * 2 * F + c];
      u[r * F + c] = gu.vals[r * 2 * F + F + c];
    }
  kcpu::swiglu(g.data(), u.data(), ref.data(), rows * F);
  expect_close(f16_values(dout.download()), ref, {kHalfUlp + 1e-6, 0, 1e-7}, "swiglu");

  for (bool tanh_approx : {false, true}) {
    kcu::gelu(f16_view(dgu, 2 * F, 0), f16_view(dout, F), rows, F, tanh_approx, nullptr);
    kcpu::gelu(g.data(), ref.data(), rows * F, tanh_approx);
    expect_close(f16_values(dout.download()), ref, {kHalfUlp + 1e-6, 0, 1e-6}, tanh_approx ? "gelu tanh" : "gelu erf");
  }

  const auto bias = random_f32(F, 32);
  kcu::DeviceBuffer<float> dbias(bias), d32(rows * F);
  kcu::convert(f16_view(dgu, 2 * F, F), f32_view(d32, F), rows, F, nullptr);
  CHECK(d32.download() == u);  // f16 → f32 is exact
  kcu::bias_add(f32_view(d32, F), dbias.data(), rows, F, nullptr);
  const auto got = d32.download();
  for (int64_t i = 0; i < rows * F; ++i) REQUIRE(got[i] == u[i] + bias[i % F]);
}

TEST_CASE("log-softmax and argmax over f32 logits rows; argmax takes the lowest index among ties") {
  LLMC_REQUIRE_GPU();
  const int64_t rows = 3, V = 32003;
  auto x = random_f32(rows * V, 41, 4.0f);
  x[0 * V + 17] = 40.0f;  // a tie in row 0: index 17 must win over 20000
  x[0 * V + 20000] = 40.0f;
  x[2 * V + V - 1] = 50.0f;  // the last column
  kcu::DeviceBuffer<float> dx(x), dl(rows * V);
  kcu::log_softmax(dx.data(), dl.data(), rows, V, V, nullptr);
  std::vector<float> ref(rows * V);
  kcpu::log_softmax_rows(x.data(), ref.data(), rows, V);
  // f32 sum of 32003 exps (relative ~1e-6 of the log-sum-exp, an absolute error on every entry)
  expect_close(dl.download(), ref, {1e-6, 0, 2e-5}, "log_softmax");

  kcu::DeviceBuffer<int32_t> ids(rows), hist(rows * 10), past(std::vector<int32_t>{4});
  kcu::argmax(dx.data(), rows, V, V, ids.data(), hist.data(), 10, past.data(), nullptr);
  std::vector<int32_t> want(rows);
  kcpu::argmax_rows(x.data(), want.data(), rows, V);
  CHECK(want[0] == 17);
  CHECK(want[2] == V - 1);
  CHECK(ids.download() == want);
  const auto h = hist.download();
  for (int64_t r = 0; r < rows; ++r) CHECK(h[r * 10 + 4] == want[r]);
  kcu::advance_position(past.data(), 1, nullptr);
  CHECK(past.download()[0] == 5);

  // rows of 32000 (16-byte aligned): the vectorized path, ties across and within float4 loads
  const int64_t W = 32000;
  auto y = random_f32(2 * W, 42, 4.0f);
  y[7] = y[6] = 30.0f;          // within one float4: 6 wins
  y[31000] = 30.0f;             // later equal maximum loses
  y[W + W - 1] = 31.0f;         // the last element of row 1
  kcu::DeviceBuffer<float> dy(y);
  kcu::argmax(dy.data(), 2, W, W, ids.data(), nullptr, 0, nullptr, nullptr);
  std::vector<int32_t> want2(2);
  kcpu::argmax_rows(y.data(), want2.data(), 2, W);
  CHECK(want2[0] == 6);
  CHECK(want2[1] == W - 1);
  const auto got2 = ids.download();
  CHECK(got2[0] == want2[0]);
  CHECK(got2[1] == want2[1]);
}
