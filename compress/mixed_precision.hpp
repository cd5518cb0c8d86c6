// Mixed-precision weight quantization chosen by measured layer sensitivity: each decoder linear is
// quantized alone at the low setting (INT4 group-wise, RTN), the KL divergence it causes at the
// model's output is measured, and the 8-bit budget goes to the layers that hurt the most per byte.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/linear_passes.hpp"
#include "compress/recipe.hpp"
#include "runtime/ir/model.hpp"

namespace llmc::compress {

struct LayerSensitivity {
  std::string name;  // the linear's node name
  int64_t rows = 0, cols = 0;
  // Mean over every position of every window of KL(original ‖ model with only this layer
  // quantized at the low setting), natural log.
  double kl = 0;
  int64_t bytes_low = 0;   // stored bytes at the low setting (scales, zero points, g_idx included)
  int64_t bytes_high = 0;  // stored bytes at INT8 per channel
  int64_t extra_bytes() const { return bytes_high - bytes_low; }
};

struct SensitivityOptions {
  // Which linears (by node name) to measure; all decoder-block linears when empty.
  std::function<bool(const std::string&)> include;
  std::function<void(int64_t done, int64_t total)> progress;  // layers measured
};

// The setting a layer upgraded from `low` gets: INT8 per channel, same method and symmetry
// (act-order dropped: a per-channel grid has no groups to reorder).
QuantStage high_setting(const QuantStage& low);

// Measures every llmc::Linear inside the decoder blocks of `model` (not modified). The original
// logits are computed once; for a layer of block b, the windows re-run only from block b's input
// boundary (the activations before it do not depend on the layer). Cost: one partial forward per
// layer per window. Throws Error on empty windows or a model without decoder blocks.
std::vector<LayerSensitivity> measure_sensitivity(const Model& model, const std::vector<std::vector<int64_t>>& windows,
                                                  const QuantStage& low, const SensitivityOptions& opt = {});

// Average stored bits per weight over the layers when those in `bits` at 8 are upgraded.
double average_bits(const std::vector<LayerSensitivity>& layers, const std::map<std::string, int>& bits);

// Bits (4 or 8) per layer name such that the average stored bits per weight is at most
// target_bits: all start at 4; layers are upgraded greedily by KL per extra byte (ties by name),
// skipping any that would overflow the budget, so that no further upgrade fits at the end.
// A target at or above the all-8-bit average gives all 8. Throws a usage Error naming both
// numbers when the target is below the all-4-bit average; `what` prefixes errors.
std::map<std::string, int> choose_bits(const std::vector<LayerSensitivity>& layers, double target_bits,
                                       const std::string& what = "mixed precision");

// [{name, kl, bits, extra_bytes}] in the order of `layers`, for model.metadata["llmc.sensitivity"].
nlohmann::json sensitivity_json(const std::vector<LayerSensitivity>& layers, const std::map<std::string, int>& bits);

// compress_model's step for a stage with target_bits > 0: measures the stage's selected block
// linears on min(nsamples, 2) calibration windows of min(seqlen, 128) tokens (same seed; a few
// short windows rank layers well enough and keep the cost at one partial forward per layer per
// window), chooses their bits, and records [{name, kl, bits, extra_bytes}] in
// model.metadata["llmc.sensitivity"]. The budget covers the block linears only (not lm_head).
std::map<std::string, int> plan_mixed_precision(Model& model, const Recipe& recipe, const Stage& stage,
                                                const std::vector<int64_t>& calib_tokens,
                                                const std::function<void(int64_t, int64_t)>& progress = {});

// quantize_linears with each layer at its chosen bits: 4 at the stage's setting, 8 at
// high_setting(stage) (layers missing from `bits` get 4).
void quantize_mixed(Graph& g, const std::vector<LinearTarget>& lins, const QuantStage& q,
                    const std::map<std::string, int>& bits, const StatsMap& stats,
                    std::map<std::string, LinearState>& states, calibrate::BlockRunner* runner,
                    runtime::Session* session, size_t block);

}  // namespace llmc::compress
