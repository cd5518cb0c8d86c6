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

// Act-order moved to where it costs nothing: a quantized linear with g_idx (GPTQ's act-order)
// whose input is llmc::SwiGLU(gate, up) of two linears that feed only that SwiGLU, which feeds
// only it, gets its columns stored in group order (no g_idx), and gate's and up's output rows
// (and biases) take the same order. That reorders the SwiGLU's channels, so the model computes
// the same function (the down projection sums its terms in another order), and runtimes need
// no permutation of the down projection's input. Linears whose groups are not one run of
// group_size columns each, or whose weights are shared, stay as they are. Returns the number of
// linears changed.
int absorb_act_order(Graph& g);

}  // namespace llmc::compress
