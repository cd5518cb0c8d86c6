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
