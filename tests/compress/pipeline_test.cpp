// Model-level compression on a small random-weight Llama (plumbing: the algorithms themselves are
// checked against float64 references in the other tests of this folder).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>
#include <random>

#include "compress/fold.hpp"
#include "compress/pipeline.hpp"
#include "formats/llmc.hpp"
#include "runtime/loader.hpp"
#include "runtime/session.hpp"
#include "tests/test_util.hpp"
#include "tests/compress/tiny_llama.hpp"

using namespace llmc;

namespace {

using test::random_tokens;
using test::tiny_llama;

compress::Recipe recipe_for(const std::string& method, int bits) {
  compress::Recipe r;
  compress::Stage s;
  s.quant.method = method;
  compress::apply_scheme(s.quant, bits == 4 ? "w4a16" : "w8a16");
  s.quant.group_size = bits == 4 ? 32 : 0;
  r.stages.push_back(s);
  r.calib_file = "random tokens";
  r.calib.nsamples = 4;
  r.calib.seqlen = 24;
  return r;
}

std::string file_bytes(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

TEST_CASE("compress -> .llmc -> load gives bit-identical logits, and the file is deterministic") {
  auto dir = test::scratch_dir("pipeline_roundtrip");
  const auto calib = random_tokens(400, 5);
  const auto ids = random_tokens(20, 9);
  for (std::string method : {"rtn", "gptq", "awq"}) {
    CAPTURE(method);
    Model m = tiny_llama(1);
    auto rep = compress::compress_model(m, recipe_for(method, 4), calib);
    CHECK(rep.layers.size() == 14);
    CHECK(m.graph.quantized.size() == 14);
    for (auto& l : rep.layers) {
      CHECK(l.bits == doctest::Approx(4.5));  // 4 bits + an f16 scale per 32 weights
      CHECK(l.rel_error > 0);
      CHECK(l.rel_error < 0.2);
    }
    runtime::Session s(m);
    Tensor a = s.forward(ids);
    const std::string p1 = (dir / (method + "1.llmc")).string(), p2 = (dir / (method + "2.llmc")).string();
    formats::write_llmc(m, p1, {"f16"});
    Model back = runtime::load_model(p1);
    runtime::Session s2(back);
    Tensor b = s2.forward(ids);
    REQUIRE(a.shape() == b.shape());
    CHECK(std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);

    Model again = tiny_llama(1);
    compress::compress_model(again, recipe_for(method, 4), calib);
    formats::write_llmc(again, p2, {"f16"});
    CHECK(file_bytes(p1) == file_bytes(p2));
  }
}

TEST_CASE("2:4 pruning then INT4 keeps the pattern; W8A8 smoothquant runs") {
  const auto calib = random_tokens(400, 6);
  Model m = tiny_llama(2);
  compress::Recipe r = recipe_for("gptq", 4);
  compress::Stage p;
  p.kind = compress::Stage::Kind::Prune;
  p.prune.method = "wanda";
  compress::apply_pattern(p.prune, "2:4");
  r.stages.insert(r.stages.begin(), p);
  compress::compress_model(m, r, calib);
  for (auto& [name, q] : m.graph.quantized) {
    Tensor w = dequantize(q, name);
    for (int64_t i = 0; i < w.numel(); i += 4) {
      int nz = 0;
      for (int j = 0; j < 4; ++j) nz += w.data<float>()[i + j] != 0.0f;
      REQUIRE(nz <= 2);
    }
  }

  Model sq = tiny_llama(3);
  compress::Recipe rs;
  compress::Stage q;
  q.quant.method = "smoothquant";
  compress::apply_scheme(q.quant, "w8a8");
  q.quant.act = "static";
  q.quant.observer = "entropy";
  rs.stages.push_back(q);
  rs.calib_file = "random tokens";
  rs.calib.nsamples = 4;
  rs.calib.seqlen = 24;
  Model ref = tiny_llama(3);
  compress::compress_model(sq, rs, calib);
  for (auto& n : sq.graph.nodes)
    if (n.op == "LinearQ") CHECK(n.s("act", "") == "static");
  Model w4 = tiny_llama(3);
  compress::compress_model(w4, recipe_for("rtn", 4), calib);
  runtime::Session a(sq), b(ref), c(w4);
  auto ids = random_tokens(16, 3);
  auto la = a.forward(ids).f32_values(), lb = b.forward(ids).f32_values(), lc = c.forward(ids).f32_values();
  double e8 = 0, e4 = 0, den = 0;
  for (size_t i = 0; i < la.size(); ++i) {
    e8 += (la[i] - lb[i]) * (la[i] - lb[i]);
    e4 += (lc[i] - lb[i]) * (lc[i] - lb[i]);
    den += lb[i] * lb[i];
  }
  MESSAGE("relative logit error: W8A8 static entropy " << std::sqrt(e8 / den) << ", W4 g32 RTN " << std::sqrt(e4 / den));
  CHECK(e8 > 0);
  CHECK(e8 < e4);  // 8-bit weights and activations lose less than 4-bit weights
}

TEST_CASE("bad recipes are refused before any work") {
  compress::Recipe r = recipe_for("gptq", 4);
  r.calib_file.clear();
  CHECK_THROWS_WITH_AS(compress::validate(r), doctest::Contains("--calib"), Error);
  compress::PruneStage p;
  CHECK_THROWS_WITH_AS(compress::apply_pattern(p, "2-4"), doctest::Contains("unknown pattern"), Error);
  compress::Recipe r2;
  compress::Stage s;
  s.kind = compress::Stage::Kind::Prune;
  s.prune.sparsity = 1.0;
  r2.stages.push_back(s);
  CHECK_THROWS_WITH_AS(compress::validate(r2), doctest::Contains("sparsity must be in [0, 1)"), Error);
  r2.stages[0].prune.sparsity = 0.5;
  compress::apply_pattern(r2.stages[0].prune, "4:4");
  CHECK_THROWS_WITH_AS(compress::validate(r2), doctest::Contains("1 <= N < M"), Error);
  Model m = tiny_llama(1);
  CHECK_THROWS_WITH_AS(formats::write_llmc(m, "tiny"), doctest::Contains("output path is the input path"), Error);
  CHECK_THROWS_WITH_AS(formats::write_llmc(m, "/nonexistent_dir/x.llmc"), doctest::Contains("does not exist"), Error);
  Model short_calib = tiny_llama(1);
  CHECK_THROWS_WITH_AS(compress::compress_model(short_calib, recipe_for("gptq", 4), random_tokens(10, 1)),
                       doctest::Contains("fewer than one window"), Error);
}

TEST_CASE("structured pruning shrinks FFN channels and KV groups, and the model still runs") {
  const auto calib = random_tokens(400, 8);
  auto dir = test::scratch_dir("pipeline_structured");
  for (std::string method : {"magnitude", "wanda"}) {
    CAPTURE(method);
    Model m = tiny_llama(4);
    compress::Recipe r;
    compress::Stage ch, hd;
    ch.kind = hd.kind = compress::Stage::Kind::Prune;
    ch.prune.method = hd.prune.method = method;
    ch.prune.sparsity = 0.25;
    hd.prune.sparsity = 0.5;
    compress::apply_pattern(ch.prune, "channels");
    compress::apply_pattern(hd.prune, "heads");
    r.stages = {ch, hd};
    r.calib_file = "random tokens";
    r.calib.nsamples = 4;
    r.calib.seqlen = 24;
    compress::compress_model(m, r, calib);
    CHECK(m.graph.weights.at("model.layers.0.mlp.up_proj.weight").shape() == Shape{96, 64});
    CHECK(m.graph.weights.at("model.layers.1.mlp.down_proj.weight").shape() == Shape{64, 96});
    CHECK(m.graph.weights.at("model.layers.0.self_attn.q_proj.weight").shape() == Shape{32, 64});  // 2 of 4 heads
    CHECK(m.graph.weights.at("model.layers.0.self_attn.k_proj.weight").shape() == Shape{16, 64});  // 1 of 2 KV heads
    CHECK(m.graph.weights.at("model.layers.0.self_attn.o_proj.weight").shape() == Shape{64, 32});
    CHECK(m.config["intermediate_size"] == 96);
    CHECK(m.config["num_attention_heads"] == 2);
    CHECK(m.config["num_key_value_heads"] == 1);
    CHECK(m.config["head_dim"] == 16);
    runtime::Session s(m);
    auto ids = random_tokens(12, 2);
    Tensor a = s.forward(ids);
    for (float v : a.f32_values()) REQUIRE(std::isfinite(v));
    const std::string p = (dir / (method + ".llmc")).string();
    formats::write_llmc(m, p, {"f16"});
    Model back = runtime::load_model(p);
    runtime::Session s2(back);
    Tensor b = s2.forward(ids);
    CHECK(std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
  }
}

TEST_CASE("act-order: the down projection's permutation moves into gate's and up's rows, the logits stay") {
  const auto calib = random_tokens(400, 12);
  const auto ids = random_tokens(20, 13);
  // GPTQ with act-order through the pipeline: down projections come out without g_idx, the
  // linears reading the residual stream (q, k, v, gate, up) and o keep theirs.
  Model m = tiny_llama(6);
  compress::Recipe r = recipe_for("gptq", 4);
  r.stages[0].quant.act_order = true;
  compress::compress_model(m, r, calib);
  int down = 0, kept = 0;
  for (auto& [name, q] : m.graph.quantized) {
    if (name.find("down_proj") != std::string::npos) {
      CHECK(q.g_idx.empty());
      ++down;
    } else {
      kept += !q.g_idx.empty();
    }
  }
  CHECK(down == 2);
  CHECK(kept == 12);

  // The fold itself on act-order down projections (groups from a random column order, as GPTQ
  // assigns them): the same logits up to the order of the down projection's sums.
  Model a = tiny_llama(7);
  compress::compress_model(a, recipe_for("rtn", 4), calib);
  std::mt19937 rng(14);
  for (auto& [name, q] : a.graph.quantized) {
    if (name.find("down_proj") == std::string::npos) continue;
    std::vector<int32_t> order(static_cast<size_t>(q.cols));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    q.g_idx.assign(order.size(), 0);
    for (size_t j = 0; j < order.size(); ++j) q.g_idx[order[j]] = static_cast<int32_t>(j / q.group_len());
  }
  // layer 1's groups are not one run of group_size columns each (33 and 31): left as it is
  QuantizedWeight& odd = a.graph.quantized.at("model.layers.1.mlp.down_proj.weight");
  for (int64_t c = 0; c < odd.cols; ++c) odd.g_idx[c] = static_cast<int32_t>(c == 32 ? 0 : c / 32);
  const std::vector<int32_t> odd_idx = odd.g_idx;
  Model b = a;
  CHECK(compress::absorb_act_order(b.graph) == 1);
  CHECK(b.graph.quantized.at("model.layers.0.mlp.down_proj.weight").g_idx.empty());
  CHECK(b.graph.quantized.at("model.layers.1.mlp.down_proj.weight").g_idx == odd_idx);
  CHECK(b.graph.quantized.at("model.layers.0.mlp.gate_proj.weight").scales !=
        a.graph.quantized.at("model.layers.0.mlp.gate_proj.weight").scales);  // rows reordered
  runtime::Session sa(a), sb(b);
  const auto la = sa.forward(ids).f32_values(), lb = sb.forward(ids).f32_values();
  REQUIRE(la.size() == lb.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < la.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(la[i]) - lb[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(la[i])));
  }
  MESSAGE("act-order fold: max logit difference " << diff << " (max |logit| " << scale << ")");
  // Only the down projections' sums change order: f32 rounding of at most K·2⁻²⁴ of each sum's
  // magnitude (K = 128 here: 8e-6), through two layers; a wrong row or column moves logits by O(1).
  CHECK(diff <= 1e-5 * scale);
}
