// Byte-level BPE (SmolLM2's vocabulary and merges from its GGUF) against HF tokenizers on the whole
// of wiki.test.raw, for three pre-tokenizers, built both from the GGUF description and from the
// tokenizer.json HF used (fixtures by tests/fixtures/make_tokenizer_fixtures.py).
#include <doctest/doctest.h>

#include "formats/gguf.hpp"
#include "formats/gguf_llama.hpp"
#include "runtime/ir/error.hpp"
#include "runtime/tokenizer/tokenizer.hpp"
#include "tests/tokenizer/tokenizer_test_util.hpp"

using llmc::runtime::Tokenizer;
using nlohmann::json;
namespace t = llmc::test;

namespace {

const std::filesystem::path kGguf = t::models_dir() / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf";

const json& description() {
  static const json d = llmc::formats::gguf_tokenizer_json(llmc::formats::read_gguf(kGguf.string()));
  return d;
}

// The tokenizer.json HF encoded with: the fixture's pipeline plus the GGUF's vocab and merges.
json tokenizer_json(const json& fx) {
  json tj = fx["tokenizer_json_without_vocab"];
  json vocab = json::object();
  const json& v = description()["vocab"];
  for (size_t i = 0; i < v.size(); ++i) vocab[v[i].get<std::string>()] = i;
  tj["model"]["vocab"] = std::move(vocab);
  tj["model"]["merges"] = description()["merges"];
  return tj;
}

void check_cases(const Tokenizer& tok, const json& fx) {
  for (const json& c : fx["cases"]) {
    const std::string text = c["text"].get<std::string>();
    INFO("text: " << text);
    const auto ids = tok.encode(text, true);
    CHECK(ids == c["ids"].get<std::vector<int64_t>>());
    CHECK(tok.decode(ids, true) == c["decode"].get<std::string>());
    CHECK(tok.decode(ids, false) == c["decode_keep_special"].get<std::string>());
    // streaming gives the same text, piece by piece
    llmc::runtime::StreamDecoder stream(tok, false);
    std::string streamed;
    for (int64_t id : ids) streamed += stream.push(id);
    streamed += stream.finish();
    CHECK(streamed == c["decode_keep_special"].get<std::string>());
  }
  for (const json& p : fx["partial_decode"]) CHECK(tok.decode(p["ids"].get<std::vector<int64_t>>()) == p["decode"].get<std::string>());
}

void check_wiki(const Tokenizer& tok, const json& fx, const std::string& wiki) {
  const auto ids = tok.encode(wiki, true);
  const auto head = fx["head"].get<std::vector<int64_t>>();
  const std::vector<int64_t> mine_head(ids.begin(), ids.begin() + std::min(ids.size(), head.size()));
  INFO("first difference in the first ids at " << t::first_diff(mine_head, head));
  CHECK(mine_head == head);
  CHECK(ids.size() == fx["count"].get<size_t>());
  CHECK(t::sha256_ids(ids) == fx["sha256"].get<std::string>());
  CHECK(tok.decode(ids, false) == wiki);  // byte-level BPE round-trips exactly
}

}  // namespace

TEST_CASE("byte-level BPE: SmolLM2 GGUF vs HF tokenizers on wiki.test.raw") {
  if (!std::filesystem::exists(kGguf)) {
    MESSAGE("skipped: " << kGguf << " is absent (scripts/fetch_models.sh fetches it)");
    return;
  }
  if (!std::filesystem::exists(t::wiki_test())) {
    MESSAGE("skipped: " << t::wiki_test() << " is absent");
    return;
  }
  const std::string wiki = t::read_file(t::wiki_test());
  for (const char* name : {"smollm", "gpt2", "llama3"}) {
    const json fx = t::tokenizer_fixture(std::string("smollm2_") + name + ".json");
    SUBCASE((std::string("from the GGUF description, pre ") + fx["gguf_pre"].get<std::string>()).c_str()) {
      json d = description();
      CHECK(d["pre"] == "smollm");  // what the file says; the other two are the same vocab re-split
      d["pre"] = fx["gguf_pre"];
      llmc::Model model;  // as the GGUF loader hands the description over
      model.tokenizer = d;
      auto tok = llmc::runtime::load_tokenizer(model);
      CHECK(tok->vocab_size() == 49152);
      CHECK(tok->bos_id() == 1);
      CHECK(tok->eos_id() == 2);
      CHECK(tok->is_special(2));
      CHECK(tok->token(2) == "<|im_end|>");
      check_cases(*tok, fx);
      check_wiki(*tok, fx, wiki);
    }
    SUBCASE((std::string("from tokenizer.json, pre_tokenizer ") + name).c_str()) {
      auto tok = llmc::runtime::tokenizer_from_hf_json(tokenizer_json(fx), nullptr);
      check_cases(*tok, fx);
      check_wiki(*tok, fx, wiki);
    }
  }
}

TEST_CASE("byte-level BPE: bad ids and descriptions raise Error") {
  if (!std::filesystem::exists(kGguf)) {
    MESSAGE("skipped: " << kGguf << " is absent (scripts/fetch_models.sh fetches it)");
    return;
  }
  auto tok = llmc::runtime::tokenizer_from_gguf_description(description());
  CHECK_THROWS_AS(tok->decode({49152}), llmc::Error);
  CHECK_THROWS_AS(tok->decode({-1}), llmc::Error);
  json d = description();
  d["pre"] = "no-such-pre";
  CHECK_THROWS_WITH_AS(llmc::runtime::tokenizer_from_gguf_description(d), doctest::Contains("no-such-pre"), llmc::Error);
  d = description();
  d["merges"].push_back("notatoken alsonot");
  CHECK_THROWS_WITH_AS(llmc::runtime::tokenizer_from_gguf_description(d), doctest::Contains("notatoken"), llmc::Error);
}
