// A small random-weight Llama (2 layers, 4 heads, 2 KV heads, vocab 96, FFN 128) for the
// model-level compression tests, and random token streams over its vocabulary.
#pragma once
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "runtime/builders/builders.hpp"

namespace llmc::test {

constexpr int64_t kTinyVocab = 96;

inline Model tiny_llama(uint64_t seed, int64_t hidden = 64, bool tied = false) {
  const nlohmann::json cfg = {{"model_type", "llama"},     {"hidden_size", hidden},    {"intermediate_size", 128},
                              {"num_hidden_layers", 2},    {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                              {"vocab_size", kTinyVocab},  {"rms_norm_eps", 1e-5},     {"rope_theta", 10000.0},
                              {"tie_word_embeddings", tied}};
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.08f);
  std::map<std::string, Tensor> w;
  auto add = [&](const std::string& n, Shape s, float mean = 0) {
    Tensor t(DType::F32, s);
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = mean + nd(rng);
    w[n] = t;
  };
  add("model.embed_tokens.weight", {kTinyVocab, hidden});
  if (!tied) add("lm_head.weight", {kTinyVocab, hidden});
  add("model.norm.weight", {hidden}, 1.0f);
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {hidden}, 1.0f);
    add(p + "post_attention_layernorm.weight", {hidden}, 1.0f);
    add(p + "self_attn.q_proj.weight", {hidden, hidden});
    add(p + "self_attn.k_proj.weight", {hidden / 2, hidden});  // 2 of 4 heads' width
    add(p + "self_attn.v_proj.weight", {hidden / 2, hidden});
    add(p + "self_attn.o_proj.weight", {hidden, hidden});
    add(p + "mlp.gate_proj.weight", {128, hidden});
    add(p + "mlp.up_proj.weight", {128, hidden});
    add(p + "mlp.down_proj.weight", {hidden, 128});
  }
  Model m = runtime::build_llama(cfg, w, "tiny");
  m.source = "tiny";
  return m;
}

inline std::vector<int64_t> random_tokens(size_t n, uint64_t seed) {
  std::mt19937 rng(seed);
  std::vector<int64_t> t(n);
  for (auto& x : t) x = static_cast<int64_t>(rng() % kTinyVocab);
  return t;
}

}  // namespace llmc::test
