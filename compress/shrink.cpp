#include "compress/shrink.hpp"

#include <cmath>

#include "compress/prune.hpp"

namespace llmc::compress {

namespace {

Node* find_node(Graph& g, const std::string& name) {
  for (auto& n : g.nodes)
    if (n.name == name) return &n;
  return nullptr;
}

Node& linear_node(Graph& g, const std::string& name) {
  Node* n = find_node(g, name);
  if (!n || n->op != "Linear" || n->inputs.size() < 2 || !g.weights.count(n->inputs[1]))
    throw Error("structured pruning: '" + name + "' is not an uncompressed linear layer (prune structure first)",
                ErrorKind::BadInput);
  return *n;
}

// Keeps the listed rows (unit rows of `unit` consecutive rows each) of weight and bias.
void keep_rows(Graph& g, Node& n, const std::vector<int64_t>& units, int64_t unit) {
  Tensor w = g.weights.at(n.inputs[1]).to_f32();
  const int64_t cols = w.dim(1);
  Tensor out(DType::F32, {static_cast<int64_t>(units.size()) * unit, cols});
  int64_t r = 0;
  for (int64_t u : units)
    for (int64_t i = 0; i < unit; ++i, ++r)
      std::copy_n(w.data<float>() + (u * unit + i) * cols, cols, out.mutable_data<float>() + r * cols);
  g.weights[n.inputs[1]] = out;
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
    Tensor b = g.weights.at(n.inputs[2]).to_f32();
    Tensor nb(DType::F32, {out.dim(0)});
    int64_t k = 0;
    for (int64_t u : units)
      for (int64_t i = 0; i < unit; ++i) nb.mutable_data<float>()[k++] = b.data<float>()[u * unit + i];
    g.weights[n.inputs[2]] = nb;
  }
}

void keep_cols(Graph& g, Node& n, const std::vector<int64_t>& units, int64_t unit) {
  Tensor w = g.weights.at(n.inputs[1]).to_f32();
  const int64_t rows = w.dim(0), cols = w.dim(1), k = static_cast<int64_t>(units.size()) * unit;
  Tensor out(DType::F32, {rows, k});
  for (int64_t r = 0; r < rows; ++r) {
    int64_t c = 0;
    for (int64_t u : units)
      for (int64_t i = 0; i < unit; ++i) out.mutable_data<float>()[r * k + c++] = w.data<float>()[r * cols + u * unit + i];
  }
  g.weights[n.inputs[1]] = out;
}

int64_t kept(int64_t n, double ratio) { return std::max<int64_t>(1, n - std::llround(ratio * static_cast<double>(n))); }

}  // namespace

ShrinkResult shrink_ffn(Graph& g, const std::string& prefix, double ratio, const LinearInputStats* down_input) {
  Node& gate = linear_node(g, prefix + ".mlp.gate_proj");
  Node& up = linear_node(g, prefix + ".mlp.up_proj");
  Node& down = linear_node(g, prefix + ".mlp.down_proj");
  Tensor wg = g.weights.at(gate.inputs[1]).to_f32(), wu = g.weights.at(up.inputs[1]).to_f32(),
         wd = g.weights.at(down.inputs[1]).to_f32();
  const int64_t d_ff = wu.dim(0), d_model = wu.dim(1);
  std::vector<float> sq;
  if (down_input) {  // Σ h² per channel = ‖X_j‖²
    for (float v : down_input->column_norms()) sq.push_back(v * v);
  }
  auto scores = ffn_channel_scores(wg.data<float>(), wu.data<float>(), wd.data<float>(), d_model, d_ff,
                                   sq.empty() ? nullptr : sq.data(), prefix + ".mlp");
  auto keep = keep_top_k(scores, kept(d_ff, ratio), prefix + ".mlp");
  keep_rows(g, gate, keep, 1);
  keep_rows(g, up, keep, 1);
  keep_cols(g, down, keep, 1);
  return {d_ff, static_cast<int64_t>(keep.size())};
}

ShrinkResult shrink_heads(Graph& g, const std::string& prefix, double ratio, const LinearInputStats* o_input) {
  Node& q = linear_node(g, prefix + ".self_attn.q_proj");
  Node& k = linear_node(g, prefix + ".self_attn.k_proj");
  Node& v = linear_node(g, prefix + ".self_attn.v_proj");
  Node& o = linear_node(g, prefix + ".self_attn.o_proj");
  Node* att = find_node(g, prefix + ".attention");
  Node* qr = find_node(g, prefix + ".q_rotary");
  Node* kr = find_node(g, prefix + ".k_rotary");
  if (!att || !qr || !kr) throw Error("structured pruning: '" + prefix + "' is not a Llama attention block", ErrorKind::BadInput);
  const int64_t hq = att->i("num_heads"), hkv = att->i("num_kv_heads", hq), dh = att->i("head_dim");
  const int64_t group = hq / hkv;
  Tensor wq = g.weights.at(q.inputs[1]).to_f32(), wo = g.weights.at(o.inputs[1]).to_f32();
  const int64_t d_model = wq.dim(1);
  auto hs = head_scores(wq.data<float>(), wo.data<float>(), d_model, hq, dh,
                        o_input && o_input->sample_rows() ? o_input->sample().data() : nullptr,
                        o_input ? o_input->sample_rows() : 0, prefix + ".self_attn");
  std::vector<double> group_scores(hkv, 0.0);
  for (int64_t h = 0; h < hq; ++h) group_scores[h / group] += hs[h];
  auto keep_groups = keep_top_k(group_scores, kept(hkv, ratio), prefix + ".self_attn");
  std::vector<int64_t> keep_heads;
  for (int64_t gi : keep_groups)
    for (int64_t j = 0; j < group; ++j) keep_heads.push_back(gi * group + j);
  keep_rows(g, q, keep_heads, dh);
  keep_rows(g, k, keep_groups, dh);
  keep_rows(g, v, keep_groups, dh);
  keep_cols(g, o, keep_heads, dh);
  const int64_t nq = static_cast<int64_t>(keep_heads.size()), nkv = static_cast<int64_t>(keep_groups.size());
  att->attrs["num_heads"] = nq;
  att->attrs["num_kv_heads"] = nkv;
  qr->attrs["num_heads"] = nq;
  kr->attrs["num_heads"] = nkv;
  return {hkv, nkv};
}

void update_config_after_shrink(Model& m) {
  for (auto& n : m.graph.nodes) {
    if (n.name.size() > 17 && n.name.rfind(".mlp.up_proj") == n.name.size() - 12 && n.op == "Linear")
      m.config["intermediate_size"] = m.graph.weights.at(n.inputs[1]).dim(0);
    if (n.op == "Attention" && n.domain == "llmc") {
      if (!m.config.contains("head_dim")) m.config["head_dim"] = n.i("head_dim");
      m.config["num_attention_heads"] = n.i("num_heads");
      m.config["num_key_value_heads"] = n.i("num_kv_heads");
    }
  }
}

}  // namespace llmc::compress
