// The character classes behind the pre-tokenizers and BERT's normalizer, for every code point,
// against the classes HF tokenizers itself applies (read off it by the fixture generator).
// ICU 72 knows Unicode 15.0; HF's Rust std may know later characters, which ICU calls unassigned:
// those, and only those, may differ.
#include <doctest/doctest.h>

#include <functional>
#include <set>

#include <unicode/uchar.h>

#include "runtime/tokenizer/hf_components.hpp"
#include "runtime/tokenizer/unicode.hpp"
#include "tests/tokenizer/tokenizer_test_util.hpp"

namespace u = llmc::runtime::unicode;
namespace hf = llmc::runtime::hf;
using nlohmann::json;

namespace {

std::set<char32_t> members(const json& ranges) {
  std::set<char32_t> s;
  for (const json& r : ranges)
    for (char32_t c = r[0].get<char32_t>(); c <= r[1].get<char32_t>(); ++c) s.insert(c);
  return s;
}

bool unassigned_in_icu(char32_t c) { return u_charType(static_cast<UChar32>(c)) == U_UNASSIGNED; }

void compare(const char* what, const std::set<char32_t>& ref, const std::function<bool(char32_t)>& mine) {
  size_t differ = 0, differ_assigned = 0;
  std::string first;
  for (char32_t c = 0; c < 0x110000; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    if (mine(c) == (ref.count(c) != 0)) continue;
    ++differ;
    if (!unassigned_in_icu(c)) {
      if (++differ_assigned <= 8) first.append(1, ' ').append(std::to_string(static_cast<unsigned>(c)));
    }
  }
  MESSAGE(std::string(what) << ": " << differ << " code points differ, all unassigned in ICU's Unicode 15.0");
  INFO(std::string(what) << ": assigned code points that differ (decimal):" << first);
  CHECK(differ_assigned == 0);
}

}  // namespace

TEST_CASE("Unicode classes match HF tokenizers' for every code point") {
  const json fx = llmc::test::tokenizer_fixture("unicode_tables.json");
  compare("\\p{L}", members(fx["onig_letter"]), u::is_letter);
  compare("\\p{N}", members(fx["onig_number"]), u::is_number);
  compare("\\s", members(fx["onig_space"]), u::is_whitespace);
  compare("Digits", members(fx["digits"]), u::is_number);
  compare("BERT punctuation", members(fx["bert_punctuation"]), hf::bert_is_punctuation);
  compare("BERT clean_text removes", members(fx["bert_removed"]), [](char32_t c) {
    const bool tnr = c == '\t' || c == '\n' || c == '\r';
    return c == 0 || c == 0xFFFD || (!tnr && hf::bert_is_control(c));
  });
  compare("BERT clean_text makes a space", members(fx["bert_to_space"]), [](char32_t c) {
    const bool tnr = c == '\t' || c == '\n' || c == '\r';
    return c != ' ' && (tnr || (u::is_whitespace(c) && !hf::bert_is_control(c)));
  });
  // The normalizers themselves, on "a" + the character (NFD may expand it first).
  const auto strip = hf::make_normalizer({{"type", "StripAccents"}});
  compare("StripAccents removes", members(fx["strip_accents_removes"]),
          [&](char32_t c) { return strip->apply(std::string("a").append(u::to_utf8(c))) == "a"; });
  const auto bert_strip = hf::make_normalizer({{"type", "BertNormalizer"}, {"clean_text", false},
                                               {"handle_chinese_chars", false}, {"strip_accents", true},
                                               {"lowercase", false}});
  compare("BertNormalizer strip_accents removes", members(fx["bert_strip_accents_removes"]),
          [&](char32_t c) { return bert_strip->apply(std::string("a").append(u::to_utf8(c))) == "a"; });

  const auto lowercase = hf::make_normalizer({{"type", "Lowercase"}});
  std::map<char32_t, std::string> lower;
  for (const json& m : fx["lowercase"]) lower[m[0].get<char32_t>()] = m[1].get<std::string>();
  compare("Lowercase changes", [&] {
    std::set<char32_t> s;
    for (auto& [c, l] : lower) s.insert(c);
    return s;
  }(), [&](char32_t c) { return lowercase->apply(u::to_utf8(c)) != u::to_utf8(c); });
  size_t wrong = 0;
  for (auto& [c, l] : lower)
    if (!unassigned_in_icu(c) && lowercase->apply(u::to_utf8(c)) != l) ++wrong;
  CHECK(wrong == 0);
}
