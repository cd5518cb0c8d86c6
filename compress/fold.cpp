#include "compress/fold.hpp"

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

}  // namespace llmc::compress
