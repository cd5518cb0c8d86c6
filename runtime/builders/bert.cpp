// BERT encoder (Devlin et al. 2019, HF BertModel): word + absolute position + token-type
// embeddings, post-LayerNorm blocks with bidirectional attention; outputs last_hidden_state.
#include <algorithm>
#include <cmath>

#include "formats/hf_config.hpp"
#include "runtime/builders/builders.hpp"
#include "runtime/builders/graph_builder.hpp"

namespace llmc::runtime {

Model build_bert(const nlohmann::json& config, WeightMap w, const std::string& where) {
  const int64_t D = formats::required_int(config, "hidden_size", where);
  const int64_t L = formats::required_int(config, "num_hidden_layers", where);
  const int64_t H = formats::required_int(config, "num_attention_heads", where);
  const int64_t F = formats::required_int(config, "intermediate_size", where);
  const int64_t V = formats::required_int(config, "vocab_size", where);
  const int64_t P = formats::required_int(config, "max_position_embeddings", where);
  const int64_t types = config.contains("type_vocab_size") ? formats::required_int(config, "type_vocab_size", where) : 2;
  if (D % H != 0)
    throw Error(where + ": hidden_size (" + std::to_string(D) + ") is not a multiple of num_attention_heads (" +
                std::to_string(H) + ")");
  const int64_t Dh = D / H;
  double eps = 1e-12;
  if (config.contains("layer_norm_eps") && !config["layer_norm_eps"].is_null()) {
    if (!config["layer_norm_eps"].is_number())
      throw Error(where + ": field 'layer_norm_eps' must be a number, got " + config["layer_norm_eps"].dump());
    eps = config["layer_norm_eps"].get<double>();
  }
  const std::string act = config.value("hidden_act", "gelu");
  std::string approximate;
  if (act == "gelu")
    approximate = "none";
  else if (act == "gelu_new" || act == "gelu_pytorch_tanh")
    approximate = "tanh";
  else
    throw Error(where + ": hidden_act '" + act + "' is not supported (supported: gelu, gelu_new)");
  const std::string pos_type = config.value("position_embedding_type", "absolute");
  if (pos_type != "absolute")
    throw Error(where + ": position_embedding_type '" + pos_type + "' is not supported (supported: absolute)");

  // BertForMaskedLM and friends prefix the encoder with "bert."; BertModel (sentence-transformers) does not.
  const std::string root = w.count("bert.embeddings.word_embeddings.weight") ? "bert." : "";
  const std::string e = root + "embeddings.";
  // The graph takes input_ids only, so every token has type 0: its embedding is one row, added
  // to every position (BertEmbeddings defaults token_type_ids to zeros).
  {
    Tensor table = take_weight(w, e + "token_type_embeddings.weight", {types, D}, where);
    Tensor row(DType::F32, {D});
    std::copy_n(table.data<float>(), D, row.mutable_data<float>());
    w[e + "token_type_embeddings.row0"] = std::move(row);
  }

  GraphBuilder b(where, w);
  // LayerNorm over `x` from `<prefix>.weight/.bias`; its output is named `out` (default: the prefix).
  auto layer_norm = [&](const std::string& x, const std::string& prefix, std::string out = "") {
    if (out.empty()) out = prefix;
    b.node_to("LayerNorm", {x, b.weight(prefix + ".weight", {D}), b.weight(prefix + ".bias", {D})}, prefix,
              {{"epsilon", eps}}, out);
    return out;
  };
  b.input("input_ids", DType::I64);
  std::string h = b.node("Embedding", {b.weight(e + "word_embeddings.weight", {V, D}), "input_ids"}, "embed", {});
  std::string pos = b.node("Positions", {"input_ids"}, "positions", {});
  pos = b.node("Embedding", {b.weight(e + "position_embeddings.weight", {P, D}), pos}, "position_embed", {});
  h = b.onnx("Add", {h, pos}, "embed_positions");
  h = b.onnx("Add", {h, b.weight(e + "token_type_embeddings.row0", {D})}, "embed_token_type");
  h = layer_norm(h, e + "LayerNorm");
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = root + "encoder.layer." + std::to_string(l) + ".";
    std::string q = b.linear(h, p + "attention.self.query", D, D);
    std::string k = b.linear(h, p + "attention.self.key", D, D);
    std::string v = b.linear(h, p + "attention.self.value", D, D);
    std::string a = b.node("Attention", {q, k, v}, p + "attention",
                           {{"num_heads", H}, {"num_kv_heads", H}, {"head_dim", Dh}, {"causal", int64_t{0}},
                            {"kv_cache", int64_t{0}}});
    a = b.linear(a, p + "attention.output.dense", D, D);
    h = layer_norm(b.onnx("Add", {h, a}, p + "attn_residual"), p + "attention.output.LayerNorm");
    std::string m = b.linear(h, p + "intermediate.dense", F, D);
    m = b.node("Gelu", {m}, p + "gelu", {{"approximate", approximate}});
    m = b.linear(m, p + "output.dense", D, F);
    h = layer_norm(b.onnx("Add", {h, m}, p + "mlp_residual"), p + "output.LayerNorm",
                   l + 1 == L ? "last_hidden_state" : "");
  }
  b.output("last_hidden_state", DType::F32);

  Model m = b.finish();
  m.arch = "bert";
  m.config = config;
  return m;
}

}  // namespace llmc::runtime
