// The Llama-family decoder (pre-norm, RMSNorm, rotary with rotate_half, GQA attention, SwiGLU MLP).
#include "formats/hf_config.hpp"
#include "runtime/builders/builders.hpp"
#include "runtime/builders/graph_builder.hpp"

namespace llmc::runtime {

Tensor take_weight(WeightMap& w, const std::string& name, const Shape& shape, const std::string& where) {
  auto it = w.find(name);
  if (it == w.end()) throw Error(where + ": missing weight '" + name + "'");
  Tensor t = it->second;
  if (t.shape() != shape)
    throw Error(where + ": weight '" + name + "' has shape " + shape_str(t.shape()) + ", expected " + shape_str(shape));
  if (!is_float(t.dtype())) throw Error(where + ": weight '" + name + "' has non-float dtype " + dtype_name(t.dtype()));
  return t.to_f32();
}

Model build_llama(const nlohmann::json& config, WeightMap w, const std::string& where) {
  const formats::LlamaConfig c = formats::llama_config(config, where);
  GraphBuilder b(where, w);
  const int64_t D = c.hidden_size, F = c.intermediate_size, Dh = c.head_dim;
  const int64_t Q = c.num_heads * Dh, KV = c.num_kv_heads * Dh;

  b.input("input_ids", DType::I64);
  const std::string embed = b.weight("model.embed_tokens.weight", {c.vocab_size, D});
  std::string h = b.node("Embedding", {embed, "input_ids"}, "embed", {});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    std::string x = b.node("RMSNorm", {h, b.weight(p + "input_layernorm.weight", {D})}, p + "input_norm",
                           {{"epsilon", c.rms_norm_eps}});
    std::string q = b.linear(x, p + "self_attn.q_proj", Q, D);
    std::string k = b.linear(x, p + "self_attn.k_proj", KV, D);
    std::string v = b.linear(x, p + "self_attn.v_proj", KV, D);
    q = b.node("Rotary", {q}, p + "q_rotary",
               {{"num_heads", c.num_heads}, {"head_dim", Dh}, {"theta", c.rope_theta}, {"neox", int64_t{1}}});
    k = b.node("Rotary", {k}, p + "k_rotary",
               {{"num_heads", c.num_kv_heads}, {"head_dim", Dh}, {"theta", c.rope_theta}, {"neox", int64_t{1}}});
    std::string a = b.node("Attention", {q, k, v}, p + "attention",
                           {{"num_heads", c.num_heads},
                            {"num_kv_heads", c.num_kv_heads},
                            {"head_dim", Dh},
                            {"causal", int64_t{1}},
                            {"kv_cache", int64_t{1}}});
    a = b.linear(a, p + "self_attn.o_proj", D, Q);
    h = b.onnx("Add", {h, a}, p + "attn_residual");
    x = b.node("RMSNorm", {h, b.weight(p + "post_attention_layernorm.weight", {D})}, p + "post_norm",
               {{"epsilon", c.rms_norm_eps}});
    std::string gate = b.linear(x, p + "mlp.gate_proj", F, D);
    std::string up = b.linear(x, p + "mlp.up_proj", F, D);
    std::string m = b.node("SwiGLU", {gate, up}, p + "swiglu", {});
    m = b.linear(m, p + "mlp.down_proj", D, F);
    h = b.onnx("Add", {h, m}, p + "mlp_residual");
  }
  h = b.node("RMSNorm", {h, b.weight("model.norm.weight", {D})}, "final_norm", {{"epsilon", c.rms_norm_eps}});
  const std::string head = c.tie_word_embeddings || !w.count("lm_head.weight") ? embed : b.weight("lm_head.weight", {c.vocab_size, D});
  b.node_to("Linear", {h, head}, "lm_head", {}, "logits");
  b.output("logits", DType::F32);

  Model m = b.finish();
  m.arch = "llama";
  m.config = config;
  return m;
}

}  // namespace llmc::runtime
