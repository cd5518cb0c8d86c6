// Synthetic random-weight models (synthetic.hpp). Values come from a counter-based hash
// (splitmix64 of seed and index), so filling a billion weights is parallel and reproducible.
#include "runtime/cuda/synthetic.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <numeric>
#include <set>
#include <vector>

#include "runtime/builders/builders.hpp"

namespace llmc::runtime {

namespace {

uint64_t mix(uint64_t x) {  // splitmix64 finalizer
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}
float uniform(uint64_t seed, int64_t i) {  // in [−1, 1)
  return static_cast<float>(mix(seed ^ mix(static_cast<uint64_t>(i))) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

Tensor random_tensor(Shape shape, uint64_t seed, float spread, float mean = 0.0f) {
  Tensor t(DType::F32, std::move(shape));
  float* p = t.mutable_data<float>();
  const int64_t n = t.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) p[i] = mean + spread * uniform(seed, i);
  return t;
}

// Zeros two of every four consecutive inputs of each row (the 2:4 pattern of `prune --pattern 2:4`),
// which pair kept chosen by the hash per group: all six patterns occur.
void make_2to4(Tensor& t, uint64_t seed) {
  static constexpr uint8_t kKeep[6] = {0b0011, 0b0101, 0b1001, 0b0110, 0b1010, 0b1100};
  float* p = t.mutable_data<float>();
  const int64_t groups = t.numel() / 4;
#pragma omp parallel for schedule(static) if (groups > 16384)
  for (int64_t gi = 0; gi < groups; ++gi) {
    const uint8_t keep = kKeep[mix(seed ^ mix(static_cast<uint64_t>(gi))) % 6];
    for (int e = 0; e < 4; ++e)
      if (!(keep >> e & 1)) p[gi * 4 + e] = 0.0f;
  }
}

// The INT4 codes' counterpart: two of every four consecutive codes of a row set to 8 (value 0 of a
// symmetric weight), as quantizing a 2:4-pruned weight leaves them. cols must be a multiple of 4.
void make_2to4_codes(QuantizedWeight& w, uint64_t seed) {
  static constexpr uint8_t kKeep[6] = {0b0011, 0b0101, 0b1001, 0b0110, 0b1010, 0b1100};
  const int64_t groups = w.rows * w.cols / 4;  // two bytes each
#pragma omp parallel for schedule(static) if (groups > 16384)
  for (int64_t gi = 0; gi < groups; ++gi) {
    const uint8_t keep = kKeep[mix(seed ^ mix(static_cast<uint64_t>(gi))) % 6];
    for (int e = 0; e < 4; ++e) {
      if (keep >> e & 1) continue;
      uint8_t& b = w.packed[static_cast<size_t>(gi * 2 + e / 2)];
      b = e % 2 ? static_cast<uint8_t>((b & 0x0f) | 0x80) : static_cast<uint8_t>((b & 0xf0) | 0x08);
    }
  }
}

QuantizedWeight random_quantized(int bits, int64_t rows, int64_t cols, int64_t group, uint64_t seed) {
  QuantizedWeight w;
  w.bits = bits;
  w.rows = rows;
  w.cols = cols;
  w.group_size = group;
  w.symmetric = true;
  w.packed.resize(static_cast<size_t>(bits == 4 ? rows * cols / 2 : rows * cols));
  const int64_t nb = static_cast<int64_t>(w.packed.size());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < nb; ++i) w.packed[i] = static_cast<uint8_t>(mix(seed ^ mix(static_cast<uint64_t>(i))) >> 56);
  w.scales.resize(static_cast<size_t>(rows * w.n_groups()));
  // spread of the codes: 4.6 (INT4 uniform over [−8, 7]), 74 (INT8); weights then spread ~0.02
  const float s = bits == 4 ? 0.0043f : 0.00027f;
  for (size_t i = 0; i < w.scales.size(); ++i)
    w.scales[i] = f32_to_f16(s * (1.0f + 0.25f * uniform(seed + 1, static_cast<int64_t>(i))));
  return w;
}

}  // namespace

nlohmann::json synthetic_config(const std::string& name) {
  if (name == "tinyllama")
    return {{"model_type", "llama"},
            {"hidden_size", 2048},
            {"intermediate_size", 5632},
            {"num_hidden_layers", 22},
            {"num_attention_heads", 32},
            {"num_key_value_heads", 4},
            {"vocab_size", 32000},
            {"rms_norm_eps", 1e-5},
            {"rope_theta", 10000.0},
            {"max_position_embeddings", 2048},
            {"tie_word_embeddings", false}};
  if (name == "smollm2")  // SmolLM2-135M's shape, the head stored apart (same bytes per token)
    return {{"model_type", "llama"},
            {"hidden_size", 576},
            {"intermediate_size", 1536},
            {"num_hidden_layers", 30},
            {"num_attention_heads", 9},
            {"num_key_value_heads", 3},
            {"vocab_size", 49152},
            {"rms_norm_eps", 1e-5},
            {"rope_theta", 100000.0},
            {"max_position_embeddings", 8192},
            {"tie_word_embeddings", false}};
  throw Error("unknown synthetic model '" + name + "' (known: tinyllama, smollm2)", ErrorKind::Usage);
}

Model synthetic_model(const std::string& name, const std::string& scheme, uint64_t seed) {
  int bits = 0;
  int64_t group = 0;
  bool head = false, sparse = false, act_order = false;
  if (scheme == "sparse24") {
    sparse = true;
  } else if (scheme == "w4a16") {
    bits = 4;
    group = 128;
  } else if (scheme == "sparse24-w4a16") {
    bits = 4;
    group = 128;
    sparse = true;
  } else if (scheme == "w4a16-head") {
    bits = 4;
    group = 128;
    head = true;
  } else if (scheme == "w4a16-act-order") {
    bits = 4;
    group = 128;
    act_order = true;
  } else if (scheme == "w8a16") {
    bits = 8;
  } else if (scheme != "f16") {
    throw Error("unknown synthetic scheme '" + scheme + "' (known: f16, sparse24, w4a16, sparse24-w4a16, w4a16-head, w4a16-act-order, w8a16)",
                ErrorKind::Usage);
  }
  const nlohmann::json cfg = synthetic_config(name);
  const int64_t D = cfg["hidden_size"], F = cfg["intermediate_size"], L = cfg["num_hidden_layers"];
  const int64_t H = cfg["num_attention_heads"], KV = cfg["num_key_value_heads"], V = cfg["vocab_size"];
  const int64_t hd = D / H;
  const float spread = 0.0346f;  // uniform [−a, a] with a = 0.02·√3: standard deviation 0.02
  std::map<std::string, Tensor> w;
  uint64_t s = seed * 1000003;
  // Linears that will be quantized only need their shape for the builder: they borrow one shared
  // random buffer and are replaced by LinearQ below.
  Tensor shared;
  if (bits) shared = random_tensor({std::max(F, D) * D}, ++s, spread);  // the largest linear
  auto linear = [&](const std::string& n, int64_t rows, int64_t cols) {
    if (bits)
      w[n] = Tensor::borrow(DType::F32, {rows, cols}, shared.data<float>(), std::make_shared<Tensor>(shared));
    else
      w[n] = random_tensor({rows, cols}, ++s, spread);
    if (sparse && !bits) make_2to4(w[n], ++s);
  };
  w["model.embed_tokens.weight"] = random_tensor({V, D}, ++s, spread);
  w["model.norm.weight"] = random_tensor({D}, ++s, 0.1f, 1.0f);
  w["lm_head.weight"] = random_tensor({V, D}, ++s, spread);
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    w[p + "input_layernorm.weight"] = random_tensor({D}, ++s, 0.1f, 1.0f);
    w[p + "post_attention_layernorm.weight"] = random_tensor({D}, ++s, 0.1f, 1.0f);
    linear(p + "self_attn.q_proj.weight", H * hd, D);
    linear(p + "self_attn.k_proj.weight", KV * hd, D);
    linear(p + "self_attn.v_proj.weight", KV * hd, D);
    linear(p + "self_attn.o_proj.weight", D, H * hd);
    linear(p + "mlp.gate_proj.weight", F, D);
    linear(p + "mlp.up_proj.weight", F, D);
    linear(p + "mlp.down_proj.weight", D, F);
  }
  Model m = build_llama(cfg, std::move(w), "synthetic " + name);
  m.source = "synthetic:" + name + ":" + scheme;
  if (!bits) return m;
  Graph& g = m.graph;
  // act-order: the groups' columns scattered by a random permutation of each input, shared by the
  // linears that read the same input (GPTQ orders them by the diagonal of the same Hessian);
  // none on a linear that reads a SwiGLU, as `llmcompress quantize` writes them
  // (compress::absorb_act_order moves that permutation into gate's and up's rows)
  std::map<std::string, std::vector<int32_t>> g_idx;
  std::set<std::string> swiglu_out;
  for (const Node& n : g.nodes)
    if (n.op == "SwiGLU") swiglu_out.insert(n.outputs.begin(), n.outputs.end());
  for (Node& n : g.nodes) {
    if (n.domain != "llmc" || n.op != "Linear" || (n.name == "lm_head" && !head)) continue;
    const std::string wn = n.inputs[1];
    const Tensor& t = g.weights.at(wn);
    g.quantized[wn] = random_quantized(bits, t.dim(0), t.dim(1), group, ++s);
    if (sparse) make_2to4_codes(g.quantized[wn], ++s);
    if (act_order && !swiglu_out.count(n.inputs[0])) {
      std::vector<int32_t>& gi = g_idx[n.inputs[0]];
      if (gi.empty()) {
        std::vector<int32_t> perm(static_cast<size_t>(t.dim(1)));
        std::iota(perm.begin(), perm.end(), 0);
        const uint64_t ps = ++s;
        for (size_t i = perm.size() - 1; i > 0; --i) std::swap(perm[i], perm[mix(ps ^ mix(i)) % (i + 1)]);
        gi.resize(perm.size());
        for (size_t j = 0; j < perm.size(); ++j) gi[static_cast<size_t>(perm[j])] = static_cast<int32_t>(j / group);
      }
      g.quantized[wn].g_idx = gi;
    }
    n.op = "LinearQ";
    n.inputs = {n.inputs[0]};
    n.attrs = {{"weight", wn}, {"act", std::string("none")}};
    g.weights.erase(wn);
  }
  return m;
}

}  // namespace llmc::runtime
