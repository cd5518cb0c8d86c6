// Llama GGUF -> HF: config from llama.* keys, tensor renaming with the Q/K row un-permute of
// llama.cpp's convert_hf_to_gguf.py undone, and tokenizer.ggml.* -> a tokenizer description.
#include "formats/gguf_llama.hpp"

#include <cstring>
#include <optional>

namespace llmc::formats {

using nlohmann::json;

namespace {

uint64_t need_uint(const GgufFile& f, const std::string& key, const char* why) {
  if (!f.has(key)) throw Error(f.path + ": missing metadata key '" + key + "' (needed for " + why + ")");
  return f.get_uint(key);
}

double need_float(const GgufFile& f, const std::string& key, const char* why) {
  if (!f.has(key)) throw Error(f.path + ": missing metadata key '" + key + "' (needed for " + why + ")");
  return f.get_float(key);
}

struct Heads {
  int64_t q, kv;
};

Heads head_counts(const GgufFile& f) {
  int64_t q = static_cast<int64_t>(need_uint(f, "llama.attention.head_count", "num_attention_heads"));
  int64_t kv = static_cast<int64_t>(f.get_uint_or("llama.attention.head_count_kv", static_cast<uint64_t>(q)));
  if (q <= 0 || kv <= 0 || q % kv != 0)
    throw Error(f.path + ": llama.attention.head_count " + std::to_string(q) + " and head_count_kv " +
                std::to_string(kv) + " are not positive with head_count a multiple of head_count_kv");
  return {q, kv};
}

// "blk.N.<part>.<weight|bias>" -> HF name; empty when the part is not a Llama tensor.
std::string hf_layer_name(const std::string& part, const std::string& n, const std::string& suffix) {
  static const std::pair<const char*, const char*> kParts[] = {
      {"attn_q", "self_attn.q_proj"},      {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},      {"attn_output", "self_attn.o_proj"},
      {"ffn_gate", "mlp.gate_proj"},       {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},       {"attn_norm", "input_layernorm"},
      {"ffn_norm", "post_attention_layernorm"},
  };
  for (auto& [g, h] : kParts)
    if (part == g) return "model.layers." + n + "." + h + "." + suffix;
  return {};
}

json id_or_null(const GgufFile& f, const std::string& key, size_t vocab) {
  if (!f.has(key)) return nullptr;
  uint64_t id = f.get_uint(key);
  if (id >= vocab)
    throw Error(f.path + ": metadata '" + key + "' is " + std::to_string(id) + ", outside the vocabulary of " +
                std::to_string(vocab) + " tokens");
  return id;
}

}  // namespace

json gguf_llama_config(const GgufFile& f) {
  const std::string arch = f.get_string_or("general.architecture", "");
  if (arch != "llama")
    throw Error(f.path + ": general.architecture is '" + arch + "', not 'llama'");
  if (f.get_uint_or("llama.expert_count", 0) > 0)
    throw Error(f.path + ": llama.expert_count > 0: mixture-of-experts Llama GGUFs are not supported");
  if (f.has_tensor("rope_freqs.weight"))
    throw Error(f.path + ": tensor 'rope_freqs.weight' (Llama-3.1 rope frequency factors) is not supported");

  const int64_t hidden = static_cast<int64_t>(need_uint(f, "llama.embedding_length", "hidden_size"));
  const Heads heads = head_counts(f);
  int64_t head_dim;
  if (f.has("llama.attention.key_length")) {
    head_dim = static_cast<int64_t>(f.get_uint("llama.attention.key_length"));
    if (f.has("llama.attention.value_length") &&
        f.get_uint("llama.attention.value_length") != static_cast<uint64_t>(head_dim))
      throw Error(f.path + ": llama.attention.value_length differs from key_length; HF Llama needs them equal");
  } else {
    if (hidden % heads.q != 0)
      throw Error(f.path + ": llama.embedding_length " + std::to_string(hidden) + " is not a multiple of head_count " +
                  std::to_string(heads.q) + " and llama.attention.key_length is absent");
    head_dim = hidden / heads.q;
  }
  if (f.has("llama.rope.dimension_count") && f.get_uint("llama.rope.dimension_count") != static_cast<uint64_t>(head_dim))
    throw Error(f.path + ": llama.rope.dimension_count " + std::to_string(f.get_uint("llama.rope.dimension_count")) +
                " differs from head_dim " + std::to_string(head_dim) + ": partial rotary is not supported");

  uint64_t vocab;
  if (f.has("llama.vocab_size")) {
    vocab = f.get_uint("llama.vocab_size");
  } else if (f.has("tokenizer.ggml.tokens")) {
    vocab = f.at("tokenizer.ggml.tokens").value.size();
  } else if (f.has_tensor("token_embd.weight") && f.tensor("token_embd.weight").dims.size() == 2) {
    vocab = f.tensor("token_embd.weight").dims[1];
  } else {
    throw Error(f.path + ": missing metadata key 'llama.vocab_size' (and no tokenizer.ggml.tokens or token_embd.weight)");
  }

  json c;
  c["architectures"] = json::array({"LlamaForCausalLM"});
  c["model_type"] = "llama";
  c["hidden_size"] = hidden;
  c["intermediate_size"] = need_uint(f, "llama.feed_forward_length", "intermediate_size");
  c["num_hidden_layers"] = need_uint(f, "llama.block_count", "num_hidden_layers");
  c["num_attention_heads"] = heads.q;
  c["num_key_value_heads"] = heads.kv;
  c["head_dim"] = head_dim;
  c["rms_norm_eps"] = need_float(f, "llama.attention.layer_norm_rms_epsilon", "rms_norm_eps");
  c["rope_theta"] = f.get_float_or("llama.rope.freq_base", 10000.0);
  c["vocab_size"] = vocab;
  c["max_position_embeddings"] = need_uint(f, "llama.context_length", "max_position_embeddings");
  c["tie_word_embeddings"] = !f.has_tensor("output.weight");
  c["hidden_act"] = "silu";
  c["attention_bias"] = f.has_tensor("blk.0.attn_q.bias");
  c["mlp_bias"] = f.has_tensor("blk.0.ffn_up.bias");
  if (f.has("tokenizer.ggml.bos_token_id")) c["bos_token_id"] = f.get_uint("tokenizer.ggml.bos_token_id");
  if (f.has("tokenizer.ggml.eos_token_id")) c["eos_token_id"] = f.get_uint("tokenizer.ggml.eos_token_id");
  const std::string scaling = f.get_string_or("llama.rope.scaling.type", "none");
  if (scaling == "linear") {
    c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", need_float(f, "llama.rope.scaling.factor", "rope_scaling")}};
  } else if (scaling != "none") {
    throw Error(f.path + ": llama.rope.scaling.type '" + scaling + "' is not supported (only none and linear)");
  }
  return c;
}

Tensor llama_unpermute_qk(const Tensor& w, int64_t n_head, const std::string& what) {
  if (w.dtype() != DType::F32 || w.rank() < 1 || w.rank() > 2)
    throw Error(what + ": un-permute needs an f32 tensor of rank 1 or 2, got " + dtype_name(w.dtype()) + " " +
                shape_str(w.shape()));
  const int64_t rows = w.dim(0), cols = w.rank() == 2 ? w.dim(1) : 1;
  if (n_head <= 0 || rows % (2 * n_head) != 0)
    throw Error(what + ": " + std::to_string(rows) + " rows cannot be split into " + std::to_string(n_head) +
                " heads of an even size");
  const int64_t hd = rows / n_head, half = hd / 2;
  Tensor out(DType::F32, w.shape());
  const float* src = w.data<float>();
  float* dst = out.mutable_data<float>();
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t h = r / hd, i = (r % hd) / half, j = r % half;
    const int64_t g = h * hd + 2 * j + i;
    std::memcpy(dst + r * cols, src + g * cols, static_cast<size_t>(cols) * sizeof(float));
  }
  return out;
}

std::map<std::string, Tensor> gguf_llama_weights(const GgufFile& f) {
  const json cfg = gguf_llama_config(f);
  const Heads heads = head_counts(f);
  const uint64_t n_layers = cfg["num_hidden_layers"].get<uint64_t>();
  std::map<std::string, Tensor> out;
  for (const auto& t : f.tensors) {
    const std::string& name = t.name;
    std::string hf;
    std::optional<int64_t> unpermute_heads;
    if (name == "token_embd.weight") {
      hf = "model.embed_tokens.weight";
    } else if (name == "output_norm.weight") {
      hf = "model.norm.weight";
    } else if (name == "output.weight") {
      hf = "lm_head.weight";
    } else if (name.rfind("blk.", 0) == 0) {
      // blk.<N>.<part>.<weight|bias>
      const size_t d1 = name.find('.', 4), d3 = name.rfind('.');
      if (d1 != std::string::npos && d3 > d1) {
        const std::string n = name.substr(4, d1 - 4), part = name.substr(d1 + 1, d3 - d1 - 1), suffix = name.substr(d3 + 1);
        const bool numeric = !n.empty() && n.size() < 10 && n.find_first_not_of("0123456789") == std::string::npos;
        if (numeric && (suffix == "weight" || suffix == "bias")) {
          if (std::stoull(n) >= n_layers)
            throw Error(f.path + ": tensor '" + name + "': layer " + n + " is past llama.block_count " +
                        std::to_string(n_layers));
          hf = hf_layer_name(part, n, suffix);
          if (part == "attn_q") unpermute_heads = heads.q;
          if (part == "attn_k") unpermute_heads = heads.kv;
        }
      }
    }
    if (hf.empty()) throw Error(f.path + ": tensor '" + name + "' is not a Llama tensor this loader maps to HF");
    Tensor w = gguf_tensor_f32(f, name);
    if (unpermute_heads) w = llama_unpermute_qk(w, *unpermute_heads, f.path + ": tensor '" + name + "'");
    out.emplace(std::move(hf), std::move(w));
  }
  return out;
}

json gguf_tokenizer_json(const GgufFile& f) {
  if (!f.has("tokenizer.ggml.model")) throw Error(f.path + ": missing metadata key 'tokenizer.ggml.model'");
  const std::string model = f.get_string("tokenizer.ggml.model");
  std::string type;
  if (model == "gpt2") type = "bpe";
  else if (model == "llama") type = "spm";
  else throw Error(f.path + ": tokenizer.ggml.model '" + model + "' is not supported (gpt2 or llama)");
  const bool spm = type == "spm";

  auto need_array = [&](const std::string& key, bool strings) -> const GgufValue& {
    if (!f.has(key)) throw Error(f.path + ": missing metadata key '" + key + "' (needed for the " + model + " tokenizer)");
    // Typed getters validate the element kind; the JSON value is then used as stored.
    if (strings) (void)f.get_string_array(key);
    return f.at(key);
  };

  json j;
  j["type"] = type;
  j["model"] = model;
  j["pre"] = f.get_string_or("tokenizer.ggml.pre", "default");
  j["vocab"] = need_array("tokenizer.ggml.tokens", true).value;
  const size_t vocab = j["vocab"].size();
  j["merges"] = spm ? json::array() : need_array("tokenizer.ggml.merges", true).value;

  auto per_token = [&](const std::string& key, bool required, bool ints) -> json {
    if (!f.has(key)) {
      if (required) (void)need_array(key, false);
      return json::array();
    }
    if (ints) (void)f.get_int_array(key);
    else (void)f.get_float_array(key);
    const json& v = f.at(key).value;
    if (v.size() != vocab)
      throw Error(f.path + ": metadata '" + key + "' has " + std::to_string(v.size()) + " entries for " +
                  std::to_string(vocab) + " tokens");
    return v;
  };
  j["scores"] = per_token("tokenizer.ggml.scores", spm, false);
  j["token_types"] = per_token("tokenizer.ggml.token_type", false, true);

  j["bos_id"] = id_or_null(f, "tokenizer.ggml.bos_token_id", vocab);
  j["eos_id"] = id_or_null(f, "tokenizer.ggml.eos_token_id", vocab);
  j["unk_id"] = id_or_null(f, "tokenizer.ggml.unknown_token_id", vocab);
  j["pad_id"] = id_or_null(f, "tokenizer.ggml.padding_token_id", vocab);
  j["add_bos"] = f.get_bool_or("tokenizer.ggml.add_bos_token", spm);
  j["add_eos"] = f.get_bool_or("tokenizer.ggml.add_eos_token", false);
  j["add_space_prefix"] = f.get_bool_or("tokenizer.ggml.add_space_prefix", spm);
  j["chat_template"] = f.has("tokenizer.chat_template") ? json(f.get_string("tokenizer.chat_template")) : json(nullptr);
  return j;
}

}  // namespace llmc::formats
