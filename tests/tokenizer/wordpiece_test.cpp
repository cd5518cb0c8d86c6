// WordPiece (all-MiniLM-L6-v2's BERT tokenizer.json) against HF tokenizers/transformers on the whole
// of wiki.test.raw: ids, and decode with and without special tokens.
#include <doctest/doctest.h>

#include "runtime/tokenizer/tokenizer.hpp"
#include "tests/tokenizer/tokenizer_test_util.hpp"

using nlohmann::json;
namespace t = llmc::test;

TEST_CASE("WordPiece: all-MiniLM-L6-v2 vs HF on wiki.test.raw") {
  const auto dir = t::models_dir() / "all-MiniLM-L6-v2";
  if (!std::filesystem::exists(dir / "tokenizer.json")) {
    MESSAGE("skipped: " << dir / "tokenizer.json" << " is absent (scripts/fetch_models.sh fetches it)");
    return;
  }
  if (!std::filesystem::exists(t::wiki_test())) {
    MESSAGE("skipped: " << t::wiki_test() << " is absent");
    return;
  }
  const json fx = t::tokenizer_fixture("minilm_wordpiece.json");
  auto tok = llmc::runtime::tokenizer_from_hf_json(json::parse(t::read_file(dir / "tokenizer.json")),
                                                   json::parse(t::read_file(dir / "tokenizer_config.json")));
  CHECK(tok->vocab_size() == 30522);
  CHECK(tok->token_id("[CLS]") == 101);
  CHECK(tok->is_special(102));
  CHECK_FALSE(tok->is_special(1000));
  CHECK_FALSE(tok->bos_id().has_value());  // BERT names no bos/eos token

  SUBCASE("tricky strings") {
    for (const json& c : fx["cases"]) {
      const std::string text = c["text"].get<std::string>();
      INFO("text: " << text);
      const auto ids = tok->encode(text, true);
      CHECK(ids == c["ids"].get<std::vector<int64_t>>());
      CHECK(tok->decode(ids, true) == c["decode"].get<std::string>());
      CHECK(tok->decode(ids, false) == c["decode_keep_special"].get<std::string>());
      llmc::runtime::StreamDecoder stream(*tok, true);
      std::string streamed;
      for (int64_t id : ids) streamed += stream.push(id);
      streamed += stream.finish();
      CHECK(streamed == c["decode"].get<std::string>());
    }
  }
  SUBCASE("whole file") {
    const std::string wiki = t::read_file(t::wiki_test());
    const auto ids = tok->encode(wiki, true);
    const auto head = fx["head"].get<std::vector<int64_t>>();
    const std::vector<int64_t> mine_head(ids.begin(), ids.begin() + std::min(ids.size(), head.size()));
    INFO("first difference in the first ids at " << t::first_diff(mine_head, head));
    CHECK(mine_head == head);
    CHECK(ids.size() == fx["count"].get<size_t>());
    CHECK(t::sha256_ids(ids) == fx["sha256"].get<std::string>());
    CHECK(tok->encode(wiki, false) == std::vector<int64_t>(ids.begin() + 1, ids.end() - 1));
    for (const char* which : {"skip", "keep"}) {
      const json& ref = fx["decode_whole"][which];
      const std::string text = tok->decode(ids, std::string(which) == "skip");
      INFO("decode " << which);
      const std::string head_text = ref["head"].get<std::string>();
      CHECK(text.substr(0, head_text.size()) == head_text);
      CHECK(text.size() == ref["bytes"].get<size_t>());
      CHECK(t::sha256_hex(text) == ref["sha256"].get<std::string>());
    }
  }
}
