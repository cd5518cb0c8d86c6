// Helpers of the transformer-op GPU tests: device copies of host vectors, f16/f32 views, and an
// element-wise comparison whose tolerance each test argues from the arithmetic.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cuda/device_buffer.hpp"
#include "kernels/cuda/transformer_ops.hpp"
#include "runtime/ir/dtype.hpp"

namespace llmc::test {

namespace kcu = llmc::kernels::cuda;

inline kcu::Act f16_view(kcu::DeviceBuffer<uint16_t>& b, int64_t ld, int64_t col0 = 0) {
  return kcu::Act{b.data() + col0, ld, kcu::ActType::F16};
}
inline kcu::Act f32_view(kcu::DeviceBuffer<float>& b, int64_t ld, int64_t col0 = 0) {
  return kcu::Act{b.data() + col0, ld, kcu::ActType::F32};
}
inline std::vector<float> f16_values(const std::vector<uint16_t>& bits) {
  std::vector<float> v(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) v[i] = f16_to_f32(bits[i]);
  return v;
}

// |got − ref| ≤ rel·|ref| + abs_scale[i]·rel_scale + abs for every element, no NaN/Inf in got,
// and a non-vacuous reference (some |ref| > 0).
struct Tolerance {
  double rel = 0, rel_scale = 0, abs = 0;
};
inline void expect_close(const std::vector<float>& got, const std::vector<float>& ref, const Tolerance& t,
                         const std::string& what, const std::vector<double>* scale = nullptr) {
  REQUIRE(got.size() == ref.size());
  int64_t bad = 0, first = -1, nonfinite = 0;
  double worst = 0, refmax = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    refmax = std::max(refmax, std::fabs(static_cast<double>(ref[i])));
    if (!std::isfinite(got[i])) {
      ++nonfinite;
      if (first < 0) first = static_cast<int64_t>(i);
      continue;
    }
    const double d = std::fabs(static_cast<double>(got[i]) - ref[i]);
    const double tol = t.rel * std::fabs(ref[i]) + (scale ? (*scale)[i] * t.rel_scale : 0.0) + t.abs;
    worst = std::max(worst, d / tol);
    if (d > tol) {
      ++bad;
      if (first < 0) first = static_cast<int64_t>(i);
    }
  }
  INFO(what << ": worst error/tolerance " << worst << ", " << bad << " bad of " << ref.size() << ", first bad "
            << first << (first >= 0 ? " got " + std::to_string(got[first]) + " ref " + std::to_string(ref[first]) : ""));
  CHECK(nonfinite == 0);
  CHECK(bad == 0);
  CHECK(refmax > 0);
}

}  // namespace llmc::test
