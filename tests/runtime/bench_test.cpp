// runtime::median, the statistic every benchmark reports of its repeated runs.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "runtime/bench.hpp"

TEST_CASE("median is the middle of the sorted samples (the upper middle for an even count), 0 for none") {
  CHECK(llmc::runtime::median({}) == 0.0);
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-5.0, 5.0);
  for (size_t n : {1u, 2u, 3u, 8u, 31u, 64u}) {
    std::vector<double> v(n);
    for (double& x : v) x = u(rng);
    std::vector<double> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    const std::vector<double> before = v;
    INFO("n = " << n);
    CHECK(llmc::runtime::median(v) == sorted[n / 2]);
    CHECK(v == before);  // the caller's samples are left as they were
  }
}
