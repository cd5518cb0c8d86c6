// Session: runs a Model's graph on a backend's kernels, keeping per-node state (the KV cache)
// between calls so that a decoder can prefill a prompt and then decode token by token.
#pragma once
#include <any>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/ir/model.hpp"
#include "runtime/kernel_registry.hpp"

namespace llmc::runtime {

using ValueMap = std::unordered_map<std::string, Tensor>;
// Sees a node's inputs just before it runs (calibration observers attach here).
using NodeHook = std::function<void(size_t index, const Node& node, const std::vector<const Tensor*>& inputs)>;

class Session {
 public:
  // Checks up front that every op has a kernel; throws naming the first unsupported op and node.
  explicit Session(const Model& model, const KernelTable& kernels = cpu_kernels());

  // Runs the graph; returns the graph outputs by name. For graphs with a KV cache, the positions
  // of this call start at past() and past() advances by the sequence length; other graphs
  // (encoders) always start at position 0.
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& feeds);

  // Decoder convenience: token ids in, logits [T, vocab] out.
  Tensor forward(const std::vector<int64_t>& ids);

  // Runs nodes [begin, end) over `values`, which must hold what they read that no initializer
  // provides, and receives their outputs; values whose last use lies in the range are freed.
  // Positions start at past(); past() is not advanced (callers running a sequence in slices
  // reset() between sequences).
  void run_nodes(ValueMap& values, size_t begin, size_t end, const NodeHook& before = {});

  // Re-checks kernels after the model's graph was edited in place (compression passes).
  void refresh();
  void reset();  // clears the KV cache
  int64_t past() const { return past_; }
  const Model& model() const { return model_; }

 private:
  const Model& model_;
  const KernelTable& table_;
  std::vector<const Kernel*> kernels_;
  std::vector<std::any> state_;
  std::unordered_map<std::string, size_t> last_use_;  // value -> index of the last node reading it
  int64_t past_ = 0;
  bool cached_ = false;  // the graph keeps a KV cache, so positions advance between runs
};

}  // namespace llmc::runtime
