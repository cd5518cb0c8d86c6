#include "compress/fold.hpp"

#include <algorithm>
#include <cstring>

namespace llmc::compress {

const Node* producer(const Graph& g, const std::string& value) {
  for (const Node& n : g.nodes)
    for (auto& o : n.outputs)
      if (o == value) return &n;
  return nullptr;
}

namespace {

bool is_float_linear(const Graph& g, const Node* n) {
  return n && n->domain == "llmc" && n->op == "Linear" && n->inputs.size() >= 2 && g.weights.count(n->inputs[1]);
}

// The node whose output rows a division of `value` lands on, and whether it is a norm.
const Node* target(const Graph& g, const std::string& value, bool& is_norm) {
  const Node* p = producer(g, value);
  is_norm = false;
  if (!p || p->domain != "llmc") return nullptr;
  if (p->op == "RMSNorm" || p->op == "LayerNorm") {
    is_norm = true;
    return p;
  }
  if (p->op == "Linear") return is_float_linear(g, p) ? p : nullptr;
  if (p->op == "SwiGLU") {  // silu(gate)·up: scaling up's rows scales the product
    const Node* up = producer(g, p->inputs.at(1));
    return is_float_linear(g, up) ? up : nullptr;
  }
  if (p->op == "Attention" && p->i("num_kv_heads", p->i("num_heads")) == p->i("num_heads")) {
    // each output channel is a convex combination of the same value channel
    const Node* v = producer(g, p->inputs.at(2));
    return is_float_linear(g, v) ? v : nullptr;
  }
  return nullptr;
}

Tensor owned_f32(const Tensor& t) { return t.dtype() == DType::F32 ? t.clone() : t.to(DType::F32); }

}  // namespace

bool can_fold(const Graph& g, const std::string& value) {
  bool is_norm;
  return target(g, value, is_norm) != nullptr;
}

void fold_inverse_scales(Graph& g, const std::string& value, const std::vector<float>& s) {
  bool is_norm;
  const Node* t = target(g, value, is_norm);
  if (!t) throw Error("cannot fold scales into the producer of '" + value + "'", ErrorKind::Runtime);
  const int64_t n = static_cast<int64_t>(s.size());
  auto scale_vector = [&](const std::string& name) {
    Tensor w = owned_f32(g.weights.at(name));
    check(w.numel() == n, "fold: '" + name + "' has " + std::to_string(w.numel()) + " channels, scales " + std::to_string(n));
    for (int64_t j = 0; j < n; ++j) w.mutable_data<float>()[j] /= s[j];
    g.weights[name] = w;
  };
  if (is_norm) {
    scale_vector(t->inputs.at(1));
    if (t->inputs.size() > 2 && !t->inputs[2].empty()) scale_vector(t->inputs[2]);
    return;
  }
  Tensor w = owned_f32(g.weights.at(t->inputs[1]));
  check(w.dim(0) == n, "fold: '" + t->inputs[1] + "' has " + std::to_string(w.dim(0)) + " rows, scales " + std::to_string(n));
  const int64_t cols = w.dim(1);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < cols; ++c) w.mutable_data<float>()[r * cols + c] /= s[r];
  g.weights[t->inputs[1]] = w;
  if (t->inputs.size() > 2 && !t->inputs[2].empty()) scale_vector(t->inputs[2]);
}

namespace {

// How many nodes read `value`, plus one if it is a graph output.
int readers(const Graph& g, const std::string& value) {
  int n = 0;
  for (const Node& x : g.nodes) n += static_cast<int>(std::count(x.inputs.begin(), x.inputs.end(), value));
  for (const ValueInfo& o : g.outputs) n += o.name == value;
  return n;
}

// The weight name of a llmc Linear / LinearQ node ("" for anything else) and its bias input.
std::string linear_weight(const Node& n) {
  if (n.domain != "llmc") return "";
  if (n.op == "Linear" && n.inputs.size() >= 2) return n.inputs[1];
  if (n.op == "LinearQ") return n.s("weight", "");
  return "";
}
std::string linear_bias(const Node& n) {
  const size_t at = n.op == "Linear" ? 2 : 1;
  return n.inputs.size() > at ? n.inputs[at] : "";
}

// Rows r of `t` (a matrix, or a vector: its elements) become rows perm[r].
Tensor permute_rows(const Tensor& t, const std::vector<int32_t>& perm) {
  Tensor out(t.dtype(), t.shape());
  const size_t row = t.nbytes() / perm.size();
  const auto* src = static_cast<const uint8_t*>(t.raw());
  auto* dst = static_cast<uint8_t*>(out.mutable_raw());
  for (size_t r = 0; r < perm.size(); ++r) std::memcpy(dst + r * row, src + static_cast<size_t>(perm[r]) * row, row);
  return out;
}

QuantizedWeight permute_quantized_rows(const QuantizedWeight& w, const std::vector<int32_t>& perm) {
  QuantizedWeight out = QuantizedWeight::allocate(w.bits, w.rows, w.cols, w.group_size, w.symmetric);
  out.g_idx = w.g_idx;
  const int64_t ng = w.n_groups();
  for (int64_t r = 0; r < w.rows; ++r) {
    const int64_t from = perm[static_cast<size_t>(r)];
    for (int64_t c = 0; c < w.cols; ++c) out.set_q(r, c, w.q(from, c));
    for (int64_t gi = 0; gi < ng; ++gi) {
      out.scales[r * ng + gi] = w.scales[from * ng + gi];
      if (!w.symmetric) out.set_zero(r, gi, w.zero(from, gi));
    }
  }
  return out;
}

}  // namespace

int absorb_act_order(Graph& g) {
  int changed = 0;
  for (const Node& down : g.nodes) {
    if (down.domain != "llmc" || down.op != "LinearQ" || down.inputs.empty()) continue;
    auto dq = g.quantized.find(down.s("weight", ""));
    if (dq == g.quantized.end() || dq->second.g_idx.empty()) continue;
    const Node* sw = producer(g, down.inputs[0]);
    if (!sw || sw->domain != "llmc" || sw->op != "SwiGLU" || sw->inputs.size() != 2 || readers(g, down.inputs[0]) != 1)
      continue;
    const Node* gate = producer(g, sw->inputs[0]);
    const Node* up = producer(g, sw->inputs[1]);
    if (!gate || !up || gate == up || readers(g, sw->inputs[0]) != 1 || readers(g, sw->inputs[1]) != 1) continue;
    const std::string gw = linear_weight(*gate), uw = linear_weight(*up);
    if (gw.empty() || uw.empty() || gw == uw) continue;
    bool shared = false;  // a weight or bias read by another node (tied) cannot be reordered for this one
    for (const std::string& name : {gw, uw, linear_bias(*gate), linear_bias(*up)}) {
      if (name.empty()) continue;
      int uses = readers(g, name);
      for (const Node& x : g.nodes) uses += x.s("weight", "") == name;  // quantized weights go by attribute
      if (uses != 1) shared = true;
    }
    if (shared) continue;

    // The stored order (groups as contiguous runs); a g_idx that cannot take it stays as it is.
    QuantizedWeight& w = dq->second;
    std::vector<int32_t> perm;
    try {
      perm = act_order_columns(w, "");
    } catch (const Error&) {
      continue;
    }
    if (perm.empty()) {  // already in group order
      w.g_idx.clear();
      ++changed;
      continue;
    }

    // the producers' rows first (every check has passed: nothing below can fail half-way)
    for (const Node* p : {gate, up}) {
      const std::string wn = linear_weight(*p), bn = linear_bias(*p);
      if (p->op == "LinearQ") {
        QuantizedWeight& q = g.quantized.at(wn);
        q = permute_quantized_rows(q, perm);
      } else {
        g.weights.at(wn) = permute_rows(g.weights.at(wn), perm);
      }
      if (!bn.empty() && g.weights.count(bn)) g.weights.at(bn) = permute_rows(g.weights.at(bn), perm);
    }
    QuantizedWeight sorted = QuantizedWeight::allocate(w.bits, w.rows, w.cols, w.group_size, w.symmetric);
    sorted.scales = w.scales;  // stored group g is group g
    sorted.zeros = w.zeros;
    for (int64_t r = 0; r < w.rows; ++r)
      for (int64_t c = 0; c < w.cols; ++c) sorted.set_q(r, c, w.q(r, perm[static_cast<size_t>(c)]));
    w = std::move(sorted);
    ++changed;
  }
  return changed;
}

}  // namespace llmc::compress
