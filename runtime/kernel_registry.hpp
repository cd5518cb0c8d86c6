// The op kernels a backend offers: one function per (domain, op). Each runtime/ops/*.cpp file
// contributes a table through a registration function listed in kernel_registry.cpp.
#pragma once
#include <any>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "runtime/ir/graph.hpp"

namespace llmc::runtime {

struct OpContext {
  const Node& node;
  const Graph& graph;
  std::vector<const Tensor*> inputs;  // nullptr where an optional input is omitted
  std::vector<Tensor> outputs;        // filled by the kernel, one per node output
  std::any& state;                    // per-node state kept across runs (the KV cache)
  int64_t past = 0;                   // positions already in the KV cache when this run started
  int64_t max_positions = 0;          // KV cache capacity requested by the session (0: grow)

  size_t num_inputs() const { return inputs.size(); }
  bool has(size_t i) const { return i < inputs.size() && inputs[i] != nullptr; }
  const Tensor& in(size_t i) const;  // throws naming the node when absent
};

using Kernel = std::function<void(OpContext&)>;
using KernelTable = std::map<std::string, Kernel>;  // key: "domain::op" ("::Add" for ONNX ops)

inline std::string kernel_key(const std::string& domain, const std::string& op) {
  return (domain == "ai.onnx" ? std::string() : domain) + "::" + op;
}

// The CPU backend's kernels (built once, immutable afterwards).
const KernelTable& cpu_kernels();

// Registration functions, one per ops file.
void register_fused_ops(KernelTable& t);
void register_onnx_ops(KernelTable& t);
void register_quant_ops(KernelTable& t);

}  // namespace llmc::runtime
