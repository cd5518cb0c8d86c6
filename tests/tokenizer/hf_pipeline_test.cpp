// Small tokenizer.json pipelines (trained by the fixture generator with HF tokenizers) covering the
// normalizers, pre-tokenizers, models, decoders, post-processors and added-token rules the real
// models do not use; each is checked against HF's ids and decodes. Needs no downloaded model.
#include <doctest/doctest.h>

#include "runtime/ir/error.hpp"
#include "runtime/tokenizer/tokenizer.hpp"
#include "tests/tokenizer/tokenizer_test_util.hpp"

using nlohmann::json;
namespace t = llmc::test;

TEST_CASE("HF pipelines: small trained tokenizers vs HF tokenizers") {
  const json fx = t::tokenizer_fixture("small_pipelines.json");
  REQUIRE(fx["pipelines"].size() == 5);
  for (const auto& [name, p] : fx["pipelines"].items()) {
    SUBCASE(name.c_str()) {
      auto tok = llmc::runtime::tokenizer_from_hf_json(p["tokenizer_json"], nullptr);
      for (const json& c : p["cases"]) {
        const std::string text = c["text"].get<std::string>();
        INFO(name << " text: " << text);
        const auto ids = tok->encode(text, true);
        CHECK(ids == c["ids"].get<std::vector<int64_t>>());
        CHECK(tok->encode(text, false) == c["ids_no_special"].get<std::vector<int64_t>>());
        CHECK(tok->decode(ids, true) == c["decode"].get<std::string>());
        CHECK(tok->decode(ids, false) == c["decode_keep_special"].get<std::string>());
        llmc::runtime::StreamDecoder stream(*tok, true);
        std::string streamed;
        for (int64_t id : ids) streamed += stream.push(id);
        streamed += stream.finish();
        CHECK(streamed == c["decode"].get<std::string>());
      }
    }
  }
}

TEST_CASE("HF pipelines: malformed tokenizer.json raises Error naming the part") {
  const json fx = t::tokenizer_fixture("small_pipelines.json");
  json tj = fx["pipelines"]["metaspace_byte_fallback"]["tokenizer_json"];
  json bad = tj;
  bad["normalizer"] = {{"type", "Precompiled"}};
  CHECK_THROWS_WITH_AS(llmc::runtime::tokenizer_from_hf_json(bad), doctest::Contains("Precompiled"), llmc::Error);
  bad = tj;
  bad["model"]["type"] = "Unigram";
  CHECK_THROWS_WITH_AS(llmc::runtime::tokenizer_from_hf_json(bad), doctest::Contains("Unigram"), llmc::Error);
  bad = tj;
  bad["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  CHECK_THROWS_WITH_AS(llmc::runtime::tokenizer_from_hf_json(bad), doctest::Contains("(unclosed"), llmc::Error);
  bad = tj;
  bad.erase("model");
  CHECK_THROWS_AS(llmc::runtime::tokenizer_from_hf_json(bad), llmc::Error);
  auto tok = llmc::runtime::tokenizer_from_hf_json(tj);
  CHECK_THROWS_WITH_AS(tok->decode({tok->vocab_size()}), doctest::Contains("out of range"), llmc::Error);
}

TEST_CASE("load_tokenizer: tokenizer.json with transformers' tokenizer_config rules") {
  const json fx = t::tokenizer_fixture("small_pipelines.json");
  REQUIRE(fx["configs"].size() == 5);
  for (const json& c : fx["configs"]) {
    const std::string name = c["pipeline"].get<std::string>();
    INFO(name << " with " << c["tokenizer_config"].dump());
    // as the HF loader hands it over: tokenizer.json content, tokenizer_config.json text in metadata
    llmc::Model model;
    model.source = "test/" + name;
    model.tokenizer = fx["pipelines"][name]["tokenizer_json"];
    model.metadata["tokenizer_config"] = c["tokenizer_config"].dump();
    auto tok = llmc::runtime::load_tokenizer(model);
    // and wrapped, as a .llmc file may carry both
    llmc::Model wrapped;
    wrapped.tokenizer = {{"tokenizer", model.tokenizer}, {"tokenizer_config", c["tokenizer_config"]}};
    auto tok2 = llmc::runtime::load_tokenizer(wrapped);
    for (auto* tk : {tok.get(), tok2.get()}) {
      CHECK(tk->bos_id() == (c["bos_id"].is_null() ? std::nullopt : std::optional<int64_t>(c["bos_id"].get<int64_t>())));
      CHECK(tk->eos_id() == (c["eos_id"].is_null() ? std::nullopt : std::optional<int64_t>(c["eos_id"].get<int64_t>())));
      for (const json& k : c["cases"]) {
        INFO("text: " << k["text"].get<std::string>());
        const auto ids = tk->encode(k["text"].get<std::string>(), true);
        CHECK(ids == k["ids"].get<std::vector<int64_t>>());
        CHECK(tk->decode(ids, true) == k["decode"].get<std::string>());
        CHECK(tk->decode(ids, false) == k["decode_keep_special"].get<std::string>());
      }
    }
  }
  llmc::Model empty;
  empty.source = "nowhere.gguf";
  CHECK_THROWS_WITH_AS(llmc::runtime::load_tokenizer(empty), doctest::Contains("nowhere.gguf"), llmc::Error);
  llmc::Model bad_config;
  bad_config.tokenizer = fx["pipelines"]["metaspace_byte_fallback"]["tokenizer_json"];
  bad_config.metadata["tokenizer_config"] = "{not json";
  CHECK_THROWS_AS(llmc::runtime::load_tokenizer(bad_config), llmc::Error);
}
