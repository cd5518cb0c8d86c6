// The tokenizer factories (tokenizer.json, GGUF description, sentencepiece model, Model) and the
// streaming decoder.
#include "runtime/tokenizer/tokenizer.hpp"

#include "runtime/ir/error.hpp"
#include "runtime/tokenizer/byte_level.hpp"
#include "runtime/tokenizer/unicode.hpp"
#include "runtime/tokenizer/hf_tokenizer.hpp"

namespace llmc::runtime {

using nlohmann::json;

namespace {

// The split regexes llama.cpp (llama-vocab.cpp) and transformers' GGUF loader use per
// tokenizer.ggml.pre; each is followed by the byte-level mapping.
const char* kLlama3Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* kQwen2Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

json split_then_bytes(const char* regex) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
            byte_level(false)}}};
}

json pre_tokenizer_for(const std::string& pre) {
  for (const char* p : {"default", "gpt2", "gpt-2", "mpt", "olmo", "jais", "phi-2", "trillion"})
    if (pre == p) return byte_level(true);
  // \p{N} isolated first, then the GPT-2 regex: SmolLM's tokenizer.json (Digits individual_digits
  // + ByteLevel) and llama.cpp's regex list for these names agree.
  for (const char* p : {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"})
    if (pre == p)
      return {{"type", "Sequence"},
              {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)}}};
  for (const char* p : {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "dbrx", "smaug-bpe",
                        "midm-2.0", "lfm2"})
    if (pre == p) return split_then_bytes(kLlama3Split);
  for (const char* p : {"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", "kormo"})
    if (pre == p) return split_then_bytes(kQwen2Split);
  throw Error("GGUF tokenizer description: pre-tokenizer '" + pre +
              "' is not supported (known: gpt2/default, smollm/starcoder family, llama-bpe/llama3 family, qwen2 family)");
}

std::unique_ptr<Tokenizer> bpe_from_gguf(const json& d) {
  const auto& vocab = d.at("vocab");
  if (!vocab.is_array() || vocab.empty()) throw Error("GGUF tokenizer description: 'vocab' is not a non-empty array");
  const json types = d.value("token_types", json::array());
  if (!types.empty() && types.size() != vocab.size())
    throw Error("GGUF tokenizer description: 'token_types' length differs from 'vocab'");

  json model = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
                {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false}};
  // A token spelled outside the byte alphabet is respelled byte by byte, as transformers'
  // byte_level_tokenizer does, so that BPE's byte-level pieces can reach it.
  const ByteAlphabet alphabet;
  auto spelled = [&](const std::string& tok) {
    for (size_t i = 0; i < tok.size();)
      if (alphabet.decode(unicode::next_cp(tok, i)) < 0) return alphabet.encode(tok);
    return tok;
  };
  json v = json::object();
  for (size_t i = 0; i < vocab.size(); ++i) v[spelled(vocab[i].get<std::string>())] = i;
  model["vocab"] = std::move(v);
  model["merges"] = d.at("merges");

  // Control tokens are special added tokens, user-defined ones plain added tokens (transformers'
  // add_gguf_special_tokens; llama.cpp matches both whole in the text).
  json added = json::array();
  for (size_t i = 0; i < types.size(); ++i) {
    const int t = types[i].get<int>();
    if (t != 3 && t != 4) continue;
    added.push_back({{"id", i}, {"content", vocab[i]}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", t == 3}});
  }
  const json tj = {{"version", "1.0"}, {"added_tokens", added}, {"normalizer", nullptr},
                   {"pre_tokenizer", pre_tokenizer_for(d.value("pre", "default"))}, {"post_processor", nullptr},
                   {"decoder", byte_level(true)}, {"model", model}};
  json cfg = {{"add_bos_token", d.value("add_bos", false)}, {"add_eos_token", d.value("add_eos", false)}};
  for (const char* key : {"bos", "eos"}) {
    const std::string id_key = std::string(key) + "_id";
    if (!d.contains(id_key) || d[id_key].is_null()) continue;
    const int64_t id = d[id_key].get<int64_t>();
    if (id < 0 || id >= static_cast<int64_t>(vocab.size()))
      throw Error("GGUF tokenizer description: '" + id_key + "' " + std::to_string(id) + " is out of range");
    cfg[std::string(key) + "_token"] = vocab[id];
  }
  return make_hf_tokenizer(tj, cfg);
}

}  // namespace

std::unique_ptr<Tokenizer> tokenizer_from_hf_json(const json& tokenizer_json, const json& tokenizer_config) {
  return make_hf_tokenizer(tokenizer_json, tokenizer_config);
}

std::unique_ptr<Tokenizer> tokenizer_from_gguf_description(const json& d) {
  if (!d.is_object() || !d.contains("type")) throw Error("GGUF tokenizer description: missing 'type'");
  const std::string type = d["type"].is_string() ? d["type"].get<std::string>() : "";
  try {
    if (type == "bpe") return bpe_from_gguf(d);
    if (type == "spm") return make_spm_gguf_tokenizer(d);
  } catch (const json::exception& e) {
    throw Error(std::string("GGUF tokenizer description: malformed: ") + e.what());
  }
  throw Error("GGUF tokenizer description: type '" + type + "' is not supported (bpe, spm)");
}

std::unique_ptr<Tokenizer> tokenizer_from_sentencepiece(const std::string& model_path) {
  return make_sentencepiece_tokenizer(model_path);
}

std::unique_ptr<Tokenizer> load_tokenizer(const Model& model) {
  const json& t = model.tokenizer;
  if (t.is_null() || (t.is_object() && t.empty())) throw Error(model.source + ": the model carries no tokenizer");
  if (!t.is_object()) throw Error(model.source + ": the tokenizer description is not a JSON object");
  if (t.contains("sentencepiece_model")) return tokenizer_from_sentencepiece(t["sentencepiece_model"].get<std::string>());
  if (t.contains("type") && t["type"].is_string()) return tokenizer_from_gguf_description(t);
  if (t.contains("tokenizer") && t["tokenizer"].is_object())
    return tokenizer_from_hf_json(t["tokenizer"], t.value("tokenizer_config", json()));
  json config;
  if (auto it = model.metadata.find("tokenizer_config"); it != model.metadata.end()) {
    try {
      config = json::parse(it->second);
    } catch (const json::exception& e) {
      throw Error(model.source + ": tokenizer_config is not valid JSON: " + e.what());
    }
  }
  return tokenizer_from_hf_json(t, config);
}

std::string StreamDecoder::push(int64_t id) {
  ids_.push_back(id);
  const std::vector<int64_t> before(ids_.begin() + prefix_, ids_.begin() + read_);
  const std::vector<int64_t> window(ids_.begin() + prefix_, ids_.end());
  const std::string prefix_text = tok_.decode(before, skip_special_);
  const std::string text = tok_.decode(window, skip_special_);
  static const std::string kFffd = "\xEF\xBF\xBD";
  const bool incomplete = text.size() >= kFffd.size() && text.compare(text.size() - kFffd.size(), kFffd.size(), kFffd) == 0;
  if (text.size() <= prefix_text.size() || incomplete) return "";
  prefix_ = read_;
  read_ = ids_.size();
  return text.substr(prefix_text.size());
}

std::string StreamDecoder::finish() {
  const std::vector<int64_t> before(ids_.begin() + prefix_, ids_.begin() + read_);
  const std::vector<int64_t> window(ids_.begin() + prefix_, ids_.end());
  const std::string prefix_text = tok_.decode(before, skip_special_);
  const std::string text = tok_.decode(window, skip_special_);
  prefix_ = read_ = ids_.size();
  return text.size() > prefix_text.size() ? text.substr(prefix_text.size()) : "";
}

}  // namespace llmc::runtime
