#include "formats/hf_config.hpp"

#include "formats/mapped_file.hpp"
#include "runtime/ir/error.hpp"

namespace llmc::formats {

using nlohmann::json;

json read_hf_config(const std::string& path) {
  std::string text = read_text_file(path);
  try {
    json j = json::parse(text);
    if (!j.is_object()) throw Error(path + ": config is not a JSON object");
    return j;
  } catch (const json::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
}

int64_t required_int(const json& cfg, const std::string& field, const std::string& where) {
  if (!cfg.contains(field) || cfg[field].is_null()) throw Error(where + ": missing required field '" + field + "'");
  if (!cfg[field].is_number_integer() || cfg[field].get<int64_t>() <= 0)
    throw Error(where + ": field '" + field + "' must be a positive integer, got " + cfg[field].dump());
  return cfg[field].get<int64_t>();
}

namespace {
template <class T>
T optional(const json& cfg, const std::string& field, T dflt, const std::string& where) {
  if (!cfg.contains(field) || cfg[field].is_null()) return dflt;
  try {
    return cfg[field].get<T>();
  } catch (const json::exception&) {
    throw Error(where + ": field '" + field + "' has the wrong type: " + cfg[field].dump());
  }
}
}  // namespace

LlamaConfig llama_config(const json& cfg, const std::string& where) {
  LlamaConfig c;
  c.model_type = optional<std::string>(cfg, "model_type", "llama", where);
  c.hidden_size = required_int(cfg, "hidden_size", where);
  c.intermediate_size = required_int(cfg, "intermediate_size", where);
  c.num_layers = required_int(cfg, "num_hidden_layers", where);
  c.num_heads = required_int(cfg, "num_attention_heads", where);
  c.vocab_size = required_int(cfg, "vocab_size", where);
  c.num_kv_heads = cfg.contains("num_key_value_heads") && !cfg["num_key_value_heads"].is_null()
                       ? required_int(cfg, "num_key_value_heads", where)
                       : c.num_heads;
  c.head_dim = cfg.contains("head_dim") && !cfg["head_dim"].is_null() ? required_int(cfg, "head_dim", where)
                                                                        : c.hidden_size / c.num_heads;
  if (c.num_heads % c.num_kv_heads != 0)
    throw Error(where + ": num_attention_heads (" + std::to_string(c.num_heads) +
                ") is not a multiple of num_key_value_heads (" + std::to_string(c.num_kv_heads) + ")");
  c.max_positions = optional<int64_t>(cfg, "max_position_embeddings", 2048, where);
  c.rms_norm_eps = optional<double>(cfg, "rms_norm_eps", 1e-6, where);
  c.rope_theta = optional<double>(cfg, "rope_theta", 10000.0, where);
  if (cfg.contains("rope_scaling") && !cfg["rope_scaling"].is_null()) {
    std::string type = optional<std::string>(cfg["rope_scaling"], "rope_type",
                                             optional<std::string>(cfg["rope_scaling"], "type", "", where), where);
    if (type != "default" && !type.empty())
      throw Error(where + ": rope_scaling type '" + type + "' is not supported yet");
  }
  c.tie_word_embeddings = optional<bool>(cfg, "tie_word_embeddings", false, where);
  // Qwen2 has biases on q, k, v but not o; Llama's attention_bias puts them on all four.
  c.attention_bias = optional<bool>(cfg, "attention_bias", c.model_type == "qwen2", where);
  c.mlp_bias = optional<bool>(cfg, "mlp_bias", false, where);
  return c;
}

}  // namespace llmc::formats
