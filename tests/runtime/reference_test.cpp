// Reference equivalence: small random-weight Llama, GPT-2 and BERT checkpoints and ONNX exports,
// loaded through runtime::load_model, against transformers / onnxruntime outputs stored by
// tests/fixtures/make_fixtures.py.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "formats/safetensors.hpp"
#include "runtime/loader.hpp"
#include "runtime/session.hpp"
#include "tests/test_util.hpp"

namespace fs = std::filesystem;
using llmc::Tensor;

namespace {

fs::path fixture(const std::string& name) { return llmc::test::fixtures_dir() / "models" / name; }

std::map<std::string, Tensor> reference(const std::string& name) {
  return llmc::formats::read_safetensors(fixture(name + ".ref.safetensors").string()).tensors;
}

// f32 accumulation over these widths (≤ 300 terms per dot product, a handful of layers) lands
// orders of magnitude under 1e-4 of the output's scale; a wrong op lands orders above.
constexpr double kRelTol = 1e-4;

// Checks max |got - want| ≤ kRelTol · max |want| over rows [row0, row0 + rows) of `want`;
// returns the relative error.
double expect_close(const Tensor& got, const Tensor& want, int64_t row0, int64_t rows, const std::string& what) {
  const int64_t cols = want.dim(-1);
  REQUIRE_MESSAGE(got.numel() == rows * cols, what << ": got shape " << llmc::shape_str(got.shape()));
  REQUIRE(got.dim(-1) == cols);
  auto g = got.to_f32().f32_values();
  auto w = want.f32_values();
  double scale = 0, err = 0;
  for (int64_t i = 0; i < rows * cols; ++i) {
    const double ref = w[(row0 * cols) + i];
    scale = std::max(scale, std::abs(ref));
    err = std::max(err, std::abs(static_cast<double>(g[i]) - ref));
    REQUIRE_MESSAGE(std::isfinite(g[i]), what << ": non-finite output at " << i);
  }
  REQUIRE(scale > 0.5);  // the fixtures are scaled so that outputs are O(1), never near zero
  INFO(what << ": max |delta| = " << err << ", max |ref| = " << scale);
  CHECK(err <= kRelTol * scale);
  return err / scale;
}

std::vector<int64_t> ids_range(const Tensor& ids, int64_t begin, int64_t end) {
  auto v = ids.i64_values();
  return {v.begin() + begin, v.begin() + end};
}

// One prefill pass over the first prompt_len ids, then one KV-cached step per remaining id.
void check_decoder(const std::string& name, const std::string& arch) {
  llmc::Model model = llmc::runtime::load_model(fixture(name).string());
  CHECK(model.arch == arch);
  auto ref = reference(name);
  const Tensor& ids = ref.at("input_ids");
  const Tensor& prefill = ref.at("prefill_logits");
  const Tensor& decode = ref.at("decode_logits");
  const int64_t prompt = prefill.dim(0), steps = decode.dim(0);
  REQUIRE(ids.numel() == prompt + steps);

  llmc::runtime::Session s(model);
  Tensor logits = s.forward(ids_range(ids, 0, prompt));
  CHECK(logits.shape() == llmc::Shape{prompt, prefill.dim(1)});
  const double prefill_err = expect_close(logits, prefill, 0, prompt, name + " prefill");
  double decode_err = 0;
  for (int64_t t = 0; t < steps; ++t) {
    Tensor step = s.forward(ids_range(ids, prompt + t, prompt + t + 1));
    decode_err = std::max(decode_err, expect_close(step, decode, t, 1, name + " decode step " + std::to_string(t)));
  }
  CHECK(s.past() == prompt + steps);
  MESSAGE(name << ": relative max error prefill " << prefill_err << ", decode " << decode_err);

  // After reset the session starts over: the prefill must match again, not continue at position 28.
  s.reset();
  expect_close(s.forward(ids_range(ids, 0, prompt)), prefill, 0, prompt, name + " prefill after reset");
}

void check_onnx(const std::string& name, const std::string& output) {
  llmc::Model model = llmc::runtime::load_model(fixture(name + ".onnx").string());
  auto ref = reference(name);
  auto ids = ref.at("input_ids").i64_values();
  const Tensor& want = ref.at(output);
  llmc::runtime::Session s(model);
  auto out = s.run({{"input_ids", Tensor::from_i64({1, static_cast<int64_t>(ids.size())}, ids)}});
  REQUIRE(out.count(output));
  CHECK(out.at(output).shape() == llmc::Shape{1, want.dim(0), want.dim(1)});
  MESSAGE(name << ": relative max error " << expect_close(out.at(output), want, 0, want.dim(0), name + " vs onnxruntime"));
}

// A scratch copy of a fixture checkpoint whose config.json is edited by `edit`.
fs::path edited_copy(const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
  fs::path dir = llmc::test::scratch_dir("reference_" + name);
  fs::copy_file(fixture(name) / "model.safetensors", dir / "model.safetensors");
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(fixture(name) / "config.json"));
  edit(cfg);
  std::ofstream(dir / "config.json") << cfg.dump(1);
  return dir;
}

std::string load_error(const fs::path& dir) {
  try {
    llmc::runtime::load_model(dir.string());
  } catch (const llmc::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("reference: Llama with GQA and untied head matches transformers, prefill and 16 cached steps") {
  check_decoder("llama_gqa", "llama");
}

TEST_CASE("reference: Llama with tied embeddings matches transformers, prefill and 16 cached steps") {
  check_decoder("llama_tied", "llama");
}

TEST_CASE("reference: GPT-2 matches transformers, prefill and 16 cached steps") { check_decoder("gpt2", "gpt2"); }

TEST_CASE("reference: BERT last_hidden_state matches transformers") {
  llmc::Model model = llmc::runtime::load_model(fixture("bert").string());
  CHECK(model.arch == "bert");
  auto ref = reference("bert");
  const Tensor& want = ref.at("last_hidden_state");
  llmc::runtime::Session s(model);
  Tensor got = s.forward(ref.at("input_ids").i64_values());
  CHECK(got.shape() == want.shape());
  MESSAGE("bert: relative max error " << expect_close(got, want, 0, want.dim(0), "bert last_hidden_state"));
}

TEST_CASE("reference: ONNX exports match onnxruntime") {
  SUBCASE("llama") { check_onnx("llama_onnx", "logits"); }
  SUBCASE("gpt2") { check_onnx("gpt2_onnx", "logits"); }
  SUBCASE("bert") { check_onnx("bert_onnx", "last_hidden_state"); }
}

TEST_CASE("builders: bad configs and weights raise errors naming the file and the field or tensor") {
  SUBCASE("gpt2 without n_head") {
    std::string msg = load_error(edited_copy("gpt2", [](nlohmann::json& c) { c.erase("n_head"); }));
    CHECK(msg.find("config.json") != std::string::npos);
    CHECK(msg.find("n_head") != std::string::npos);
  }
  SUBCASE("gpt2 with an unsupported activation") {
    std::string msg = load_error(edited_copy("gpt2", [](nlohmann::json& c) { c["activation_function"] = "relu"; }));
    CHECK(msg.find("relu") != std::string::npos);
  }
  SUBCASE("gpt2 whose n_embd disagrees with the weights") {
    std::string msg = load_error(edited_copy("gpt2", [](nlohmann::json& c) { c["n_embd"] = 32; }));
    CHECK(msg.find("config.json") != std::string::npos);
    CHECK(msg.find("h.0.attn.c_attn.weight") != std::string::npos);
    CHECK(msg.find("expected") != std::string::npos);
  }
  SUBCASE("bert whose intermediate_size disagrees with the weights") {
    std::string msg = load_error(edited_copy("bert", [](nlohmann::json& c) { c["intermediate_size"] = 100; }));
    CHECK(msg.find("encoder.layer.0.intermediate.dense.weight") != std::string::npos);
  }
  SUBCASE("bert with relative position embeddings") {
    std::string msg =
        load_error(edited_copy("bert", [](nlohmann::json& c) { c["position_embedding_type"] = "relative_key"; }));
    CHECK(msg.find("position_embedding_type") != std::string::npos);
  }
}
