// Mixed precision by layer sensitivity on a small random-weight Llama: the measured KL against an
// independent float64 recomputation, the bit allocation against its budget, and the pipeline end
// to end (held-out KL lower than all-INT4 within the bit budget).
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "compress/mixed_precision.hpp"
#include "compress/pipeline.hpp"
#include "compress/rtn.hpp"
#include "runtime/eval.hpp"
#include "runtime/session.hpp"
#include "tests/compress/tiny_llama.hpp"

using namespace llmc;

namespace {

using test::random_tokens;
using test::tiny_llama;

compress::QuantStage w4_g32() {
  compress::QuantStage q;
  q.method = "rtn";
  compress::apply_scheme(q, "w4a16");
  q.group_size = 32;
  return q;
}

// Reference: log-softmax in float64 from scratch, KL(p ‖ q) summed over the rows.
double kl_sum_f64(const Tensor& p_logits, const Tensor& q_logits) {
  const int64_t V = p_logits.dim(-1), n = p_logits.numel() / V;
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<double> lp(V), lq(V);
    double mp = -INFINITY, mq = -INFINITY;
    for (int64_t j = 0; j < V; ++j) {
      lp[j] = p_logits.data<float>()[i * V + j];
      lq[j] = q_logits.data<float>()[i * V + j];
      mp = std::max(mp, lp[j]);
      mq = std::max(mq, lq[j]);
    }
    double sp = 0, sq = 0;
    for (int64_t j = 0; j < V; ++j) sp += std::exp(lp[j] - mp), sq += std::exp(lq[j] - mq);
    for (int64_t j = 0; j < V; ++j) {
      const double a = lp[j] - mp - std::log(sp), b = lq[j] - mq - std::log(sq);
      total += std::exp(a) * (a - b);
    }
  }
  return total;
}

compress::LayerSensitivity layer(const std::string& name, int64_t rows, int64_t cols, double kl) {
  // INT4 g32 symmetric: rows·cols/2 bytes + one f16 scale per 32; INT8 per channel: rows·cols + 2·rows
  return {name, rows, cols, kl, rows * cols / 2 + rows * (cols / 32) * 2, rows * cols + 2 * rows};
}

double report_average_bits(const compress::CompressReport& r) {
  double bits = 0, params = 0;
  for (auto& l : r.layers) bits += l.bits * l.rows * l.cols, params += static_cast<double>(l.rows * l.cols);
  return bits / params;
}

compress::Recipe mixed_recipe(const std::string& method, double target) {
  compress::Recipe r;
  compress::Stage s;
  s.quant = w4_g32();
  s.quant.method = method;
  s.quant.target_bits = target;
  r.stages.push_back(s);
  r.calib_file = "random tokens";
  r.calib.nsamples = 4;
  r.calib.seqlen = 24;
  return r;
}

}  // namespace

TEST_CASE("measure_sensitivity: KL of one quantized layer equals a float64 recomputation") {
  const Model m = tiny_llama(11);
  const std::vector<std::vector<int64_t>> windows = {random_tokens(20, 1), random_tokens(17, 2)};
  auto sens = compress::measure_sensitivity(m, windows, w4_g32());
  REQUIRE(sens.size() == 14);
  for (auto& s : sens) {
    CAPTURE(s.name);
    CHECK(s.kl > 0);
    CHECK(s.bytes_low == s.rows * s.cols / 2 + s.rows * (s.cols / 32) * 2);
    CHECK(s.bytes_high == s.rows * s.cols + 2 * s.rows);
  }
  // g96: the 64-input layers hold one group, the 128-input ones 96 + a short group of 32
  compress::QuantStage g96 = w4_g32();
  g96.group_size = 96;
  for (auto& s : compress::measure_sensitivity(m, {random_tokens(12, 3)}, g96)) {
    CAPTURE(s.name);
    const int64_t groups = s.cols == 64 ? 1 : 2;
    CHECK(s.bytes_low == s.rows * s.cols / 2 + s.rows * groups * 2);
  }
  // A layer of each block (the second one re-runs from block 1's boundary).
  for (std::string name : {"model.layers.0.self_attn.k_proj", "model.layers.1.mlp.down_proj"}) {
    CAPTURE(name);
    Model q = tiny_llama(11);
    bool found = false;
    for (auto& n : q.graph.nodes) {
      if (n.name != name) continue;
      found = true;
      const std::string wname = n.inputs.at(1);
      Tensor w = q.graph.weights.at(wname);
      compress::QuantConfig qc;
      qc.bits = 4;
      qc.group_size = 32;
      q.graph.quantized[wname] = compress::quantize_rtn(w.data<float>(), w.dim(0), w.dim(1), qc, name);
      q.graph.weights.erase(wname);
      n.op = "LinearQ";
      n.inputs = {n.inputs[0]};
      n.attrs = {{"weight", wname}, {"act", std::string("none")}};
    }
    REQUIRE(found);
    runtime::Session so(m), sq(q);
    double total = 0;
    int64_t positions = 0;
    for (auto& w : windows) {
      so.reset();
      sq.reset();
      Tensor a = so.forward(w), b = sq.forward(w);
      total += kl_sum_f64(a, b);
      positions += static_cast<int64_t>(w.size());
    }
    const double expect = total / positions;
    const auto it = std::find_if(sens.begin(), sens.end(), [&](auto& s) { return s.name == name; });
    REQUIRE(it != sens.end());
    CHECK(expect > 0);
    CHECK(std::fabs(it->kl - expect) <= 1e-9 * expect);
  }
}

TEST_CASE("choose_bits: fills the budget greedily by KL per extra byte, deterministically") {
  std::vector<compress::LayerSensitivity> ls = {
      layer("a.q", 64, 64, 0.010), layer("a.k", 32, 64, 0.020), layer("a.v", 32, 64, 0.001),
      layer("b.up", 128, 64, 0.030), layer("b.down", 64, 128, 0.004), layer("b.gate", 128, 64, 0.002)};
  std::map<std::string, int> none;
  const double all4 = compress::average_bits(ls, none);
  CHECK(all4 == doctest::Approx(4.5));
  std::map<std::string, int> all8_map;
  for (auto& l : ls) all8_map[l.name] = 8;
  const double all8 = compress::average_bits(ls, all8_map);

  for (double target : {4.5, 4.8, 5.3, 6.0, 6.7, 7.5, 8.1}) {
    CAPTURE(target);
    auto bits = compress::choose_bits(ls, target);
    REQUIRE(bits.size() == ls.size());
    CHECK(compress::average_bits(ls, bits) <= target);
    for (auto& l : ls) {
      CHECK((bits[l.name] == 4 || bits[l.name] == 8));
      if (bits[l.name] == 8) continue;
      auto more = bits;
      more[l.name] = 8;
      CHECK(compress::average_bits(ls, more) > target);  // no further upgrade fits
    }
    // the same answer whatever the input order
    auto rev = ls;
    std::reverse(rev.begin(), rev.end());
    CHECK(compress::choose_bits(rev, target) == bits);
  }
  // a.k has the highest KL per extra byte (0.02 over 32·64/2 − 32·2·2 + 64 bytes): first upgraded.
  const double one_k = compress::average_bits(ls, {{"a.k", 8}});
  auto first = compress::choose_bits(ls, one_k);
  CHECK(first.at("a.k") == 8);
  for (auto& [n, b] : first)
    if (n != "a.k") CHECK(b == 4);
  // Ties by name: equal shapes and KL, room for one.
  std::vector<compress::LayerSensitivity> tie = {layer("z", 64, 64, 0.5), layer("m", 64, 64, 0.5), layer("x", 64, 64, 0.1)};
  auto t = compress::choose_bits(tie, compress::average_bits(tie, {{"z", 8}}));
  CHECK(t.at("m") == 8);
  CHECK(t.at("z") == 4);
  CHECK(t.at("x") == 4);
  // At or above the all-8 average: everything at 8.
  for (auto& [n, b] : compress::choose_bits(ls, all8)) CHECK(b == 8);
  for (auto& [n, b] : compress::choose_bits(ls, 16)) CHECK(b == 8);
}

TEST_CASE("choose_bits / compress_model: a target below the all-INT4 average is an error naming both") {
  std::vector<compress::LayerSensitivity> ls = {layer("a", 64, 64, 0.1), layer("b", 64, 128, 0.2)};
  try {
    compress::choose_bits(ls, 4.25, "test");
    FAIL("no error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("4.2500") != std::string::npos);
    CHECK(msg.find("4.5000") != std::string::npos);
  }
  Model m = tiny_llama(3);
  try {
    compress::compress_model(m, mixed_recipe("rtn", 4.4), random_tokens(400, 5));
    FAIL("no error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("4.4000") != std::string::npos);
    CHECK(msg.find("4.5000") != std::string::npos);
    CHECK(msg.find("tiny") != std::string::npos);
  }
  // Validation: only w4a16 with rtn or gptq.
  auto r = mixed_recipe("awq", 6);
  CHECK_THROWS_AS(compress::validate(r), Error);
  r = mixed_recipe("rtn", 6);
  compress::apply_scheme(r.stages[0].quant, "w8a16");
  CHECK_THROWS_AS(compress::validate(r), Error);
  r = mixed_recipe("rtn", -1);
  CHECK_THROWS_AS(compress::validate(r), Error);
  r = mixed_recipe("rtn", 6);
  r.calib_file.clear();
  CHECK_THROWS_AS(compress::validate(r), Error);  // sensitivity needs calibration data
  CHECK(mixed_recipe("gptq", 6).to_json()["stages"][0]["quantize"]["target_bits"] == 6.0);
}

TEST_CASE("compress_model with target_bits 6: within budget, and closer to the original than all-INT4") {
  const auto calib = random_tokens(400, 5);
  const auto held_out = random_tokens(160, 77);
  const Model original = tiny_llama(4);
  runtime::Session ref(original);
  runtime::EvalOptions eo;
  eo.ctx = 32;

  Model all4 = original;
  auto rep4 = compress::compress_model(all4, mixed_recipe("rtn", 0), calib);
  runtime::Session s4(all4);
  const double kl4 = runtime::evaluate(s4, held_out, eo, &ref).mean_kl();

  for (std::string method : {"rtn", "gptq"}) {
    CAPTURE(method);
    Model mixed = original;
    auto rep = compress::compress_model(mixed, mixed_recipe(method, 6.0), calib);
    REQUIRE(rep.layers.size() == 14);
    const double avg = report_average_bits(rep);
    CHECK(avg <= 6.0);
    CHECK(avg >= report_average_bits(rep4));
    CHECK(report_average_bits(rep4) == doctest::Approx(4.5));
    auto sens = nlohmann::json::parse(mixed.metadata.at("llmc.sensitivity"));
    REQUIRE(sens.size() == 14);
    int upgraded = 0;
    for (size_t i = 0; i < 14; ++i) {
      const auto& l = rep.layers[i];
      CAPTURE(l.name);
      auto e = std::find_if(sens.begin(), sens.end(), [&](auto& x) { return x["name"] == l.name; });
      REQUIRE(e != sens.end());
      const int b = (*e)["bits"];
      upgraded += b == 8;
      CHECK(l.bits == doctest::Approx(b == 8 ? 8.0 + 16.0 / l.cols : 4.5));
      CHECK(l.method.find(b == 8 ? "w8a16 per-channel" : "w4a16 g32") != std::string::npos);
    }
    CHECK(upgraded > 0);
    CHECK(upgraded < 14);
    CHECK(nlohmann::json::parse(mixed.metadata.at("llmc.recipe"))["stages"][0]["quantize"]["target_bits"] == 6.0);
    if (method == "rtn") {
      runtime::Session sm(mixed);
      const double klm = runtime::evaluate(sm, held_out, eo, &ref).mean_kl();
      CAPTURE(kl4);
      CAPTURE(klm);
      CHECK(klm > 0);
      CHECK(klm < kl4);
    }
  }
}
