// GPTQ against an unblocked float64 implementation of Algorithm 1 written here from the paper
// (column by column, every later column updated at once, no lazy batches), plus the properties
// the method promises: lower output error than RTN on correlated inputs, RTN when H = I, and a
// warning (never a crash) when the Hessian cannot be factored.
#include <doctest/doctest.h>

#include <chrono>
#include <numeric>

#include "compress/gptq.hpp"
#include "compress/rtn.hpp"
#include "compress_test_util.hpp"

using namespace llmc;
using namespace llmc::compress;
using namespace llmc::test;

namespace {

Eigen::MatrixXd to_eigen(const Mat& H, int64_t n) {
  Eigen::MatrixXd M(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) M(i, j) = H[i * n + j];
  return M;
}

struct RefGptq {
  std::vector<int> q;                // [rows, cols], original column order
  std::vector<RefGrid> grids;        // [rows, n_groups]
  std::vector<int32_t> g_idx;        // empty unless act-order with fitted groups
  double loss = 0;
};

// mask (optional, [rows, cols], 0 = pruned): pruned weights are set to 0 whatever their current
// value, their error w − 0 spreads like any other, and grids see them as 0 (SparseGPT's joint
// sparsification and quantization).
RefGptq ref_gptq(const std::vector<float>& Wf, int64_t rows, int64_t cols, Mat H, const GptqConfig& cfg,
                 const std::vector<uint8_t>* mask = nullptr) {
  auto pruned = [&](int64_t r, int64_t c) { return mask && !(*mask)[r * cols + c]; };
  const QuantConfig& qc = cfg.quant;
  // groups of gl columns (in quantization order); the last holds the rest when gl does not divide
  const int64_t gl = qc.group_size ? qc.group_size : cols, ng = (cols + gl - 1) / gl;
  auto end_of = [&](int64_t j0) { return std::min(j0 + gl, cols); };
  Mat W(Wf.begin(), Wf.end());
  for (int64_t j = 0; j < cols; ++j)
    if (H[j * cols + j] == 0) {
      H[j * cols + j] = 1;
      for (int64_t r = 0; r < rows; ++r) W[r * cols + j] = 0;
    }
  RefGptq out{std::vector<int>(rows * cols), std::vector<RefGrid>(rows * ng), {}, 0};
  const bool stat = cfg.static_groups && gl < cols;
  if (stat)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < ng; ++g) {
        Mat v;
        for (int64_t c = g * gl; c < end_of(g * gl); ++c) v.push_back(pruned(r, c) ? 0.0 : W[r * cols + c]);
        out.grids[r * ng + g] = ref_fit_values(v, qc.bits, qc.symmetric);
      }
  std::vector<int64_t> perm(cols);
  std::iota(perm.begin(), perm.end(), 0);
  if (cfg.act_order)
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return H[a * cols + a] > H[b * cols + b]; });
  Mat Wp(rows * cols), Hp(cols * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) Wp[r * cols + j] = W[r * cols + perm[j]];
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j) Hp[i * cols + j] = H[perm[i] * cols + perm[j]];
  const Mat U = ref_inverse_upper(Hp, cols, cfg.percdamp);
  std::vector<RefGrid> cur(rows);
  for (int64_t j = 0; j < cols; ++j) {
    for (int64_t r = 0; r < rows; ++r) {
      if (stat) {
        cur[r] = out.grids[r * ng + perm[j] / gl];
      } else if (j % gl == 0) {  // entering a group: fit on its current weights
        Mat v;
        for (int64_t c = j; c < end_of(j); ++c) v.push_back(pruned(r, perm[c]) ? 0.0 : Wp[r * cols + c]);
        cur[r] = ref_fit_values(v, qc.bits, qc.symmetric);
        out.grids[r * ng + j / gl] = cur[r];
      }
      const double w = Wp[r * cols + j];
      const int q = pruned(r, perm[j]) ? cur[r].zero : ref_quant(w, cur[r], qc.bits, qc.symmetric);
      out.q[r * cols + perm[j]] = q;
      const double e = (w - ref_deq(q, cur[r])) / U[j * cols + j];
      out.loss += e * e / 2;
      for (int64_t k = j + 1; k < cols; ++k) Wp[r * cols + k] -= e * U[j * cols + k];
    }
  }
  if (cfg.act_order && !stat && gl < cols) {
    out.g_idx.resize(cols);
    for (int64_t j = 0; j < cols; ++j) out.g_idx[perm[j]] = static_cast<int32_t>(j / gl);
  }
  return out;
}

void check_same(const GptqResult& got, const RefGptq& ref, int64_t rows, int64_t cols) {
  CHECK_FALSE(got.fell_back_to_rtn);
  got.weight.validate("w");
  int64_t bad = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) bad += got.weight.q(r, j) != ref.q[r * cols + j];
  CHECK(bad == 0);
  const int64_t ng = got.weight.n_groups();
  int64_t bad_grid = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < ng; ++g)
      bad_grid += got.weight.scale(r, g) != ref.grids[r * ng + g].scale || got.weight.zero(r, g) != ref.grids[r * ng + g].zero;
  CHECK(bad_grid == 0);
  CHECK(got.weight.g_idx == ref.g_idx);
  CHECK(got.loss == doctest::Approx(ref.loss).epsilon(1e-9));
}

std::vector<float> dequant(const QuantizedWeight& q) { return dequantize(q).f32_values(); }

}  // namespace

TEST_CASE("HessianAccumulator sums batches into 2·XᵀX/n") {
  const int64_t cols = 40;
  std::vector<float> X = make_activations(1500, cols, 9);
  HessianAccumulator acc(cols);
  acc.add(X.data(), 100);
  acc.add(X.data() + 100 * cols, 1300);  // crosses the 1024-token chunk
  acc.add(X.data() + 1400 * cols, 100);
  CHECK(acc.n_tokens() == 1500);
  const Eigen::MatrixXd H = acc.hessian();
  const Mat ref = hessian_f64(X, cols);
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      // f32 products per chunk: error bounded by ~chunk·eps32 relative to Σ|x_i||x_j|
      double scale = 0;
      for (int64_t t = 0; t < 1500; ++t) scale += std::fabs(X[t * cols + i] * X[t * cols + j]);
      REQUIRE(std::fabs(H(i, j) - ref[i * cols + j]) <= 1024 * 6e-8 * 2 * scale / 1500);
      REQUIRE(H(i, j) == H(j, i));
    }
  std::vector<float> bad(cols, 0.0f);
  bad[3] = NAN;
  CHECK_THROWS_WITH_AS(acc.add(bad.data(), 1, "layers.2.mlp.down_proj input"), doctest::Contains("down_proj"), Error);
  CHECK_THROWS_AS(HessianAccumulator(cols).hessian(), Error);
}

TEST_CASE("GPTQ matches the unblocked float64 reference") {
  const int64_t rows = 48, cols = 256;
  std::vector<float> W = randn(rows * cols, 21, 0.05);
  std::vector<float> X = make_activations(512, cols, 22);
  for (int64_t t = 0; t < 512; ++t) X[t * cols + 200] = X[t * cols + 201] = 0;  // two dead inputs
  const Mat Hm = hessian_f64(X, cols);
  const Eigen::MatrixXd H = to_eigen(Hm, cols);
  struct Case {
    int bits;
    int64_t gs;
    bool sym, act, stat, clip;
    int64_t block;
  };
  const Case cases[] = {
      {4, 32, true, false, false, false, 128},  {4, 64, false, false, false, false, 128},
      {8, 0, true, false, false, false, 128},   {4, 0, false, false, false, false, 100},
      {4, 32, true, false, false, false, 48},   {4, 64, true, false, false, false, 16},
      {4, 32, true, true, false, false, 128},   {4, 64, false, true, false, false, 40},
      {4, 64, true, true, true, false, 128},    {4, 32, false, false, true, false, 128},
      {4, 32, true, false, false, true, 128},   {8, 64, false, true, false, false, 128},
  };
  for (const Case& c : cases) {
    CAPTURE(c.bits); CAPTURE(c.gs); CAPTURE(c.sym); CAPTURE(c.act); CAPTURE(c.stat); CAPTURE(c.block);
    GptqConfig cfg;
    cfg.quant = {c.bits, c.gs, c.sym, c.clip, 20, 0.5};
    cfg.act_order = c.act;
    cfg.static_groups = c.stat;
    cfg.block_size = c.block;
    const GptqResult got = gptq_quantize(W.data(), rows, cols, H, cfg, "w");
    if (c.clip) {
      // the reference quantizer has no clip search: only compare the error it reaches
      CHECK(output_error(W, dequant(got.weight), X, rows, cols) > 0);
      continue;
    }
    check_same(got, ref_gptq(W, rows, cols, Hm, cfg), rows, cols);
    CHECK(got.warning.empty());
  }
}

TEST_CASE("GPTQ matches the float64 reference with a short last group") {
  // 200 = 3·64 + 8 and 576 = 4·128 + 64 (SmolLM2's hidden size at g128): the last group is short,
  // in column order or, with act-order, in the permuted order (g_idx then gives it the last columns)
  struct Case {
    int64_t cols;
    int bits;
    int64_t gs;
    bool sym, act, stat;
    int64_t block;
  };
  const Case cases[] = {
      {200, 4, 64, true, false, false, 128}, {200, 4, 64, false, false, false, 100}, {200, 4, 64, true, true, false, 128},
      {200, 4, 64, false, true, false, 16},  {200, 4, 128, true, false, false, 48},  {200, 4, 64, true, true, true, 128},
      {200, 4, 64, false, false, true, 64},  {200, 8, 64, false, true, false, 128},  {576, 4, 128, true, false, false, 128},
      {576, 4, 128, false, true, false, 128}, {576, 4, 128, false, false, false, 96},
  };
  const int64_t rows = 40;
  for (const Case& c : cases) {
    CAPTURE(c.cols); CAPTURE(c.bits); CAPTURE(c.gs); CAPTURE(c.sym); CAPTURE(c.act); CAPTURE(c.stat); CAPTURE(c.block);
    const int64_t cols = c.cols;
    std::vector<float> W = randn(rows * cols, 23 + static_cast<uint32_t>(cols), 0.05);
    std::vector<float> X = make_activations(640, cols, 24 + static_cast<uint32_t>(cols));
    const Mat Hm = hessian_f64(X, cols);
    GptqConfig cfg;
    cfg.quant = {c.bits, c.gs, c.sym, false, 20, 0.5};
    cfg.act_order = c.act;
    cfg.static_groups = c.stat;
    cfg.block_size = c.block;
    const GptqResult got = gptq_quantize(W.data(), rows, cols, to_eigen(Hm, cols), cfg, "w");
    CHECK(got.weight.n_groups() == (cols + c.gs - 1) / c.gs);
    check_same(got, ref_gptq(W, rows, cols, Hm, cfg), rows, cols);
  }
}

TEST_CASE("GPTQ lowers the output error below RTN on correlated inputs") {
  const int64_t rows = 48, cols = 256;
  std::vector<float> W = randn(rows * cols, 31, 0.05);
  std::vector<float> X = make_activations(512, cols, 32);
  HessianAccumulator acc(cols);
  acc.add(X.data(), 512);
  for (int64_t gs : {int64_t(32), int64_t(64), int64_t(0)})
    for (bool act : {false, true}) {
      CAPTURE(gs); CAPTURE(act);
      GptqConfig cfg;
      cfg.quant = {4, gs, true};
      cfg.act_order = act;
      const double e_gptq = output_error(W, dequant(gptq_quantize(W.data(), rows, cols, acc.hessian(), cfg, "w").weight), X,
                                         rows, cols);
      const double e_rtn = output_error(W, dequant(quantize_rtn(W.data(), rows, cols, cfg.quant, "w")), X, rows, cols);
      CHECK(e_gptq < 0.8 * e_rtn);
    }
}

TEST_CASE("GPTQ with H = 0 (every input dead) or H = I reduces to RTN") {
  const int64_t rows = 16, cols = 64;
  std::vector<float> W = randn(rows * cols, 41, 0.1);
  GptqConfig cfg;
  cfg.quant = {4, 32, false};
  const QuantizedWeight rtn = quantize_rtn(W.data(), rows, cols, cfg.quant, "w");
  const GptqResult eye = gptq_quantize(W.data(), rows, cols, Eigen::MatrixXd::Identity(cols, cols), cfg, "w");
  CHECK(eye.weight.packed == rtn.packed);
  CHECK(eye.weight.scales == rtn.scales);
  CHECK(eye.weight.zeros == rtn.zeros);
  // all dead: every weight column is zeroed (it cannot affect the output)
  const GptqResult zero = gptq_quantize(W.data(), rows, cols, Eigen::MatrixXd::Zero(cols, cols), cfg, "w");
  CHECK_FALSE(zero.fell_back_to_rtn);
  for (float v : dequant(zero.weight)) CHECK(v == 0.0f);
}

TEST_CASE("GPTQ survives singular and indefinite Hessians") {
  const int64_t rows = 16, cols = 64;
  std::vector<float> W = randn(rows * cols, 51, 0.1);
  GptqConfig cfg;
  cfg.quant = {4, 32, true};
  // singular: X has 8 distinct columns only (rank 8 of 64); damping makes it factorable
  std::vector<float> X(200 * cols);
  std::vector<float> base = randn(200 * 8, 52);
  for (int64_t t = 0; t < 200; ++t)
    for (int64_t j = 0; j < cols; ++j) X[t * cols + j] = base[t * 8 + j % 8];
  const Mat Hs = hessian_f64(X, cols);
  const GptqResult s = gptq_quantize(W.data(), rows, cols, to_eigen(Hs, cols), cfg, "w");
  CHECK_FALSE(s.fell_back_to_rtn);
  check_same(s, ref_gptq(W, rows, cols, Hs, cfg), rows, cols);
  // indefinite: large negative eigenvalues that no damping in the allowed range removes
  Eigen::MatrixXd Hi = Eigen::MatrixXd::Identity(cols, cols);
  for (int64_t i = 0; i + 1 < cols; i += 2) Hi(i, i + 1) = Hi(i + 1, i) = 500.0;
  const GptqResult f = gptq_quantize(W.data(), rows, cols, Hi, cfg, "layers.3.self_attn.o_proj");
  CHECK(f.fell_back_to_rtn);
  CHECK(f.warning.find("layers.3.self_attn.o_proj") != std::string::npos);
  CHECK(f.weight.packed == quantize_rtn(W.data(), rows, cols, cfg.quant, "w").packed);
  // mildly indefinite: the ×10 damping retries recover it, with a warning
  Eigen::MatrixXd Hm = Eigen::MatrixXd::Identity(cols, cols);
  for (int64_t i = 0; i + 1 < cols; i += 2) Hm(i, i + 1) = Hm(i + 1, i) = 1.05;
  const GptqResult m = gptq_quantize(W.data(), rows, cols, Hm, cfg, "w");
  CHECK_FALSE(m.fell_back_to_rtn);
  CHECK_FALSE(m.warning.empty());
  CHECK(m.damp == doctest::Approx(0.1));
}

TEST_CASE("GPTQ refuses bad input and is deterministic") {
  const int64_t rows = 8, cols = 64;
  std::vector<float> W = randn(rows * cols, 61);
  std::vector<float> X = make_activations(100, cols, 62);
  HessianAccumulator acc(cols);
  acc.add(X.data(), 100);
  const Eigen::MatrixXd H = acc.hessian();
  GptqConfig cfg;
  cfg.quant = {4, 24, true};
  CHECK_THROWS_WITH_AS(gptq_quantize(W.data(), rows, cols, H, cfg, "blk.q"),
                       doctest::Contains("group size 24 is not a multiple of 32"), Error);
  cfg.quant.group_size = 32;
  CHECK_THROWS_WITH_AS(gptq_quantize(W.data(), rows, cols, Eigen::MatrixXd::Identity(32, 32), cfg, "blk.q"),
                       doctest::Contains("blk.q"), Error);
  Eigen::MatrixXd Hn = H;
  Hn(1, 2) = NAN;
  CHECK_THROWS_AS(gptq_quantize(W.data(), rows, cols, Hn, cfg, "blk.q"), Error);
  auto Wn = W;
  Wn[9] = INFINITY;
  CHECK_THROWS_WITH_AS(gptq_quantize(Wn.data(), rows, cols, H, cfg, "blk.q"), doctest::Contains("blk.q"), Error);
  cfg.act_order = true;
  const GptqResult a = gptq_quantize(W.data(), rows, cols, H, cfg, "w");
  const GptqResult b = gptq_quantize(W.data(), rows, cols, H, cfg, "w");
  CHECK(a.weight.packed == b.weight.packed);
  CHECK(a.weight.scales == b.weight.scales);
  CHECK(a.weight.g_idx == b.weight.g_idx);
  CHECK(a.loss == b.loss);
}

TEST_CASE("GPTQ on a SmolLM-sized layer (576 × 1536) beats RTN") {
  const int64_t rows = 576, cols = 1536, n = 1024;
  std::vector<float> W = randn(rows * cols, 71, 0.03);
  std::vector<float> X = make_activations(n, cols, 72);
  HessianAccumulator acc(cols);
  acc.add(X.data(), n);
  const Eigen::MatrixXd H = acc.hessian();
  GptqConfig cfg;
  cfg.quant = {4, 128, true};
  const auto t0 = std::chrono::steady_clock::now();
  const GptqResult r = gptq_quantize(W.data(), rows, cols, H, cfg, "w");
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("GPTQ 576x1536 g128: " << secs << " s");
  // output error measured on a subsample of the tokens to keep the float64 check quick
  std::vector<float> Xs(X.begin(), X.begin() + 128 * cols);
  const double e_gptq = output_error(W, dequant(r.weight), Xs, rows, cols);
  const double e_rtn = output_error(W, dequant(quantize_rtn(W.data(), rows, cols, cfg.quant, "w")), Xs, rows, cols);
  CHECK(e_gptq < 0.8 * e_rtn);
}

namespace {

// 2:4 by magnitude (2 largest |w| of every 4 consecutive inputs kept), or unstructured: each weight
// pruned with probability 1/2 (seeded), as a prune stage would hand over.
std::vector<uint8_t> make_mask(const std::vector<float>& W, int64_t rows, int64_t cols, bool two_four, uint32_t seed) {
  std::vector<uint8_t> m(rows * cols, 1);
  if (two_four) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c0 = 0; c0 < cols; c0 += 4) {
        int64_t idx[4] = {c0, c0 + 1, c0 + 2, c0 + 3};
        std::sort(idx, idx + 4, [&](int64_t a, int64_t b) { return std::fabs(W[r * cols + a]) < std::fabs(W[r * cols + b]); });
        m[r * cols + idx[0]] = m[r * cols + idx[1]] = 0;
      }
  } else {
    std::mt19937 rng(seed);
    for (auto& v : m) v = static_cast<uint8_t>(rng() & 1);
  }
  return m;
}

std::vector<float> apply_mask(std::vector<float> W, const std::vector<uint8_t>& m) {
  for (size_t i = 0; i < W.size(); ++i)
    if (!m[i]) W[i] = 0.0f;
  return W;
}

}  // namespace

TEST_CASE("masked GPTQ matches the float64 reference and keeps exactly the mask's zeros") {
  struct Case {
    int64_t cols;
    int bits;
    int64_t gs;
    bool sym, act, stat, two_four, dense;  // dense: hand over the unpruned weight (joint pruning + quantization)
    int64_t block;
  };
  const Case cases[] = {
      {256, 4, 64, true, false, false, true, false, 128},  {256, 4, 32, false, false, false, true, false, 48},
      {256, 4, 64, false, true, false, false, false, 128}, {256, 4, 64, true, true, true, true, false, 128},
      {256, 8, 0, true, false, false, true, false, 128},   {200, 4, 64, false, true, false, true, false, 100},
      {256, 4, 64, false, false, false, true, true, 128},  {200, 4, 128, true, true, false, false, true, 64},
  };
  const int64_t rows = 40;
  for (const Case& c : cases) {
    CAPTURE(c.cols); CAPTURE(c.bits); CAPTURE(c.gs); CAPTURE(c.sym); CAPTURE(c.act); CAPTURE(c.stat);
    CAPTURE(c.two_four); CAPTURE(c.dense); CAPTURE(c.block);
    const int64_t cols = c.cols;
    const std::vector<float> Wd = randn(rows * cols, 131 + static_cast<uint32_t>(cols), 0.05);
    std::vector<float> X = make_activations(600, cols, 132 + static_cast<uint32_t>(cols));
    for (int64_t t = 0; t < 600; ++t) X[t * cols + 17] = 0;  // a dead input
    const Mat Hm = hessian_f64(X, cols);
    const std::vector<uint8_t> mask = make_mask(Wd, rows, cols, c.two_four, 133);
    const std::vector<float> W = c.dense ? Wd : apply_mask(Wd, mask);
    GptqConfig cfg;
    cfg.quant = {c.bits, c.gs, c.sym, false, 20, 0.5};
    cfg.act_order = c.act;
    cfg.static_groups = c.stat;
    cfg.block_size = c.block;
    cfg.mask = mask.data();
    const GptqResult got = gptq_quantize(W.data(), rows, cols, to_eigen(Hm, cols), cfg, "w");
    check_same(got, ref_gptq(W, rows, cols, Hm, cfg, &mask), rows, cols);
    const std::vector<float> deq = dequant(got.weight);
    int64_t off = 0, kept_zero = 0;
    for (int64_t i = 0; i < rows * cols; ++i) {
      off += !mask[i] && deq[i] != 0.0f;
      kept_zero += mask[i] && deq[i] == 0.0f;
    }
    CHECK(off == 0);
    CHECK(kept_zero < rows * cols / 4);  // the kept weights are not all rounded away
  }
}

TEST_CASE("masked GPTQ beats GPTQ followed by re-zeroing the pruned weights") {
  // The old composition: GPTQ ignoring the mask, then the pruned positions forced back to the zero
  // code. Masked GPTQ compensates for those positions instead, so its output error (against the
  // pruned layer it was given) must be lower on every seed.
  const int64_t rows = 48, cols = 192;
  for (uint32_t seed = 1; seed <= 6; ++seed)
    for (bool two_four : {true, false})
      for (bool sym : {true, false}) {
        CAPTURE(seed); CAPTURE(two_four); CAPTURE(sym);
        const std::vector<float> Wd = randn(rows * cols, 140 + seed, 0.05);
        const std::vector<float> X = make_activations(768, cols, 150 + seed);
        HessianAccumulator acc(cols);
        acc.add(X.data(), 768);
        const std::vector<uint8_t> mask = make_mask(Wd, rows, cols, two_four, 160 + seed);
        const std::vector<float> W = apply_mask(Wd, mask);
        GptqConfig cfg;
        cfg.quant = {4, 64, sym};
        cfg.act_order = seed % 2 == 0;
        QuantizedWeight plain = gptq_quantize(W.data(), rows, cols, acc.hessian(), cfg, "w").weight;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < cols; ++j)
            if (!mask[r * cols + j]) plain.set_q(r, j, plain.zero(r, plain.group_of(j)));
        cfg.mask = mask.data();
        const QuantizedWeight masked = gptq_quantize(W.data(), rows, cols, acc.hessian(), cfg, "w").weight;
        const double e_masked = output_error(W, dequant(masked), X, rows, cols);
        const double e_rezero = output_error(W, dequant(plain), X, rows, cols);
        const std::string label = "seed " + std::to_string(seed) + (two_four ? " 2:4" : " 50%") + (sym ? " sym" : " asym");
        MESSAGE(label << ": masked " << e_masked << ", GPTQ then re-zero " << e_rezero);
        CHECK(e_masked <= e_rezero);
      }
}
