// Random-weight tiny Llama and GPT-2 models for the CUDA backend tests (built through the same
// builders as real checkpoints), and an independent round-to-nearest quantizer that turns their
// decoder linears into LinearQ nodes the way the compression passes do (or 2:4-prunes them).
#pragma once
#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "runtime/builders/builders.hpp"
#include "runtime/ir/model.hpp"

namespace llmc::test {

struct TinyShape {
  int64_t hidden = 256, inter = 512, layers = 2, heads = 4, kv_heads = 2, vocab = 300;
  float head_std = 0.08f;  // larger spreads the logits (robust greedy margins)
};

inline void fill_normal(Tensor& t, std::mt19937& rng, float std, float mean = 0.0f) {
  std::normal_distribution<float> nd(mean, std);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = nd(rng);
}

inline Model tiny_llama(const TinyShape& s, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::map<std::string, Tensor> w;
  const int64_t hd = s.hidden / s.heads;
  auto add = [&](const std::string& n, Shape sh, float std, float mean = 0.0f) {
    Tensor t(DType::F32, sh);
    fill_normal(t, rng, std, mean);
    w[n] = t;
  };
  add("model.embed_tokens.weight", {s.vocab, s.hidden}, 1.0f);
  add("lm_head.weight", {s.vocab, s.hidden}, s.head_std);
  add("model.norm.weight", {s.hidden}, 0.1f, 1.0f);
  const float std = 1.0f / std::sqrt(static_cast<float>(s.hidden));
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {s.hidden}, 0.1f, 1.0f);
    add(p + "post_attention_layernorm.weight", {s.hidden}, 0.1f, 1.0f);
    add(p + "self_attn.q_proj.weight", {s.heads * hd, s.hidden}, 2 * std);
    add(p + "self_attn.k_proj.weight", {s.kv_heads * hd, s.hidden}, 2 * std);
    add(p + "self_attn.v_proj.weight", {s.kv_heads * hd, s.hidden}, std);
    add(p + "self_attn.o_proj.weight", {s.hidden, s.heads * hd}, std);
    add(p + "mlp.gate_proj.weight", {s.inter, s.hidden}, std);
    add(p + "mlp.up_proj.weight", {s.inter, s.hidden}, std);
    add(p + "mlp.down_proj.weight", {s.hidden, s.inter}, 1.0f / std::sqrt(static_cast<float>(s.inter)));
  }
  nlohmann::json cfg = {{"model_type", "llama"},       {"hidden_size", s.hidden},   {"intermediate_size", s.inter},
                        {"num_hidden_layers", s.layers}, {"num_attention_heads", s.heads},
                        {"num_key_value_heads", s.kv_heads}, {"vocab_size", s.vocab}, {"rms_norm_eps", 1e-5},
                        {"rope_theta", 10000.0},       {"tie_word_embeddings", false}, {"max_position_embeddings", 512}};
  Model m = runtime::build_llama(cfg, w, "tiny-llama");
  m.source = "tiny-llama";
  return m;
}

// GPT-2 layout (Conv1D weights [in, out], biases everywhere, learned positions, tied head).
inline Model tiny_gpt2(uint64_t seed) {
  const int64_t D = 128, L = 2, H = 4, V = 200, P = 256, F = 4 * D;
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::map<std::string, Tensor> w;
  auto add = [&](const std::string& n, Shape sh, float std, float mean = 0.0f) {
    Tensor t(DType::F32, sh);
    fill_normal(t, rng, std, mean);
    w[n] = t;
  };
  add("wte.weight", {V, D}, 0.3f);
  add("wpe.weight", {P, D}, 0.1f);
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    add(p + "ln_1.weight", {D}, 0.1f, 1.0f);
    add(p + "ln_1.bias", {D}, 0.1f);
    add(p + "attn.c_attn.weight", {D, 3 * D}, 0.12f);
    add(p + "attn.c_attn.bias", {3 * D}, 0.1f);
    add(p + "attn.c_proj.weight", {D, D}, 0.08f);
    add(p + "attn.c_proj.bias", {D}, 0.1f);
    add(p + "ln_2.weight", {D}, 0.1f, 1.0f);
    add(p + "ln_2.bias", {D}, 0.1f);
    add(p + "mlp.c_fc.weight", {D, F}, 0.08f);
    add(p + "mlp.c_fc.bias", {F}, 0.1f);
    add(p + "mlp.c_proj.weight", {F, D}, 0.04f);
    add(p + "mlp.c_proj.bias", {D}, 0.1f);
  }
  add("ln_f.weight", {D}, 0.1f, 1.0f);
  add("ln_f.bias", {D}, 0.1f);
  nlohmann::json cfg = {{"model_type", "gpt2"}, {"n_embd", D}, {"n_layer", L}, {"n_head", H},
                        {"vocab_size", V},      {"n_positions", P}, {"activation_function", "gelu_new"}};
  Model m = runtime::build_gpt2(cfg, w, "tiny-gpt2");
  m.source = "tiny-gpt2";
  return m;
}

// Round to nearest on an f16 scale (symmetric: s = max|w| / (2^(b−1) − 1); asymmetric: the
// [min(w, 0), max(w, 0)] range over 2^b − 1 steps with an integer zero point).
inline QuantizedWeight rtn_quantize(const Tensor& w, int bits, int64_t group, bool sym) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  QuantizedWeight q = QuantizedWeight::allocate(bits, rows, cols, group, sym);
  const int64_t gl = q.group_len();
  const float* x = w.data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < q.n_groups(); ++g) {
      const float* v = x + r * cols + g * gl;
      const int64_t len = std::min(gl, cols - g * gl);  // the last group may be shorter
      float lo = 0, hi = 0;
      for (int64_t i = 0; i < len; ++i) {
        lo = std::min(lo, v[i]);
        hi = std::max(hi, v[i]);
      }
      const float range = sym ? std::max(-lo, hi) / ((1 << (bits - 1)) - 1) : (hi - lo) / ((1 << bits) - 1);
      const uint16_t sb = f32_to_f16(range > 0 ? range : 1.0f);
      const float s = f16_to_f32(sb);
      q.scales[r * q.n_groups() + g] = sb;
      int z = 0;
      if (!sym) {
        z = std::clamp(static_cast<int>(std::nearbyint(-lo / s)), 0, (1 << bits) - 1);
        q.set_zero(r, g, z);
      }
      for (int64_t i = 0; i < len; ++i)
        q.set_q(r, g * gl + i, std::clamp(static_cast<int>(std::nearbyint(v[i] / s)) + z, q.qmin(), q.qmax()));
    }
  return q;
}

// Every decoder Linear (not the head) becomes a LinearQ over its RTN-quantized weight.
inline void quantize_decoder_linears(Model& m, int bits, int64_t group, bool sym) {
  Graph& g = m.graph;
  for (Node& n : g.nodes) {
    if (n.domain != "llmc" || n.op != "Linear" || n.name == "lm_head") continue;
    const std::string wname = n.inputs[1];
    g.quantized[wname] = rtn_quantize(g.weights.at(wname), bits, group, sym);
    std::vector<std::string> ins{n.inputs[0]};
    if (n.inputs.size() > 2 && !n.inputs[2].empty()) ins.push_back(n.inputs[2]);
    n.op = "LinearQ";
    n.inputs = ins;
    n.attrs = {{"weight", wname}, {"act", std::string("none")}};
    g.weights.erase(wname);
  }
}

// Every decoder Linear (not the head) keeps the two largest magnitudes of each group of 4
// consecutive inputs (2:4 along in_features, as magnitude pruning leaves it); the CUDA session
// then runs them through cuSPARSELt where the build has it.
inline void prune_decoder_linears_2to4(Model& m) {
  for (Node& n : m.graph.nodes) {
    if (n.op != "Linear" || n.name == "lm_head") continue;
    Tensor& w = m.graph.weights.at(n.inputs[1]);
    float* p = w.mutable_data<float>();
    for (int64_t i = 0; i < w.numel(); i += 4) {
      int order[4] = {0, 1, 2, 3};
      std::sort(order, order + 4, [&](int a, int b) { return std::fabs(p[i + a]) > std::fabs(p[i + b]); });
      p[i + order[2]] = 0.0f;
      p[i + order[3]] = 0.0f;
    }
  }
}

}  // namespace llmc::test
