// CudaSession's planner (internal to runtime/cuda): walks the graph's nodes once, creating device
// values and the steps that compute them, fusing where the pattern allows. Its node handlers live
// in cuda_plan.cpp (norms, attention, element-wise ops, the walk) and cuda_plan_linear.cpp (linears,
// their kernel choice and the decode fusions around the quantized GEMV).
#pragma once
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/cuda/cuda_impl.hpp"

namespace llmc::runtime::cuda_detail {

constexpr int kAttnMaxSplits = 32;

inline bool is_llmc(const Node& n, const char* op) { return n.domain == "llmc" && n.op == op; }
inline bool is_onnx(const Node& n, const char* op) {
  return (n.domain.empty() || n.domain == "ai.onnx") && n.op == op;
}

struct Planner {
  CudaSession::Impl& I;
  const Graph& g;
  std::unordered_map<std::string, std::vector<size_t>> consumers;
  std::unordered_map<std::string, size_t> producer;
  std::set<std::string> outputs;
  std::vector<bool> done;
  std::map<std::string, std::string> deferred_rope;  // rotary output -> its input (rotated in the append)
  std::map<std::string, bool> sparse_cache;          // dense weight -> has the 2:4 pattern
  std::map<std::string, bool> sparse_q_cache;        // quantized weight -> 2:4 INT4 for gemv_sparse24_w4
  std::map<int, std::pair<LinearPlan*, size_t>> quant_out;  // output of a single GEMV-fusable linear -> it, its step
  std::map<int, PrologueFusion*> pending_pro;                // norm / SwiGLU output -> its fusion, if taken

  Planner(CudaSession::Impl& impl) : I(impl), g(impl.model.graph), done(g.nodes.size(), false) {
    for (size_t k = 0; k < g.nodes.size(); ++k) {
      for (auto& in : g.nodes[k].inputs)
        if (!in.empty()) consumers[in].push_back(k);
      for (auto& o : g.nodes[k].outputs) producer[o] = k;
    }
    for (auto& o : g.outputs) outputs.insert(o.name);
  }

  [[noreturn]] void fail(const Node& n, const std::string& msg) const {
    throw Error(I.where() + ": " + n.label() + ": " + msg + " (CUDA backend)");
  }
  bool is_output(const std::string& name) const { return outputs.count(name) != 0; }

  int new_value(const std::string& name, VType t, int64_t width, bool persistent = false) {
    Value v;
    v.name = name;
    v.type = t;
    v.width = width;
    v.root = static_cast<int>(I.values.size());
    v.ld = width;
    v.persistent = persistent;
    I.values.push_back(v);
    return v.root;
  }
  int view(const std::string& name, int of, int64_t col0, int64_t width) {
    Value v = I.values[of];
    v.name = name;
    v.width = width;
    v.col0 += col0;
    v.ld = 0;
    I.values.push_back(v);
    return static_cast<int>(I.values.size()) - 1;
  }
  void define(const std::string& name, int v) { I.value_of[name] = v; }
  int64_t width(int v) const { return I.values[v].width; }

  int val(const Node& n, size_t i) {
    if (i >= n.inputs.size() || n.inputs[i].empty()) fail(n, "input " + std::to_string(i) + " is missing");
    const std::string& name = n.inputs[i];
    auto it = I.value_of.find(name);
    if (it != I.value_of.end()) return it->second;
    if (g.weights.count(name)) fail(n, "input '" + name + "' is an initializer where an activation is expected");
    fail(n, "input '" + name + "' is not produced by any earlier node");
  }
  const Tensor& weight(const Node& n, size_t i) {
    if (i >= n.inputs.size() || n.inputs[i].empty()) fail(n, "input " + std::to_string(i) + " is missing");
    auto it = g.weights.find(n.inputs[i]);
    if (it == g.weights.end()) fail(n, "input '" + n.inputs[i] + "' must be a weight (initializer)");
    if (!is_float(it->second.dtype()))
      fail(n, "weight '" + n.inputs[i] + "' has non-float dtype " + dtype_name(it->second.dtype()));
    return it->second;
  }

  void step(std::string label, std::vector<int> reads, std::vector<int> writes, std::function<void(const Exec&)> fn) {
    I.steps.push_back(Step{std::move(label), std::move(reads), std::move(writes), std::move(fn)});
  }

  // v as f16, as a view of any stride or contiguous; converted once and shared by later readers.
  int as_f16(int v, bool contiguous) {
    const Value x = I.values[v];  // a copy: new_value may reallocate
    const bool contig = I.values[x.root].ld == x.width;
    if (x.type == VType::F16 && (!contiguous || contig)) return v;
    auto it = I.converted.find(v);
    if (it != I.converted.end()) return it->second;
    const int c = new_value(x.name + "#f16", VType::F16, x.width);
    auto* ip = &I;
    const int64_t w = x.width;
    step("convert '" + x.name + "' to contiguous f16", {v}, {c},
         [ip, v, c, w](const Exec& e) { kcu::convert(ip->act(v), ip->act(c), e.rows, w, e.stream); });
    I.converted[v] = c;
    return c;
  }

  const Node* rotary_producer(const std::string& value) const {
    auto it = producer.find(value);
    return it != producer.end() && is_llmc(g.nodes[it->second], "Rotary") ? &g.nodes[it->second] : nullptr;
  }
  bool single_use(const std::string& v) const {
    auto it = consumers.find(v);
    return it != consumers.end() && it->second.size() == 1 && !is_output(v);
  }

  struct RopeAttrs {
    int64_t heads, head_dim, rot;
    double theta;
    bool neox;
    bool operator==(const RopeAttrs& o) const {
      return head_dim == o.head_dim && rot == o.rot && theta == o.theta && neox == o.neox;
    }
  };

  const QuantizedWeight& quantized(const Node& n);
  // A dense weight with the 2:4 pattern that cuSPARSELt can take (built with it, sizes multiples of 16).
  bool sparse_24(const std::string& name);
  bool sparse_q(const Node& n);  // a LinearQ whose weight gemv_sparse24_w4 takes (CudaOptions::sparse_gemv)
  LinearKind kind_of(const Node& m);
  bool compatible(const Node& a, const Node& b);
  // A Linear / LinearQ node with the later siblings that share its input (one stacked GEMM); a
  // quantized one takes the norm or SwiGLU planned before it into its decode GEMV (pending_pro).
  void linear(size_t k);
  void embedding(size_t k);
  // llmc::EmbeddingQ: the quantized table is dequantized once at upload into an f16 table (a
  // decode step reads one row of it, so its size does not matter to speed), then gathered.
  void embedding_q(size_t k);
  void positions(size_t k);
  // A norm node, with the residual Add before it fused in when `add` is given.
  void norm(size_t k, const Node* add);
  void add(size_t k);
  RopeAttrs rope_attrs(const Node& n);
  // Rotary of q and k fused into the attention's cache append: both rotaries feed only that
  // attention, share their parameters, and their inputs feed only them (q rotates in place).
  bool rope_fusable(const Node& n);
  void rotary(size_t k);
  void attention(size_t k);
  void elementwise(size_t k);
  // The walk over the graph's nodes, in order.
  void run();
};

}  // namespace llmc::runtime::cuda_detail
