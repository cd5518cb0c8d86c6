// Session: runs a Model's graph on a backend's kernels, keeping per-node state (the KV cache)
// between calls so that a decoder can prefill a prompt and then decode token by token.
#pragma once
#include <any>
#include <map>
#include <string>
#include <vector>

#include "runtime/ir/model.hpp"
#include "runtime/kernel_registry.hpp"

namespace llmc::runtime {

class Session {
 public:
  // Checks up front that every op has a kernel; throws naming the first unsupported op and node.
  explicit Session(const Model& model, const KernelTable& kernels = cpu_kernels());

  // Runs the graph; returns the graph outputs by name. For stateful (KV-cached) graphs, the
  // positions of this call start at past() and past() advances by the sequence length.
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& feeds);

  // Decoder convenience: token ids in, logits [T, vocab] out.
  Tensor forward(const std::vector<int64_t>& ids);

  void reset();  // clears the KV cache
  int64_t past() const { return past_; }
  const Model& model() const { return model_; }

 private:
  const Model& model_;
  std::vector<const Kernel*> kernels_;
  std::vector<std::any> state_;
  std::vector<std::vector<int>> last_use_;  // values freed after each node, by index
  int64_t past_ = 0;
};

}  // namespace llmc::runtime
