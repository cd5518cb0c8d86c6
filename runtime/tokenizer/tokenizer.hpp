// Tokenizers: text <-> token ids, exactly as HF tokenizers/transformers (tokenizer.json), llama.cpp
// (GGUF tokenizer descriptions) and sentencepiece (tokenizer.model) compute them.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/ir/model.hpp"

namespace llmc::runtime {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`. Special tokens written in the text are always recognized (as HF does
  // unless split_special_tokens); add_special adds what the tokenizer adds around a sequence
  // (BERT's [CLS] .. [SEP], a BOS). No truncation or padding, whatever tokenizer.json asks.
  virtual std::vector<int64_t> encode(const std::string& text, bool add_special = true) const = 0;
  // Text of `ids`; skip_special drops special tokens first. Ill-formed UTF-8 that byte-level
  // tokens can produce becomes U+FFFD, as HF's decoders do. Throws Error on an id out of range.
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const = 0;

  virtual int64_t vocab_size() const = 0;  // ids are 0 .. vocab_size()-1 (added tokens included)
  virtual std::optional<int64_t> bos_id() const = 0;
  virtual std::optional<int64_t> eos_id() const = 0;
  // The token's string as the vocabulary spells it ("Ġthe", "##ing", "▁the", "<0x0A>").
  virtual std::string token(int64_t id) const = 0;
  // The id of a token spelled exactly so (vocabulary or added token), if any.
  virtual std::optional<int64_t> token_id(const std::string& token) const = 0;
  virtual bool is_special(int64_t id) const = 0;
};

// Incremental decoding for streaming generation: push ids one at a time and get the text that
// became final. It decodes a short window of recent ids and emits the part past what was already
// emitted once it does not end in an incomplete character (text-generation-inference's scheme),
// so it works for every decoder: byte-level pieces of a multi-byte character, WordPiece "##"
// joins and SentencePiece's leading-space rule all come out as decode() of the whole would.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = true) : tok_(tok), skip_special_(skip_special) {}
  std::string push(int64_t id);
  std::string finish();  // whatever is still held back (an incomplete character as U+FFFD)

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  std::vector<int64_t> ids_;
  size_t prefix_ = 0;  // window start
  size_t read_ = 0;    // ids up to here have been emitted
};

// tokenizer.json content; tokenizer_config (tokenizer_config.json content, may be null) supplies
// bos/eos tokens, add_bos_token/add_eos_token and clean_up_tokenization_spaces.
std::unique_ptr<Tokenizer> tokenizer_from_hf_json(const nlohmann::json& tokenizer_json,
                                                  const nlohmann::json& tokenizer_config = nullptr);
// The description formats::gguf_tokenizer_json makes from tokenizer.ggml.* metadata:
// {"type": "bpe"|"spm", "vocab", "merges", "scores", "token_types", "bos_id", "eos_id",
//  "add_bos", "add_eos", "add_space_prefix", "pre"}. "bpe" becomes the HF byte-level pipeline with
// the pre-tokenizer llama.cpp uses for "pre"; "spm" follows llama.cpp's score-merging SPM tokenizer.
std::unique_ptr<Tokenizer> tokenizer_from_gguf_description(const nlohmann::json& description);
// A SentencePiece model file through libsentencepiece (throws Error when built without it).
// encode adds BOS when add_special and the model has one (as Llama/Mistral tokenizers do).
std::unique_ptr<Tokenizer> tokenizer_from_sentencepiece(const std::string& model_path);
// Dispatches on model.tokenizer: a tokenizer.json object (optionally as {"tokenizer": {...},
// "tokenizer_config": {...}}), a GGUF description (has "type"), or {"sentencepiece_model": path}.
std::unique_ptr<Tokenizer> load_tokenizer(const Model& model);

}  // namespace llmc::runtime
