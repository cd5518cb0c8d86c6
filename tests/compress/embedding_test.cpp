// Quantized token embeddings on a small random Llama: EmbeddingQ equals dequantize() + a row
// gather; a tied head becomes a LinearQ over the one stored table, an untied head follows
// --include-head; the .llmc round trip is bit for bit and the size reduction is reported.
#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <random>

#include "compress/pipeline.hpp"
#include "formats/llmc.hpp"
#include "formats/safetensors.hpp"
#include "runtime/loader.hpp"
#include "runtime/session.hpp"
#include "tests/test_util.hpp"
#include "tests/compress/tiny_llama.hpp"

using namespace llmc;

namespace {

constexpr int64_t kVocab = test::kTinyVocab, kHidden = 80;  // 80 = 64 + 16: a short last group at g64

Model tiny_llama(uint64_t seed, bool tied) { return test::tiny_llama(seed, kHidden, tied); }
using test::random_tokens;

compress::Recipe recipe(int emb_bits, bool sym, bool include_head) {
  compress::Recipe r;
  compress::Stage s;
  s.quant.method = "rtn";
  compress::apply_scheme(s.quant, "w4a16");
  s.quant.group_size = 64;
  s.quant.symmetric = sym;
  s.quant.embedding_bits = emb_bits;
  s.include_head = include_head;
  r.stages.push_back(s);
  return r;
}

const Node* find_node(const Graph& g, const std::string& op) {
  for (auto& n : g.nodes)
    if (n.op == op) return &n;
  return nullptr;
}

std::string file_bytes(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

TEST_CASE("EmbeddingQ gathers dequantized rows, and a tied head reads the same stored table") {
  const std::string table = "model.embed_tokens.weight";
  for (int bits : {8, 4})
    for (bool sym : {true, false}) {
      CAPTURE(bits); CAPTURE(sym);
      Model m = tiny_llama(3, true);
      const Tensor dense = m.graph.weights.at(table).to_f32().clone();
      auto rep = compress::compress_model(m, recipe(bits, sym, false), {});
      REQUIRE(rep.embeddings.size() == 1);
      const auto& e = rep.embeddings[0];
      CHECK(e.tied_head);
      CHECK(e.bits == bits);
      CHECK(e.group_size == 64);
      // values + f16 scales (+ packed zero points) for 2 groups per row (64 + 16), against f16
      const int64_t groups = 2, zero_bytes = sym ? 0 : (bits == 4 ? (kVocab * groups + 1) / 2 : kVocab * groups);
      CHECK(e.bytes == kVocab * kHidden * bits / 8 + kVocab * groups * 2 + zero_bytes);
      CHECK(e.dense_bytes == kVocab * kHidden * 2);
      CHECK(e.rel_error > 0);
      CHECK(e.rel_error < (bits == 8 ? 0.01 : 0.15));

      // the graph: one quantized table, read by EmbeddingQ and by the head's LinearQ
      CHECK_FALSE(m.graph.weights.count(table));
      REQUIRE(m.graph.quantized.count(table));
      const Node* eq = find_node(m.graph, "EmbeddingQ");
      REQUIRE(eq);
      CHECK(eq->s("weight", "") == table);
      CHECK_FALSE(find_node(m.graph, "Embedding"));
      const Node& head = m.graph.nodes.back();
      CHECK(head.op == "LinearQ");
      CHECK(head.s("weight", "") == table);

      // EmbeddingQ against dequantize() + gather, bit for bit, and dequantize() against the table
      const QuantizedWeight& qw = m.graph.quantized.at(table);
      const std::vector<float> deq = dequantize(qw, table).f32_values();
      double max_err = 0;
      for (int64_t i = 0; i < kVocab * kHidden; ++i)
        max_err = std::max(max_err, std::fabs(static_cast<double>(deq[i]) - dense.data<float>()[i]));
      CHECK(max_err < (bits == 8 ? 0.003 : 0.04));
      const auto ids = random_tokens(23, 5);
      runtime::Session s(m);
      runtime::ValueMap v;
      v[m.graph.inputs[0].name] = Tensor::from_i64({static_cast<int64_t>(ids.size())}, ids);
      size_t k = 0;
      while (&m.graph.nodes[k] != eq) ++k;
      s.run_nodes(v, 0, k + 1);
      const Tensor& out = v.at(eq->outputs[0]);
      REQUIRE(out.shape() == Shape{static_cast<int64_t>(ids.size()), kHidden});
      for (size_t t = 0; t < ids.size(); ++t)
        for (int64_t j = 0; j < kHidden; ++j) REQUIRE(out.data<float>()[t * kHidden + j] == deq[ids[t] * kHidden + j]);
    }
}

TEST_CASE("quantized embeddings: logits match the dequantized model, and .llmc round-trips bit for bit") {
  auto dir = test::scratch_dir("embedding_q");
  const std::string table = "model.embed_tokens.weight";
  const auto ids = random_tokens(19, 7);
  Model m = tiny_llama(4, true);
  compress::compress_model(m, recipe(8, true, false), {});
  runtime::Session s(m);
  const Tensor a = s.forward(ids);

  // the same model with the table dequantized back to a dense weight (plain Embedding + Linear)
  Model d = m;
  d.graph.weights[table] = dequantize(d.graph.quantized.at(table), table);
  d.graph.quantized.erase(table);
  for (auto& n : d.graph.nodes)
    if (n.op == "EmbeddingQ") {
      n.op = "Embedding";
      n.inputs = {table, n.inputs[0]};
      n.attrs.clear();
    } else if (n.op == "LinearQ" && n.s("weight", "") == table) {
      n.op = "Linear";
      n.inputs = {n.inputs[0], table};
      n.attrs.clear();
    }
  runtime::Session sd(d);
  const Tensor b = sd.forward(ids);
  REQUIRE(a.shape() == b.shape());
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = a.data<float>()[i], y = b.data<float>()[i];
    num += (x - y) * (x - y);
    den += y * y;
  }
  CHECK(std::sqrt(num / den) < 1e-5);  // the dequantizing kernels only reorder f32 sums

  const std::string p1 = (dir / "a.llmc").string(), p2 = (dir / "b.llmc").string();
  formats::write_llmc(m, p1, {"f16"});
  Model again = tiny_llama(4, true);
  compress::compress_model(again, recipe(8, true, false), {});
  formats::write_llmc(again, p2, {"f16"});
  CHECK(file_bytes(p1) == file_bytes(p2));
  auto st = formats::read_safetensors(p1);
  CHECK(st.tensors.count(table + ".qweight") == 1);
  CHECK_FALSE(st.tensors.count(table));
  CHECK_FALSE(st.tensors.count("lm_head.weight"));
  Model back = runtime::load_model(p1);
  runtime::Session s2(back);
  const Tensor c = s2.forward(ids);
  REQUIRE(a.shape() == c.shape());
  CHECK(std::memcmp(a.raw(), c.raw(), a.nbytes()) == 0);
  const auto rep = nlohmann::json::parse(back.metadata.at("llmc.report"));
  CHECK(rep.at("embeddings").at(0).at("tied_head") == true);
}

TEST_CASE("untied head: --include-head quantizes it on its own; the embedding separately") {
  Model m = tiny_llama(5, false);
  auto rep = compress::compress_model(m, recipe(4, false, true), {});
  REQUIRE(rep.embeddings.size() == 1);
  CHECK_FALSE(rep.embeddings[0].tied_head);
  const Node& head = m.graph.nodes.back();
  CHECK(head.op == "LinearQ");
  CHECK(head.s("weight", "") == "lm_head.weight");
  CHECK(m.graph.quantized.count("lm_head.weight"));
  CHECK(m.graph.quantized.count("model.embed_tokens.weight"));
  CHECK(rep.layers.back().name == head.name);
  CHECK(rep.layers.back().bits < 5);
  // without --include-head the untied head stays dense
  Model k = tiny_llama(5, false);
  compress::compress_model(k, recipe(4, false, false), {});
  CHECK(k.graph.nodes.back().op == "Linear");
  CHECK(k.graph.weights.count("lm_head.weight"));
  Model e8 = tiny_llama(5, false);
  const auto j = compress::compress_model(e8, recipe(8, true, false), {}).to_json();
  CHECK(j.at("embeddings").at(0).at("bytes") < j.at("embeddings").at(0).at("dense_bytes"));
}

TEST_CASE("quantized embeddings refuse bad requests, naming the table") {
  compress::Recipe r = recipe(3, true, false);
  CHECK_THROWS_WITH_AS(compress::validate(r), doctest::Contains("embedding bits must be 4 or 8"), Error);
  Model m = tiny_llama(6, true);
  r = recipe(8, true, false);
  r.stages[0].quant.group_size = 48;  // two groups on 80 columns: not a multiple of 32
  r.stages[0].ignore = {".*"};
  CHECK_THROWS_WITH_AS(compress::compress_model(m, r, {}), doctest::Contains("model.embed_tokens.weight"), Error);
}
