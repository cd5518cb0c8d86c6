// Structured pruning with real shape shrink: whole FFN channels (rows of gate/up, columns of
// down) or whole attention KV groups (a KV head with the query heads that share it; rows of
// q/k/v, columns of o), so the pruned model is smaller and faster on any runtime.
#pragma once
#include <string>
#include <vector>

#include "compress/linear_stats.hpp"
#include "runtime/ir/model.hpp"

namespace llmc::compress {

struct ShrinkResult {
  int64_t before = 0, after = 0;  // channels or KV groups
};

// FFN channels of the Llama block `prefix` ("model.layers.3"): keeps round((1 − ratio)·d_ff)
// channels by ffn_channel_scores; with down_input (statistics of down_proj's input, Σh² per
// channel) the scores are activation-aware. Rewrites the three weights.
ShrinkResult shrink_ffn(Graph& g, const std::string& prefix, double ratio, const LinearInputStats* down_input);

// KV groups of the block: keeps round((1 − ratio)·num_kv_heads) groups (at least one) by the
// summed head_scores of their query heads (activation-aware with o_input, the input of o_proj),
// rewrites q/k/v/o and the Rotary/Attention node attributes.
ShrinkResult shrink_heads(Graph& g, const std::string& prefix, double ratio, const LinearInputStats* o_input);

// After every block was shrunk by the same ratio, records the new sizes in the HF config.
void update_config_after_shrink(Model& m);

}  // namespace llmc::compress
