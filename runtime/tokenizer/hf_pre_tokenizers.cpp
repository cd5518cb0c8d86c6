// HF tokenizers pre-tokenizers (tokenizers/src/pre_tokenizers): ByteLevel, Split, Digits,
// BertPreTokenizer, Whitespace, WhitespaceSplit, Punctuation, Metaspace and Sequence.
#include "runtime/ir/error.hpp"
#include "runtime/tokenizer/byte_level.hpp"
#include "runtime/tokenizer/hf_components.hpp"
#include "runtime/tokenizer/unicode.hpp"

namespace llmc::runtime::hf {

using nlohmann::json;

namespace {

// Byte ranges of the single characters (or runs of them, when `runs`) for which pred holds.
template <class Pred>
std::vector<std::pair<size_t, size_t>> char_matches(std::string_view s, Pred pred, bool runs = false) {
  std::vector<std::pair<size_t, size_t>> m;
  for (size_t i = 0; i < s.size();) {
    const size_t at = i;
    const char32_t c = unicode::next_cp(s, i);
    if (!pred(c)) continue;
    if (runs && !m.empty() && m.back().second == at) m.back().second = i;
    else m.emplace_back(at, i);
  }
  return m;
}

template <class Fn>
void split_all(Pieces& pieces, Fn&& matches_of, SplitBehavior behavior, bool invert = false) {
  Pieces out;
  out.reserve(pieces.size());
  for (const Piece& p : pieces) split_piece(p, matches_of(p.text), behavior, invert, out);
  pieces = std::move(out);
}

class ByteLevel : public PreTokenizer {
 public:
  explicit ByteLevel(const json& j)
      : add_prefix_space_(j.value("add_prefix_space", false)), use_regex_(j.value("use_regex", true)) {}
  void apply(Pieces& pieces) const override {
    if (add_prefix_space_)
      for (Piece& p : pieces)
        if (!p.text.empty() && p.text[0] != ' ') p.text.insert(p.text.begin(), ' ');  // HF prepends to non-empty only
    if (use_regex_) split_all(pieces, [](const std::string& s) { return gpt2_split(s); }, SplitBehavior::Isolated);
    for (Piece& p : pieces) p.text = alphabet_.encode(p.text);
  }

 private:
  bool add_prefix_space_, use_regex_;
  ByteAlphabet alphabet_;
};

class Split : public PreTokenizer {
 public:
  explicit Split(const json& j)
      : behavior_(parse_split_behavior(j.at("behavior").get<std::string>())), invert_(j.value("invert", false)) {
    const json& p = j.at("pattern");
    if (p.contains("String")) literal_ = p["String"].get<std::string>();
    else if (p.contains("Regex")) regex_ = std::make_unique<Regex>(p["Regex"].get<std::string>());
    else throw Error("tokenizer.json: Split pattern needs 'String' or 'Regex'");
  }
  void apply(Pieces& pieces) const override {
    split_all(
        pieces,
        [&](const std::string& s) {
          if (regex_) return regex_->find_all(s);
          std::vector<std::pair<size_t, size_t>> m;
          if (!literal_.empty())
            for (size_t p = s.find(literal_); p != std::string::npos; p = s.find(literal_, p + literal_.size()))
              m.emplace_back(p, p + literal_.size());
          return m;
        },
        behavior_, invert_);
  }

 private:
  SplitBehavior behavior_;
  bool invert_;
  std::string literal_;
  std::unique_ptr<Regex> regex_;
};

class Digits : public PreTokenizer {
 public:
  explicit Digits(bool individual) : individual_(individual) {}
  void apply(Pieces& pieces) const override {
    split_all(
        pieces, [&](const std::string& s) { return char_matches(s, unicode::is_number, !individual_); },
        individual_ ? SplitBehavior::Isolated : SplitBehavior::Contiguous);
  }

 private:
  bool individual_;
};

class BertPreTokenizer : public PreTokenizer {
 public:
  void apply(Pieces& pieces) const override {
    split_all(pieces, [](const std::string& s) { return char_matches(s, unicode::is_whitespace); },
              SplitBehavior::Removed);
    split_all(pieces, [](const std::string& s) { return char_matches(s, bert_is_punctuation); },
              SplitBehavior::Isolated);
  }
};

class WhitespaceSplit : public PreTokenizer {
 public:
  void apply(Pieces& pieces) const override {
    split_all(pieces, [](const std::string& s) { return char_matches(s, unicode::is_whitespace); },
              SplitBehavior::Removed);
  }
};

class Whitespace : public PreTokenizer {  // \w+|[^\w\s]+ ; ICU's \w is the regex crate's
 public:
  Whitespace() : re_(R"(\w+|[^\w\s]+)") {}
  void apply(Pieces& pieces) const override {
    split_all(pieces, [&](const std::string& s) { return re_.find_all(s); }, SplitBehavior::Removed, true);
  }

 private:
  Regex re_;
};

class Punctuation : public PreTokenizer {
 public:
  explicit Punctuation(SplitBehavior b) : behavior_(b) {}
  void apply(Pieces& pieces) const override {
    split_all(pieces, [](const std::string& s) { return char_matches(s, bert_is_punctuation); }, behavior_);
  }

 private:
  SplitBehavior behavior_;
};

class Metaspace : public PreTokenizer {
 public:
  explicit Metaspace(const json& j) : replacement_(j.value("replacement", "\u2581")), split_(j.value("split", true)) {
    if (j.contains("prepend_scheme")) scheme_ = j["prepend_scheme"].get<std::string>();
    else scheme_ = j.value("add_prefix_space", true) ? "always" : "never";
    if (scheme_ != "always" && scheme_ != "first" && scheme_ != "never")
      throw Error("tokenizer.json: Metaspace prepend_scheme '" + scheme_ + "' is not always/first/never");
  }
  void apply(Pieces& pieces) const override {
    Pieces out;
    for (Piece& p : pieces) {
      std::string s;
      for (char c : p.text) {
        if (c == ' ') s += replacement_;
        else s += c;
      }
      const bool starts = s.compare(0, replacement_.size(), replacement_) == 0;
      if (!s.empty() && !starts && (scheme_ == "always" || (scheme_ == "first" && p.at_start))) s = replacement_ + s;
      Piece q{std::move(s), p.at_start};
      if (!split_) {
        out.push_back(std::move(q));
        continue;
      }
      std::vector<std::pair<size_t, size_t>> m;
      for (size_t k = q.text.find(replacement_); k != std::string::npos; k = q.text.find(replacement_, k + replacement_.size()))
        m.emplace_back(k, k + replacement_.size());
      split_piece(q, m, SplitBehavior::MergedWithNext, false, out);
    }
    pieces = std::move(out);
  }

 private:
  std::string replacement_;
  bool split_;
  std::string scheme_;
};

class Sequence : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void apply(Pieces& pieces) const override {
    for (const auto& p : parts_) p->apply(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = j.value("type", "");
  if (type == "ByteLevel") return std::make_unique<ByteLevel>(j);
  if (type == "Split") return std::make_unique<Split>(j);
  if (type == "Digits") return std::make_unique<Digits>(j.value("individual_digits", false));
  if (type == "BertPreTokenizer") return std::make_unique<BertPreTokenizer>();
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplit>();
  if (type == "Whitespace") return std::make_unique<Whitespace>();
  if (type == "Punctuation") return std::make_unique<Punctuation>(parse_split_behavior(j.value("behavior", "Isolated")));
  if (type == "Metaspace") return std::make_unique<Metaspace>(j);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const json& p : j.at("pretokenizers"))
      if (auto q = make_pre_tokenizer(p)) parts.push_back(std::move(q));
    return std::make_unique<Sequence>(std::move(parts));
  }
  throw Error("tokenizer.json: pre_tokenizer type '" + type + "' is not supported");
}

}  // namespace llmc::runtime::hf
