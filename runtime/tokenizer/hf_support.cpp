// Shared pieces of the HF pipeline: ICU-backed regex with Oniguruma's \s, HF's split behaviors,
// and the character classes of the Rust crates HF uses for BERT.
#include <algorithm>

#if LLMC_HAVE_ICU
#include <unicode/regex.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#endif

#include "runtime/ir/error.hpp"
#include "runtime/tokenizer/hf_components.hpp"
#include "runtime/tokenizer/unicode.hpp"

namespace llmc::runtime::hf {

#if LLMC_HAVE_ICU
struct Regex::Impl {
  std::unique_ptr<icu::RegexPattern> pattern;
};

namespace {
// Oniguruma's \s is the White_Space property; ICU's is [\t\n\f\r\p{Z}] (no \v, no U+0085).
std::string onig_to_icu(const std::string& p) {
  std::string out;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\' && i + 1 < p.size()) {
      const char n = p[i + 1];
      if (n == 's') out += "\\p{White_Space}";
      else if (n == 'S') out += "\\P{White_Space}";
      else {
        out += p[i];
        out += n;
      }
      ++i;
    } else {
      out += p[i];
    }
  }
  return out;
}
}  // namespace

Regex::Regex(const std::string& pattern) : impl_(std::make_unique<Impl>()) {
  const std::string icu_pattern = onig_to_icu(pattern);
  UErrorCode err = U_ZERO_ERROR;
  UParseError perr;
  impl_->pattern.reset(icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(icu_pattern), 0, perr, err));
  if (U_FAILURE(err))
    throw Error("tokenizer: cannot compile regex '" + pattern + "': " + u_errorName(err) + " at offset " +
                std::to_string(perr.offset));
}

Regex::~Regex() = default;

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  // UTF-16 index -> UTF-8 byte offset, to report matches in the caller's units.
  icu::UnicodeString u;
  std::vector<size_t> to_byte;
  to_byte.reserve(text.size() + 1);
  for (size_t i = 0; i < text.size();) {
    const size_t at = i;
    const char32_t c = unicode::next_cp(text, i);
    u.append(static_cast<UChar32>(c));
    to_byte.push_back(at);
    if (c >= 0x10000) to_byte.push_back(at);
  }
  to_byte.push_back(text.size());
  UErrorCode err = U_ZERO_ERROR;
  std::unique_ptr<icu::RegexMatcher> m(impl_->pattern->matcher(u, err));
  if (U_FAILURE(err)) throw Error(std::string("tokenizer: ICU regex matcher: ") + u_errorName(err), ErrorKind::Runtime);
  std::vector<std::pair<size_t, size_t>> out;
  while (m->find(err) && U_SUCCESS(err)) {
    const int32_t s = m->start(err), e = m->end(err);
    if (e > s) out.emplace_back(to_byte[s], to_byte[e]);
  }
  if (U_FAILURE(err)) throw Error(std::string("tokenizer: ICU regex search: ") + u_errorName(err), ErrorKind::Runtime);
  return out;
}

#else
struct Regex::Impl {};

Regex::Regex(const std::string& pattern) {
  throw Error("tokenizer: regex '" + pattern + "' needs ICU, and this build has none; rebuild with libicu-dev, "
              "or pass token ids instead of text", ErrorKind::Runtime);
}

Regex::~Regex() = default;

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view) const { return {}; }

#endif

SplitBehavior parse_split_behavior(const std::string& name) {
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  throw Error("tokenizer.json: unknown split behavior '" + name + "'");
}

// Mirrors tokenizers' NormalizedString::split: the matches and the gaps between them cover the
// piece; the behavior decides what happens to the matches.
void split_piece(const Piece& piece, const std::vector<std::pair<size_t, size_t>>& matches, SplitBehavior behavior,
                 bool invert, Pieces& out) {
  struct Span {
    size_t b, e;
    bool match;
  };
  std::vector<Span> spans;
  size_t pos = 0;
  for (auto [b, e] : matches) {
    if (b > pos) spans.push_back({pos, b, invert});
    spans.push_back({b, e, !invert});
    pos = e;
  }
  if (pos < piece.text.size()) spans.push_back({pos, piece.text.size(), invert});

  std::vector<Span> kept;
  switch (behavior) {
    case SplitBehavior::Removed:
      for (const Span& s : spans)
        if (!s.match) kept.push_back(s);
      break;
    case SplitBehavior::Isolated:
      kept = spans;
      break;
    case SplitBehavior::Contiguous:
      for (const Span& s : spans) {
        if (s.match && !kept.empty() && kept.back().match) kept.back().e = s.e;
        else kept.push_back(s);
      }
      break;
    case SplitBehavior::MergedWithPrevious: {
      bool prev_match = false;
      for (const Span& s : spans) {
        if (s.match && !prev_match && !kept.empty()) kept.back().e = s.e;
        else kept.push_back({s.b, s.e, false});
        prev_match = s.match;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool prev_match = false;
      for (size_t k = spans.size(); k-- > 0;) {
        const Span& s = spans[k];
        if (s.match && !prev_match && !kept.empty()) kept.back().b = s.b;
        else kept.push_back({s.b, s.e, false});
        prev_match = s.match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    }
  }
  for (const Span& s : kept)
    if (s.e > s.b) out.push_back({piece.text.substr(s.b, s.e - s.b), piece.at_start && s.b == 0});
}

#if LLMC_HAVE_ICU
namespace {
// unicode_categories 0.1 (what tokenizers' BERT parts use) has Unicode 8.0 tables: a character
// assigned later is unassigned there, and a few have changed category since.
bool known_to(char32_t c, uint8_t major) {
  UVersionInfo age;
  u_charAge(static_cast<UChar32>(c), age);
  return age[0] < major || (age[0] == major && age[1] == 0);
}
bool known_to_unicode8(char32_t c) { return known_to(c, 8); }
int8_t cat(char32_t c) { return static_cast<int8_t>(u_charType(static_cast<UChar32>(c))); }
}  // namespace

bool bert_is_punctuation(char32_t c) {
  if (c < 0x80) return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
                       (c >= 0x7B && c <= 0x7E);
  if (c == 0x166D || c == 0x111C9) return true;  // Po in Unicode 8.0 (So and Mn today)
  return known_to_unicode8(c) && unicode::is_punctuation(c);
}

bool bert_is_control(char32_t c) {
  const int8_t t = cat(c);
  const bool other = t == U_CONTROL_CHAR || t == U_FORMAT_CHAR || t == U_PRIVATE_USE_CHAR || t == U_SURROGATE;
  return other && known_to_unicode8(c);
}

bool bert_is_mark_nonspacing(char32_t c) {
  if (c == 0x1734) return true;  // Mn in Unicode 8.0 (Mc today)
  if (c == 0x1885 || c == 0x1886 || c == 0xA9BD || c == 0x111C9) return false;  // Lo, Mc, Po in 8.0
  return known_to_unicode8(c) && cat(c) == U_NON_SPACING_MARK;
}

bool is_combining_mark_unicode9(char32_t c) {
  if (c == 0x1CF2 || c == 0x1CF3) return true;  // Mc in Unicode 9.0 (Lo today)
  if (c == 0x111C9) return false;                // Po in Unicode 9.0 (Mn today)
  const int8_t t = cat(c);
  return (t == U_NON_SPACING_MARK || t == U_COMBINING_SPACING_MARK || t == U_ENCLOSING_MARK) && known_to(c, 9);
}

#else
bool bert_is_punctuation(char32_t c) {
  if (c < 0x80) return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
                       (c >= 0x7B && c <= 0x7E);
  unicode::require_icu(c);
  return false;
}
bool bert_is_control(char32_t c) { return unicode::is_other(c); }
bool bert_is_mark_nonspacing(char32_t c) { return unicode::is_mark_nonspacing(c); }
bool is_combining_mark_unicode9(char32_t c) { return unicode::is_mark_nonspacing(c); }

#endif

}  // namespace llmc::runtime::hf
