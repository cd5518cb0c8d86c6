// Folding per-channel scales into the op that produces an activation, so that X/s costs nothing
// at run time (AWQ §3.2 and SmoothQuant §4 both rely on it).
#pragma once
#include <string>
#include <vector>

#include "runtime/ir/graph.hpp"

namespace llmc::compress {

// Whether the producer of `value` can absorb a per-channel division (see fold_inverse_scales).
bool can_fold(const Graph& g, const std::string& value);

// Divides channel j of `value` by s[j] by editing its producer: an RMSNorm/LayerNorm's weight
// (and bias); a float Linear's output rows (and bias); through SwiGLU, the up projection's rows;
// through Attention without GQA (num_heads == num_kv_heads), the value projection's rows.
// Throws Error when can_fold is false.
void fold_inverse_scales(Graph& g, const std::string& value, const std::vector<float>& s);

// The node that produces `value`, or nullptr.
const Node* producer(const Graph& g, const std::string& value);

}  // namespace llmc::compress
