// The stages of an HF tokenizers pipeline (tokenizer.json: normalizer, pre_tokenizer, model,
// decoder), each built from its JSON object. Only ids matter here, so pieces carry no offsets.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace llmc::runtime::hf {

// A run of text the pre-tokenizers cut further. at_start: it begins at offset 0 of the input
// (Metaspace's prepend_scheme "first" needs to know).
struct Piece {
  std::string text;
  bool at_start = false;
};
using Pieces = std::vector<Piece>;

// ICU regular expression with Oniguruma's \s and \S (the White_Space property), over UTF-8.
class Regex {
 public:
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Byte ranges of all non-empty matches, left to right.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string apply(std::string s) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void apply(Pieces& pieces) const = 0;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual void tokenize(const std::string& piece, std::vector<int64_t>& out) const = 0;
  virtual std::optional<int64_t> token_to_id(const std::string& token) const = 0;
  virtual const std::string* id_to_token(int64_t id) const = 0;  // nullptr when out of range
  virtual int64_t vocab_size() const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // HF's decode_chain: tokens in, tokens out; the caller concatenates the result.
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Each factory throws Error naming the component type and field that is unsupported or malformed.
// A null JSON gives nullptr (the stage is absent).
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j);
std::unique_ptr<Model> make_model(const nlohmann::json& j);
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j);

// HF's SplitDelimiterBehavior applied to the matches [begin, end) of one piece (sorted, disjoint).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
SplitBehavior parse_split_behavior(const std::string& name);
void split_piece(const Piece& piece, const std::vector<std::pair<size_t, size_t>>& matches, SplitBehavior behavior,
                 bool invert, Pieces& out);

// The Unicode tables of the Rust crates HF tokenizers use for BERT (unicode_categories, Unicode
// 8.0) differ from ICU's for characters assigned or re-categorized since; these follow the crate.
bool bert_is_punctuation(char32_t c);
bool bert_is_control(char32_t c);
bool bert_is_mark_nonspacing(char32_t c);
// StripAccents removes every combining mark (M*) of unicode-normalization's Unicode 9.0 tables.
bool is_combining_mark_unicode9(char32_t c);

}  // namespace llmc::runtime::hf
