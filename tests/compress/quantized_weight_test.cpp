// QuantizedWeight storage: the packing convention (two INT4 per byte, low nibble first, +8 offset
// when symmetric) decoded independently from the bytes, dequantize(), and validation errors.
#include <doctest/doctest.h>

#include <random>

#include "runtime/ir/quantized.hpp"

using namespace llmc;

namespace {

// Decodes (r, c) straight from the bytes as the header describes them.
double decode_ref(const QuantizedWeight& w, int64_t r, int64_t c) {
  const int64_t gl = w.group_size ? w.group_size : w.cols, ng = (w.cols + gl - 1) / gl;  // last group may be short
  const int64_t g = w.g_idx.empty() ? c / gl : w.g_idx[c];
  const int64_t i = r * w.cols + c;
  int q, z = 0;
  if (w.bits == 4) {
    const uint8_t b = w.packed[i / 2];
    q = (i % 2 == 0) ? (b & 15) : (b >> 4);
    if (w.symmetric) q -= 8;
  } else {
    q = w.symmetric ? static_cast<int>(static_cast<int8_t>(w.packed[i])) : w.packed[i];
  }
  if (!w.symmetric) {
    const int64_t zi = r * ng + g;
    z = w.bits == 4 ? ((zi % 2 == 0) ? (w.zeros[zi / 2] & 15) : (w.zeros[zi / 2] >> 4)) : w.zeros[zi];
  }
  return static_cast<double>(f16_to_f32(w.scales[r * ng + g])) * (q - z);
}

}  // namespace

TEST_CASE("QuantizedWeight packs values and zero points as documented and dequantizes them") {
  std::mt19937 rng(3);
  for (int bits : {4, 8})
    for (bool sym : {true, false})
      for (int64_t cols : {int64_t(12), int64_t(7), int64_t(200)})
        // 12/4 and 7/7 divide; 12/5, 7/3 and 200/64 leave a short last group (2, 1 and 8 columns)
        for (int64_t gs : {int64_t(0), cols == 12 ? int64_t(4) : cols == 7 ? int64_t(7) : int64_t(64),
                           cols == 12 ? int64_t(5) : cols == 7 ? int64_t(3) : int64_t(128)}) {
          CAPTURE(bits); CAPTURE(sym); CAPTURE(cols); CAPTURE(gs);
          const int64_t rows = 5;
          QuantizedWeight w = QuantizedWeight::allocate(bits, rows, cols, gs, sym);
          const int64_t expect_groups = gs == 0 ? 1 : (cols + gs - 1) / gs;
          REQUIRE(w.n_groups() == expect_groups);
          REQUIRE(w.scales.size() == static_cast<size_t>(rows * expect_groups));
          REQUIRE(w.group_end(expect_groups - 1) == cols);
          std::uniform_int_distribution<int> qd(w.qmin(), w.qmax()), zd(0, (1 << bits) - 1);
          std::uniform_real_distribution<float> sd(0.01f, 2.0f);
          std::vector<int> qs(rows * cols);
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c) w.set_q(r, c, qs[r * cols + c] = qd(rng));
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t g = 0; g < w.n_groups(); ++g) {
              w.scales[r * w.n_groups() + g] = f32_to_f16(sd(rng));
              if (!sym) w.set_zero(r, g, zd(rng));
            }
          w.validate("w");
          Tensor t = dequantize(w, "w");
          auto v = t.f32_values();
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c) {
              REQUIRE(w.q(r, c) == qs[r * cols + c]);
              REQUIRE(v[r * cols + c] == static_cast<float>(decode_ref(w, r, c)));
            }
        }
}

TEST_CASE("QuantizedWeight spells out the INT4 byte layout") {
  // symmetric: q = -8 stores 0, q = 7 stores 15; element 0 is the low nibble of byte 0
  QuantizedWeight w = QuantizedWeight::allocate(4, 1, 4, 0, true);
  w.set_q(0, 0, -8);
  w.set_q(0, 1, 7);
  w.set_q(0, 2, 1);
  w.set_q(0, 3, -1);
  CHECK(w.packed[0] == 0xF0);
  CHECK(w.packed[1] == 0x79);
}

TEST_CASE("QuantizedWeight act-order groups and validation errors") {
  QuantizedWeight w = QuantizedWeight::allocate(4, 2, 8, 4, false);
  for (int64_t c = 0; c < 8; ++c) w.set_q(1, c, static_cast<int>(c));
  w.scales[1 * 2 + 0] = f32_to_f16(0.5f);
  w.scales[1 * 2 + 1] = f32_to_f16(2.0f);
  w.set_zero(1, 0, 3);
  w.set_zero(1, 1, 9);
  w.g_idx = {1, 0, 1, 0, 1, 0, 1, 0};
  auto v = dequantize(w).f32_values();
  for (int64_t c = 0; c < 8; ++c) CHECK(v[8 + c] == static_cast<float>(decode_ref(w, 1, c)));

  QuantizedWeight bad = w;
  bad.g_idx[3] = 2;
  CHECK_THROWS_WITH_AS(bad.validate("layer.q"), doctest::Contains("layer.q"), Error);
  bad = w;
  bad.scales[0] = f32_to_f16(0.0f);
  CHECK_THROWS_AS(bad.validate("x"), Error);
  bad = w;
  bad.packed.pop_back();
  CHECK_THROWS_WITH_AS(bad.validate("x"), doctest::Contains("packed"), Error);
  // a group size that does not divide the row leaves a short last group: 10 = 4 + 4 + 2
  const QuantizedWeight ragged = QuantizedWeight::allocate(4, 2, 10, 4, true);
  CHECK(ragged.n_groups() == 3);
  CHECK(ragged.group_begin(2) == 8);
  CHECK(ragged.group_end(2) == 10);
  bad = ragged;
  bad.scales.pop_back();  // two scales per row short of three groups is not a valid layout
  bad.scales.pop_back();
  CHECK_THROWS_WITH_AS(bad.validate("x"), doctest::Contains("scales hold 4 values, expected 6"), Error);
  CHECK_THROWS_WITH_AS(QuantizedWeight::allocate(4, 2, 10, -4, true), doctest::Contains("group size"), Error);
  CHECK_THROWS_AS(QuantizedWeight::allocate(3, 2, 8, 4, true), Error);
}
