// GPT-2 (Radford et al. 2019, HF GPT2LMHeadModel): learned absolute positions, pre-LayerNorm
// blocks, causal attention with a KV cache, tanh-GELU MLP and a head tied to the token embedding.
#include <algorithm>
#include <cmath>

#include "formats/hf_config.hpp"
#include "runtime/builders/builders.hpp"
#include "runtime/builders/graph_builder.hpp"

namespace llmc::runtime {

namespace {

double opt_number(const nlohmann::json& c, const std::string& field, double dflt, const std::string& where) {
  if (!c.contains(field) || c[field].is_null()) return dflt;
  if (!c[field].is_number()) throw Error(where + ": field '" + field + "' must be a number, got " + c[field].dump());
  return c[field].get<double>();
}

bool opt_bool(const nlohmann::json& c, const std::string& field, bool dflt, const std::string& where) {
  if (!c.contains(field) || c[field].is_null()) return dflt;
  if (!c[field].is_boolean()) throw Error(where + ": field '" + field + "' must be a boolean, got " + c[field].dump());
  return c[field].get<bool>();
}

// Rows [r0, r0 + n) of a row-major 2-D (or 1-D) tensor, as an owned copy.
Tensor row_slice(const Tensor& t, int64_t r0, int64_t n) {
  const int64_t cols = t.rank() == 2 ? t.dim(1) : 1;
  Shape s = t.rank() == 2 ? Shape{n, cols} : Shape{n};
  Tensor out(DType::F32, s);
  std::copy_n(t.data<float>() + r0 * cols, n * cols, out.mutable_data<float>());
  return out;
}

Tensor transposed(const Tensor& t) {
  const int64_t r = t.dim(0), c = t.dim(1);
  Tensor out(DType::F32, {c, r});
  const float* src = t.data<float>();
  float* dst = out.mutable_data<float>();
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) dst[j * r + i] = src[i * c + j];
  return out;
}

// HF GPT-2 keeps its projections in Conv1D, which computes x·W + b with W stored [in, out]. The
// graph's Linear takes [out, in], so each is transposed once here. c_attn's output columns are
// q | k | v (GPT2Attention splits them in that order), so it becomes three Linears.
void convert_conv1d(WeightMap& w, const std::string& p, int64_t D, int64_t F, const std::string& where) {
  Tensor qkv = transposed(take_weight(w, p + "attn.c_attn.weight", {D, 3 * D}, where));
  Tensor qkv_b = take_weight(w, p + "attn.c_attn.bias", {3 * D}, where);
  const char* names[] = {"q_proj", "k_proj", "v_proj"};
  for (int i = 0; i < 3; ++i) {
    w[p + "attn." + names[i] + ".weight"] = row_slice(qkv, i * D, D);
    w[p + "attn." + names[i] + ".bias"] = row_slice(qkv_b, i * D, D);
  }
  w.erase(p + "attn.c_attn.weight");
  w.erase(p + "attn.c_attn.bias");
  const struct {
    const char* name;
    int64_t in, out;
  } projections[] = {{"attn.c_proj.weight", D, D}, {"mlp.c_fc.weight", D, F}, {"mlp.c_proj.weight", F, D}};
  for (const auto& pr : projections)
    w[p + pr.name] = transposed(take_weight(w, p + pr.name, {pr.in, pr.out}, where));
}

}  // namespace

Model build_gpt2(const nlohmann::json& config, WeightMap w, const std::string& where) {
  const int64_t D = formats::required_int(config, "n_embd", where);
  const int64_t L = formats::required_int(config, "n_layer", where);
  const int64_t H = formats::required_int(config, "n_head", where);
  const int64_t V = formats::required_int(config, "vocab_size", where);
  const int64_t P = formats::required_int(config, "n_positions", where);
  const int64_t F = config.contains("n_inner") && !config["n_inner"].is_null()
                        ? formats::required_int(config, "n_inner", where)
                        : 4 * D;
  if (D % H != 0)
    throw Error(where + ": n_embd (" + std::to_string(D) + ") is not a multiple of n_head (" + std::to_string(H) + ")");
  const int64_t Dh = D / H;
  const double eps = opt_number(config, "layer_norm_epsilon", 1e-5, where);
  const std::string act = config.value("activation_function", "gelu_new");
  std::string approximate;
  if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast")
    approximate = "tanh";
  else if (act == "gelu")
    approximate = "none";
  else
    throw Error(where + ": activation_function '" + act + "' is not supported (supported: gelu_new, gelu)");
  const bool scale_weights = opt_bool(config, "scale_attn_weights", true, where);
  const bool scale_by_layer = opt_bool(config, "scale_attn_by_inverse_layer_idx", false, where);

  // Checkpoints saved from GPT2LMHeadModel prefix the body with "transformer."; the original
  // OpenAI conversion (GPT2Model) does not.
  const std::string root = w.count("transformer.wte.weight") ? "transformer." : "";
  for (int64_t l = 0; l < L; ++l) convert_conv1d(w, root + "h." + std::to_string(l) + ".", D, F, where);

  GraphBuilder b(where, w);
  b.input("input_ids", DType::I64);
  const std::string wte = b.weight(root + "wte.weight", {V, D});
  std::string tok = b.node("Embedding", {wte, "input_ids"}, "embed", {});
  std::string pos = b.node("Positions", {"input_ids"}, "positions", {});
  pos = b.node("Embedding", {b.weight(root + "wpe.weight", {P, D}), pos}, "position_embed", {});
  std::string h = b.onnx("Add", {tok, pos}, "embed_sum");
  auto layer_norm = [&](const std::string& x, const std::string& prefix) {
    return b.node("LayerNorm", {x, b.weight(prefix + ".weight", {D}), b.weight(prefix + ".bias", {D})}, prefix,
                  {{"epsilon", eps}});
  };
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = root + "h." + std::to_string(l) + ".";
    std::string x = layer_norm(h, p + "ln_1");
    std::string q = b.linear(x, p + "attn.q_proj", D, D);
    std::string k = b.linear(x, p + "attn.k_proj", D, D);
    std::string v = b.linear(x, p + "attn.v_proj", D, D);
    // GPT2Attention divides scores by sqrt(head_dim) when scale_attn_weights, and additionally by
    // (layer_idx + 1) when scale_attn_by_inverse_layer_idx (Mistral-style GPT-2 variants).
    double scale = scale_weights ? 1.0 / std::sqrt(static_cast<double>(Dh)) : 1.0;
    if (scale_by_layer) scale /= static_cast<double>(l + 1);
    std::string a = b.node("Attention", {q, k, v}, p + "attention",
                           {{"num_heads", H},
                            {"num_kv_heads", H},
                            {"head_dim", Dh},
                            {"causal", int64_t{1}},
                            {"kv_cache", int64_t{1}},
                            {"scale", scale}});
    a = b.linear(a, p + "attn.c_proj", D, D);
    h = b.onnx("Add", {h, a}, p + "attn_residual");
    x = layer_norm(h, p + "ln_2");
    std::string m = b.linear(x, p + "mlp.c_fc", F, D);
    m = b.node("Gelu", {m}, p + "gelu", {{"approximate", approximate}});
    m = b.linear(m, p + "mlp.c_proj", D, F);
    h = b.onnx("Add", {h, m}, p + "mlp_residual");
  }
  h = layer_norm(h, root + "ln_f");
  const bool tied = opt_bool(config, "tie_word_embeddings", true, where);
  const std::string head = tied || !b.has_weight("lm_head.weight") ? wte : b.weight("lm_head.weight", {V, D});
  b.node_to("Linear", {h, head}, "lm_head", {}, "logits");
  b.output("logits", DType::F32);

  Model m = b.finish();
  m.arch = "gpt2";
  m.config = config;
  return m;
}

}  // namespace llmc::runtime
