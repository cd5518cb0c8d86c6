// Hugging Face config.json: reading with validation, and the typed view of the Llama family
// (Llama, Mistral, Qwen2, SmolLM) that the builders and compressors use.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace llmc::formats {

// Parses `path` (a config.json); throws Error naming the file on unreadable or invalid JSON.
nlohmann::json read_hf_config(const std::string& path);

struct LlamaConfig {
  int64_t hidden_size = 0, intermediate_size = 0, num_layers = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0;
  int64_t vocab_size = 0, max_positions = 0;
  double rms_norm_eps = 1e-6, rope_theta = 10000.0;
  bool tie_word_embeddings = false, attention_bias = false, mlp_bias = false;
  std::string model_type;
};

// Reads the Llama-family fields; `where` names the source in errors ("<dir>/config.json").
// Required: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, vocab_size.
LlamaConfig llama_config(const nlohmann::json& cfg, const std::string& where);

// Throws Error("<where>: missing required field '<field>'") unless cfg has a number there.
int64_t required_int(const nlohmann::json& cfg, const std::string& field, const std::string& where);

}  // namespace llmc::formats
