#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "runtime/ir/tensor.hpp"

using namespace llmc;

TEST_CASE("f16 conversion matches exhaustive round trip and float64 rounding") {
  // every finite f16 value converts to f32 and back unchanged
  for (uint32_t h = 0; h < 0x10000; ++h) {
    uint16_t x = static_cast<uint16_t>(h);
    float f = f16_to_f32(x);
    if (std::isnan(f)) {
      CHECK(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    REQUIRE(f32_to_f16(f) == x);
  }
  // random f32 values round to the nearest f16 (ties to even), checked against float64 distances
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> u(-70000.0, 70000.0);
  for (int i = 0; i < 20000; ++i) {
    float f = static_cast<float>(u(rng) * std::pow(10.0, -static_cast<int>(rng() % 9)));
    uint16_t h = f32_to_f16(f);
    double got = f16_to_f32(h);
    if (std::isinf(got)) {
      CHECK(std::fabs(f) >= 65520.0);
      continue;
    }
    double lo = f16_to_f32(static_cast<uint16_t>(h - 1)), hi = f16_to_f32(static_cast<uint16_t>(h + 1));
    if ((h & 0x7fff) == 0) lo = hi = got;  // around zero the neighbours change sign
    CHECK(std::fabs(got - f) <= std::fabs(lo - f));
    if (!std::isinf(hi)) CHECK(std::fabs(got - f) <= std::fabs(hi - f));
  }
}

TEST_CASE("bf16 rounding and tensor conversion") {
  CHECK(bf16_to_f32(f32_to_bf16(1.0f)) == 1.0f);
  CHECK(bf16_to_f32(f32_to_bf16(1.00390625f)) == 1.0f);       // tie rounds to even
  CHECK(bf16_to_f32(f32_to_bf16(1.01171875f)) == 1.015625f);  // tie rounds to even (up)
  Tensor t = Tensor::from_f32({2, 3}, {1.5f, -2.25f, 3.0f, 0.1f, 7.0f, -0.5f});
  auto back = t.to(DType::F16).to(DType::F32).f32_values();
  CHECK(back[0] == 1.5f);
  CHECK(back[3] == doctest::Approx(0.1f).epsilon(1e-3));
  CHECK(t.reshaped({3, -1}).shape() == Shape{3, 2});
  CHECK_THROWS_AS(t.reshaped({4, 2}), Error);
}
