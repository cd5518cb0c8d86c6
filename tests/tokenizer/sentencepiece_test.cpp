// SentencePiece (Mistral 7B v0.1's tokenizer.model from mistral-common) against sentencepiece on
// the whole of wiki.test.raw: through libsentencepiece, and through the llama.cpp-style GGUF "spm"
// tokenizer given the same pieces, scores and types.
#include <doctest/doctest.h>

#include "runtime/ir/error.hpp"
#include "runtime/tokenizer/tokenizer.hpp"
#include "tests/tokenizer/tokenizer_test_util.hpp"

#ifdef LLMC_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

using llmc::runtime::Tokenizer;
using nlohmann::json;
namespace t = llmc::test;

namespace {

const std::filesystem::path kModel = t::models_dir() / "mistral-7b-v0.1-tokenizer" / "tokenizer.model";

void check_against(const Tokenizer& tok, const json& fx, const std::string& wiki) {
  for (const json& c : fx["cases"]) {
    const std::string text = c["text"].get<std::string>();
    INFO("text: " << text);
    const auto ids = tok.encode(text, true);
    CHECK(ids == c["ids"].get<std::vector<int64_t>>());
    CHECK(tok.decode(ids, true) == c["decode"].get<std::string>());
    llmc::runtime::StreamDecoder stream(tok, true);
    std::string streamed;
    for (int64_t id : ids) streamed += stream.push(id);
    streamed += stream.finish();
    CHECK(streamed == c["decode"].get<std::string>());
  }
  const auto ids = tok.encode(wiki, true);
  const auto head = fx["head"].get<std::vector<int64_t>>();
  const std::vector<int64_t> mine_head(ids.begin(), ids.begin() + std::min(ids.size(), head.size()));
  INFO("first difference in the first ids at " << t::first_diff(mine_head, head));
  CHECK(mine_head == head);
  CHECK(ids.size() == fx["count"].get<size_t>());
  CHECK(t::sha256_ids(ids) == fx["sha256"].get<std::string>());
  CHECK(tok.decode(ids, true) == wiki);
}

}  // namespace

TEST_CASE("SentencePiece: Mistral tokenizer.model vs sentencepiece on wiki.test.raw") {
#ifndef LLMC_HAVE_SENTENCEPIECE
  CHECK_THROWS_AS(llmc::runtime::tokenizer_from_sentencepiece(kModel.string()), llmc::Error);
  MESSAGE("skipped: built without libsentencepiece");
#else
  if (!std::filesystem::exists(kModel)) {
    MESSAGE("skipped: " << kModel << " is absent (scripts/fetch_models.sh fetches it)");
    return;
  }
  if (!std::filesystem::exists(t::wiki_test())) {
    MESSAGE("skipped: " << t::wiki_test() << " is absent");
    return;
  }
  const json fx = t::tokenizer_fixture("mistral_spm.json");
  const std::string wiki = t::read_file(t::wiki_test());

  SUBCASE("libsentencepiece") {
    llmc::Model model;  // as the HF loader hands a directory with only tokenizer.model over
    model.tokenizer = {{"sentencepiece_model", kModel.string()}};
    auto tok = llmc::runtime::load_tokenizer(model);
    CHECK(tok->vocab_size() == 32000);
    CHECK(tok->bos_id() == 1);
    CHECK(tok->eos_id() == 2);
    CHECK(tok->decode({1, 2}, false) == "<s></s>");
    CHECK_THROWS_AS(tok->decode({32000}), llmc::Error);
    check_against(*tok, fx, wiki);
  }
  SUBCASE("GGUF spm description (llama.cpp's merging) from the same pieces") {
    // The description llama.cpp's convert script writes for this model: piece, score, type.
    sentencepiece::SentencePieceProcessor sp;
    REQUIRE(sp.Load(kModel.string()).ok());
    json d = {{"type", "spm"}, {"pre", "default"}, {"merges", json::array()}, {"bos_id", sp.bos_id()},
              {"eos_id", sp.eos_id()}, {"unk_id", sp.unk_id()}, {"add_bos", true}, {"add_eos", false},
              {"add_space_prefix", true}};
    for (int i = 0; i < sp.GetPieceSize(); ++i) {
      d["vocab"].push_back(sp.IdToPiece(i));
      d["scores"].push_back(sp.GetScore(i));
      d["token_types"].push_back(sp.IsUnknown(i) ? 2 : sp.IsControl(i) ? 3 : sp.IsUnused(i) ? 5 : sp.IsByte(i) ? 6 : 1);
    }
    auto tok = llmc::runtime::tokenizer_from_gguf_description(d);
    CHECK(tok->token(13) == "<0x0A>");
    check_against(*tok, fx, wiki);
  }
#endif
}
