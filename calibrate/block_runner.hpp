// Runs calibration samples through a model one decoder block at a time, holding only the
// activations at the current block boundary (one [seqlen, hidden] tensor per sample), so that a
// compression pass can compress block i and feed block i + 1 from the compressed block's outputs,
// as GPTQ's sequential quantization does.
#pragma once
#include <string>
#include <vector>

#include "runtime/session.hpp"

namespace llmc::calibrate {

struct Block {
  std::string name;  // "model.layers.3"
  size_t begin = 0, end = 0;  // node range [begin, end)
};

// Groups the graph's nodes into blocks by the "<...>.layers.N" / "<...>.h.N" / "<...>.layer.N"
// prefix of their names; nodes outside any block are not listed. Throws when blocks interleave.
std::vector<Block> find_blocks(const Graph& g);

class BlockRunner {
 public:
  // `session` runs `model`; the graph may be edited between calls (call session.refresh()).
  BlockRunner(runtime::Session& session, std::vector<std::vector<int64_t>> samples);

  const std::vector<Block>& blocks() const { return blocks_; }
  size_t num_samples() const { return values_.size(); }

  // Runs the nodes before the first block (embeddings) for every sample.
  void start();
  // Runs block b for every sample with the hook attached. With advance, the block's outputs
  // replace the held activations (they become block b + 1's inputs); without, they are dropped.
  void run_block(size_t b, const runtime::NodeHook& hook, bool advance);
  // Runs the nodes after the last block (final norm, head) with the hook; drops the outputs.
  void run_tail(const runtime::NodeHook& hook);

 private:
  runtime::Session& session_;
  std::vector<std::vector<int64_t>> samples_;
  std::vector<Block> blocks_;
  std::vector<runtime::ValueMap> values_;  // per sample, the values live at the current boundary
  size_t pos_ = 0;                          // next node to run
};

}  // namespace llmc::calibrate
