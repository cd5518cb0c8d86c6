// Magnitude, N:M and Wanda pruning against float64 references (sorting by the paper's scores
// under the documented tie rule), the counts they promise, and their relative output errors.
#include <doctest/doctest.h>

#include <numeric>

#include "compress/prune.hpp"
#include "compress_test_util.hpp"

using namespace llmc;
using namespace llmc::compress;
using namespace llmc::test;

namespace {

// mask of the k lowest (score, later position first on ties) among the given positions
void ref_prune(const std::vector<double>& score, std::vector<int64_t> pos, int64_t k, std::vector<uint8_t>& mask) {
  std::sort(pos.begin(), pos.end(), [&](int64_t a, int64_t b) {
    if (score[a] != score[b]) return score[a] < score[b];
    return a > b;
  });
  for (int64_t i = 0; i < k; ++i) mask[pos[i]] = 0;
}

std::vector<uint8_t> ref_mask(const std::vector<double>& score, int64_t rows, int64_t cols, const SparsityConfig& c,
                              bool per_row) {
  std::vector<uint8_t> mask(rows * cols, 1);
  if (c.m > 0) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c0 = 0; c0 < cols; c0 += c.m) {
        std::vector<int64_t> pos(c.m);
        std::iota(pos.begin(), pos.end(), r * cols + c0);
        ref_prune(score, pos, c.m - c.n, mask);
      }
  } else if (per_row) {
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<int64_t> pos(cols);
      std::iota(pos.begin(), pos.end(), r * cols);
      ref_prune(score, pos, static_cast<int64_t>(std::floor(c.ratio * cols + 0.5)), mask);
    }
  } else {
    std::vector<int64_t> pos(rows * cols);
    std::iota(pos.begin(), pos.end(), 0);
    ref_prune(score, pos, static_cast<int64_t>(std::floor(c.ratio * rows * cols + 0.5)), mask);
  }
  return mask;
}

std::vector<double> abs_scores(const std::vector<float>& W) {
  std::vector<double> s(W.size());
  for (size_t i = 0; i < W.size(); ++i) s[i] = std::fabs(static_cast<double>(W[i]));
  return s;
}

}  // namespace

TEST_CASE("magnitude and N:M pruning match the float64 reference and meet their counts") {
  const int64_t rows = 48, cols = 256;
  std::vector<float> W = randn(rows * cols, 201);
  const std::vector<double> score = abs_scores(W);
  const SparsityConfig cases[] = {{0.5, 0, 0, false}, {0.3, 0, 0, false}, {0.9, 0, 0, true}, {0.5, 0, 0, true},
                                  {0.0, 0, 0, false}, {0.37, 0, 0, true}, {0, 2, 4, false}, {0, 4, 8, false},
                                  {0, 1, 4, false}};
  for (const SparsityConfig& c : cases) {
    CAPTURE(c.ratio);
    CAPTURE(c.n);
    CAPTURE(c.m);
    CAPTURE(c.per_row);
    const PruneResult got = prune_magnitude(W.data(), rows, cols, c, "w");
    CHECK(got.mask == ref_mask(score, rows, cols, c, c.per_row));
    for (int64_t i = 0; i < rows * cols; ++i) REQUIRE(got.weight[i] == (got.mask[i] ? W[i] : 0.0f));
    if (c.m > 0) {
      for (int64_t g = 0; g < rows * cols; g += c.m) {
        int nz = 0;
        for (int i = 0; i < c.m; ++i) nz += got.weight[g + i] != 0;
        REQUIRE(nz <= c.n);
      }
    } else if (c.per_row) {
      for (int64_t r = 0; r < rows; ++r) {
        int64_t zeros = 0;
        for (int64_t j = 0; j < cols; ++j) zeros += got.mask[r * cols + j] == 0;
        REQUIRE(std::fabs(static_cast<double>(zeros) - c.ratio * cols) <= 1.0);
      }
    } else {
      const int64_t zeros = std::count(got.mask.begin(), got.mask.end(), 0);
      CHECK(zeros == std::llround(c.ratio * rows * cols));
    }
  }
}

TEST_CASE("pruning breaks ties by keeping the earlier weight") {
  std::vector<float> W = {1, -1, 1, -1, 2, 2, -2, 2};
  const PruneResult row = prune_magnitude(W.data(), 2, 4, {0.5, 0, 0, true}, "ties");
  CHECK(row.mask == std::vector<uint8_t>{1, 1, 0, 0, 1, 1, 0, 0});
  const PruneResult nm = prune_magnitude(W.data(), 2, 4, {0, 2, 4, false}, "ties");
  CHECK(nm.mask == row.mask);
}

TEST_CASE("Wanda matches the float64 reference and beats magnitude on outlier inputs") {
  const int64_t rows = 48, cols = 256;
  std::vector<float> W = randn(rows * cols, 211, 0.05);
  std::vector<float> X = make_activations(512, cols, 212, 6, 20.0);
  std::vector<double> norm(cols, 0);
  for (int64_t t = 0; t < 512; ++t)
    for (int64_t j = 0; j < cols; ++j) norm[j] += static_cast<double>(X[t * cols + j]) * X[t * cols + j];
  for (double& v : norm) v = std::sqrt(v);
  const std::vector<float> got_norm = input_column_norms(X.data(), 512, cols, "x");
  for (int64_t j = 0; j < cols; ++j) REQUIRE(got_norm[j] == doctest::Approx(norm[j]).epsilon(1e-6));
  std::vector<double> score(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) score[i] = std::fabs(static_cast<double>(W[i])) * got_norm[i % cols];
  for (SparsityConfig c : {SparsityConfig{0.5}, SparsityConfig{0.6}, SparsityConfig{0, 2, 4}, SparsityConfig{0, 4, 8}}) {
    CAPTURE(c.ratio);
    CAPTURE(c.m);
    const PruneResult wanda = prune_wanda(W.data(), rows, cols, got_norm.data(), c, "w");
    CHECK(wanda.mask == ref_mask(score, rows, cols, c, true));
    const PruneResult mag = prune_magnitude(W.data(), rows, cols, c, "w");
    const double e_wanda = output_error(W, wanda.weight, X, rows, cols);
    const double e_mag = output_error(W, mag.weight, X, rows, cols);
    CHECK(e_wanda < 0.8 * e_mag);
  }
}

TEST_CASE("pruning refuses bad input and is deterministic") {
  std::vector<float> W = randn(8 * 64, 221);
  std::vector<float> norms(64, 1.0f);
  CHECK_THROWS_WITH_AS(prune_magnitude(W.data(), 8, 64, {1.0}, "fc1"), doctest::Contains("[0, 1)"), Error);
  CHECK_THROWS_WITH_AS(prune_magnitude(W.data(), 8, 64, {-0.1}, "fc1"), doctest::Contains("fc1"), Error);
  CHECK_THROWS_WITH_AS(prune_magnitude(W.data(), 8, 64, {0, 4, 4}, "fc1"), doctest::Contains("N < M"), Error);
  CHECK_THROWS_AS(prune_magnitude(W.data(), 8, 64, {0, 5, 4}, "fc1"), Error);
  CHECK_THROWS_AS(prune_wanda(W.data(), 8, 64, norms.data(), {0, 0, 4}, "fc1"), Error);
  CHECK_THROWS_WITH_AS(prune_wanda(W.data(), 8, 64, norms.data(), {0, 2, 3}, "fc1"),
                       doctest::Contains("M = 3 does not divide in_features 64"), Error);
  auto Wn = W;
  Wn[100] = NAN;
  CHECK_THROWS_WITH_AS(prune_magnitude(Wn.data(), 8, 64, {0.5}, "layers.1.fc2"), doctest::Contains("layers.1.fc2"),
                       Error);
  norms[3] = INFINITY;
  CHECK_THROWS_AS(prune_wanda(W.data(), 8, 64, norms.data(), {0.5}, "fc1"), Error);
  const PruneResult a = prune_magnitude(W.data(), 8, 64, {0.5}, "w"), b = prune_magnitude(W.data(), 8, 64, {0.5}, "w");
  CHECK(a.mask == b.mask);
  CHECK(a.weight == b.weight);
}
