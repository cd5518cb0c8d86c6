// Llama GGUF -> HF tests: config, renamed and un-permuted weights and tokenizer of a tiny random
// Llama written like convert_hf_to_gguf.py, and of the real SmolLM2-135M-Instruct Q4_1 GGUF
// (references from gguf-py via tests/fixtures/make_gguf_fixtures.py).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "formats/gguf.hpp"
#include "formats/gguf_llama.hpp"
#include "tests/test_util.hpp"

using namespace llmc;
using namespace llmc::formats;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path fixture(const std::string& name) { return test::fixtures_dir() / "gguf" / name; }
json load_json(const fs::path& p) { return json::parse(read_text_file(p.string())); }

std::vector<float> load_f32(const fs::path& p) {
  std::string bytes = read_text_file(p.string());
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0 && !std::isnan(a); }

int64_t bit_mismatches(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return -1;
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += !same_bits(a[i], b[i]);
  return n;
}

// Compares a produced HF config with the expected one key by key (floats as f32, since GGUF
// stores them as f32).
void check_config(const json& got, const json& want) {
  for (auto& [k, v] : want.items()) {
    CAPTURE(k);
    REQUIRE(got.contains(k));
    if (v.is_number_float())
      CHECK(static_cast<float>(got[k].get<double>()) == static_cast<float>(v.get<double>()));
    else
      CHECK(got[k] == v);
  }
}

double f64_sum(const Tensor& t) {
  double s = 0;
  const float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) s += p[i];
  return s;
}

fs::path smollm2_path() { return test::models_dir() / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"; }

bool have_smollm2() {
  if (fs::exists(smollm2_path())) return true;
  MESSAGE("skipped: " << smollm2_path().string() << " is absent (run scripts/fetch_models.sh)");
  return false;
}

}  // namespace

TEST_CASE("gguf llama: config of the tiny random Llama equals the HF config it was written from") {
  const json man = load_json(fixture("llama_tiny.json"));
  GgufFile f = read_gguf(fixture("llama_tiny.gguf").string());
  json cfg = gguf_llama_config(f);
  check_config(cfg, man["config"]);
  CHECK(cfg["rms_norm_eps"].get<double>() == 1e-05);  // shortest decimal of the stored f32
}

TEST_CASE("gguf llama: weights under HF names, Q/K un-permuted to HF layout") {
  const json man = load_json(fixture("llama_tiny.json"));
  GgufFile f = read_gguf(fixture("llama_tiny.gguf").string());
  auto w = gguf_llama_weights(f);
  REQUIRE(w.size() == man["names"].size());
  for (auto& [gname, hfname] : man["names"].items()) {
    const std::string hf = hfname.get<std::string>();
    CAPTURE(hf);
    REQUIRE(w.count(hf) == 1);
    const Tensor& t = w.at(hf);
    CHECK(t.dtype() == DType::F32);
    CHECK(t.shape() == f.tensor(gname).shape());
    if (man["qk_refs"].contains(hf)) {
      // the reference is the HF-layout weight itself (never permuted), so this checks the inverse
      const std::vector<float> ref = load_f32(fixture("llama_tiny/" + hf + ".f32"));
      CHECK(t.shape() == man["qk_refs"][hf].get<Shape>());
      CHECK(bit_mismatches(t.f32_values(), ref) == 0);
      CHECK(bit_mismatches(t.f32_values(), gguf_tensor_f32(f, gname).f32_values()) > 0);  // it did move rows
    } else {
      CHECK(bit_mismatches(t.f32_values(), gguf_tensor_f32(f, gname).f32_values()) == 0);
    }
  }
}

TEST_CASE("gguf llama: un-permute inverts convert_hf_to_gguf's permute on a hand-sized case") {
  // 2 heads of dim 4, 1 column: HF rows [h0: a0 a1 b0 b1 | h1: c0 c1 d0 d1] (rotate_half pairs
  // (a_j, b_j)) are stored by the converter interleaved as [a0 b0 a1 b1 | c0 d0 c1 d1].
  Tensor g = Tensor::from_f32({8, 1}, {10, 20, 11, 21, 30, 40, 31, 41});
  CHECK(llama_unpermute_qk(g, 2, "t").f32_values() == std::vector<float>{10, 11, 20, 21, 30, 31, 40, 41});
  CHECK_THROWS_WITH_AS(llama_unpermute_qk(g, 3, "t"), doctest::Contains("cannot be split into 3 heads"), Error);
}

TEST_CASE("gguf llama: the SentencePiece-style tokenizer description") {
  const json man = load_json(fixture("llama_tiny.json"));
  GgufFile f = read_gguf(fixture("llama_tiny.gguf").string());
  json got = gguf_tokenizer_json(f);
  json want = man["tokenizer"];
  REQUIRE(got["scores"].size() == want["scores"].size());
  for (size_t i = 0; i < want["scores"].size(); ++i)
    CHECK(static_cast<float>(got["scores"][i].get<double>()) == static_cast<float>(want["scores"][i].get<double>()));
  got.erase("scores");
  want.erase("scores");
  CHECK(got == want);
}

TEST_CASE("gguf llama: missing keys and non-Llama files are named") {
  auto dir = test::scratch_dir("gguf_llama_err");
  // drop llama.embedding_length from the tiny model by renaming the key in place (same length)
  std::string bytes = read_text_file(fixture("llama_tiny.gguf").string());
  const std::string key = "llama.embedding_length";
  size_t at = bytes.find(key);
  REQUIRE(at != std::string::npos);
  bytes.replace(at, key.size(), "llama.embedding_lengtX");
  std::ofstream(dir / "nokey.gguf", std::ios::binary) << bytes;
  GgufFile f = read_gguf((dir / "nokey.gguf").string());
  CHECK_THROWS_WITH_AS(gguf_llama_config(f), doctest::Contains("missing metadata key 'llama.embedding_length'"), Error);
  CHECK_THROWS_WITH_AS(gguf_llama_weights(f), doctest::Contains("missing metadata key 'llama.embedding_length'"), Error);
  GgufFile q = read_gguf(fixture("quants.gguf").string());
  CHECK_THROWS_WITH_AS(gguf_llama_config(q), doctest::Contains("general.architecture is 'test', not 'llama'"), Error);
}

TEST_CASE("gguf llama: SmolLM2-135M-Instruct metadata, config and tokenizer") {
  if (!have_smollm2()) return;
  const json man = load_json(fixture("smollm2.json"));
  GgufFile f = read_gguf(smollm2_path().string());
  CHECK(f.version == man["version"].get<uint32_t>());
  CHECK(f.alignment == man["alignment"].get<uint64_t>());
  CHECK(f.data_offset == man["data_offset"].get<uint64_t>());
  CHECK(f.metadata.size() == man["kv_count"].get<size_t>());
  CHECK(f.tensors.size() == man["tensor_count"].get<size_t>());
  for (auto& [k, v] : man["metadata"].items()) {
    CAPTURE(k);
    if (v.is_number_float())
      CHECK(static_cast<float>(f.get_float(k)) == static_cast<float>(v.get<double>()));
    else
      CHECK(f.at(k).value == v);
  }
  std::map<std::string, int> counts;
  for (auto& t : f.tensors) counts[ggml_type_name(t.type)]++;
  CHECK(json(counts) == man["type_counts"]);
  MESSAGE("SmolLM2 GGUF tensor types: " << json(counts).dump());

  check_config(gguf_llama_config(f), man["hf_config"]);

  json tok = gguf_tokenizer_json(f);
  const json& want = man["tokenizer"];
  CHECK(tok["type"] == "bpe");
  CHECK(tok["pre"] == "smollm");
  CHECK(tok["vocab"].size() == want["vocab_size"].get<size_t>());
  CHECK(tok["merges"].size() == want["merge_count"].get<size_t>());
  CHECK(tok["token_types"].size() == want["vocab_size"].get<size_t>());
  for (size_t i = 0; i < want["token_index"].size(); ++i) {
    size_t id = want["token_index"][i];
    CHECK(tok["vocab"][id] == want["tokens"][i]);
    CHECK(tok["token_types"][id] == want["token_types"][i]);
  }
  for (size_t i = 0; i < want["merge_index"].size(); ++i)
    CHECK(tok["merges"][want["merge_index"][i].get<size_t>()] == want["merges"][i]);
  CHECK(tok["bos_id"] == 1);
  CHECK(tok["eos_id"] == 2);
  CHECK(tok["unk_id"] == 0);
  CHECK(tok["pad_id"] == 2);
  CHECK(tok["add_bos"] == false);
  CHECK(tok["scores"].empty());
  CHECK(tok["chat_template"].get<std::string>().find("<|im_start|>") != std::string::npos);
}

TEST_CASE("gguf llama: every SmolLM2 tensor dequantizes to gguf-py's sums and samples") {
  if (!have_smollm2()) return;
  const json man = load_json(fixture("smollm2.json"));
  GgufFile f = read_gguf(smollm2_path().string());
  REQUIRE(man["tensors"].size() == f.tensors.size());
  int sampled = 0;
  for (auto& e : man["tensors"]) {
    const std::string name = e["name"];
    CAPTURE(name);
    const GgufTensorInfo& info = f.tensor(name);
    CHECK(info.dims == e["dims"].get<std::vector<uint64_t>>());
    CHECK(info.type == e["ggml_type"].get<uint32_t>());
    Tensor t = gguf_tensor_f32(f, name);
    // f64 sums of the same f32 values in another order (numpy is pairwise) differ by ~n*2^-53
    // of the L1 mass: far below 1e-6 relative
    const double want = e["sum"];
    CHECK(std::fabs(f64_sum(t) - want) <= 1e-6 * std::fabs(want));
    if (e.contains("sample_index")) {
      ++sampled;
      const float* p = t.data<float>();
      int64_t mismatches = 0;
      for (size_t i = 0; i < e["sample_index"].size(); ++i)
        mismatches += !same_bits(p[e["sample_index"][i].get<int64_t>()], static_cast<float>(e["sample_value"][i].get<double>()));
      CHECK(mismatches == 0);
    }
  }
  CHECK(sampled == 9);
}

TEST_CASE("gguf llama: SmolLM2 weights under HF names with Q/K in HF layout") {
  if (!have_smollm2()) return;
  const json man = load_json(fixture("smollm2.json"));
  GgufFile f = read_gguf(smollm2_path().string());
  auto w = gguf_llama_weights(f);
  CHECK(w.size() == 272);
  CHECK(w.count("lm_head.weight") == 0);  // tied
  CHECK(w.at("model.embed_tokens.weight").shape() == Shape{49152, 576});
  CHECK(w.at("model.layers.29.mlp.down_proj.weight").shape() == Shape{576, 1536});
  CHECK(w.at("model.layers.0.self_attn.k_proj.weight").shape() == Shape{192, 576});
  CHECK(w.at("model.norm.weight").shape() == Shape{576});
  for (auto& e : man["tensors"]) {
    if (!e.contains("hf_sample_value")) continue;
    const std::string name = e["name"];
    CAPTURE(name);
    const std::string hf = name == "blk.0.attn_q.weight" ? "model.layers.0.self_attn.q_proj.weight"
                                                         : "model.layers.0.self_attn.k_proj.weight";
    const Tensor& t = w.at(hf);
    const float* p = t.data<float>();
    int64_t mismatches = 0;
    for (size_t i = 0; i < e["sample_index"].size(); ++i)
      mismatches += !same_bits(p[e["sample_index"][i].get<int64_t>()], static_cast<float>(e["hf_sample_value"][i].get<double>()));
    CHECK(mismatches == 0);
    const double want = e["sum"];
    CHECK(std::fabs(f64_sum(t) - want) <= 1e-6 * std::fabs(want));
  }
}
