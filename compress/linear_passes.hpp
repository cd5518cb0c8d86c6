// The per-layer work of compress_model: pruning and quantizing the linear layers of one block
// (or the head), rewriting their graph nodes, and measuring each layer's output error.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "calibrate/block_runner.hpp"
#include "compress/linear_stats.hpp"
#include "compress/pipeline.hpp"
#include "compress/recipe.hpp"

namespace llmc::compress {

struct LinearTarget {
  size_t node = 0;
  std::string name, weight, input;  // node name, weight name, input value name
  int64_t rows = 0, cols = 0;
};

// What happened to one linear so far.
struct LinearState {
  Tensor original;              // the weight before any stage, in the space of the layer's input
  std::vector<uint8_t> mask;    // 1 where kept, when a prune stage ran
  std::vector<float> in_scale;  // AWQ/SmoothQuant: the stored weight is W·diag(s)
  std::string method, warning;
  double seconds = 0;
};

using StatsMap = std::map<std::string, LinearInputStats>;

// |w| at the k-th smallest position over all listed weights, k = round(sparsity · total).
double global_magnitude_threshold(const Graph& g, const std::vector<LinearTarget>& lins, double sparsity);

void prune_linears(Graph& g, const std::vector<LinearTarget>& lins, const PruneStage& p, const StatsMap& stats,
                   std::map<std::string, LinearState>& states, double global_threshold);

// runner and session are needed for static activation observers (a second pass over the block).
void quantize_linears(Graph& g, const std::vector<LinearTarget>& lins, const QuantStage& q, const StatsMap& stats,
                      std::map<std::string, LinearState>& states, calibrate::BlockRunner* runner,
                      runtime::Session* session, size_t block);

LinearReport finish_report(const Graph& g, const LinearTarget& l, const LinearState& s, const LinearInputStats* stats);

}  // namespace llmc::compress
