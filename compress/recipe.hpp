// A compression recipe: calibration settings and an ordered list of stages (prune, quantize),
// from CLI flags or a YAML file (`llmcompress compress --recipe R.yaml`); stored as JSON in the
// output so that every compressed model says how it was made.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "calibrate/samples.hpp"

namespace llmc::compress {

struct PruneStage {
  std::string method = "magnitude";  // magnitude | wanda | sparsegpt
  double sparsity = 0.5;             // unstructured fraction of zeros, in [0, 1)
  int n = 0, m = 0;                  // N:M when m > 0 (pattern "2:4", "4:8")
  std::string scope = "layer";       // magnitude only: "layer" or "global" threshold
  // Structured pruning with shape shrink: "channels" (FFN) or "heads" (whole KV groups); the
  // method then picks the scores: magnitude (weight norms) or wanda (activation-aware).
  std::string structure;
};

struct QuantStage {
  std::string method = "rtn";  // rtn | gptq | awq | smoothquant
  int bits = 4;                // weight bits: 4 or 8
  int64_t group_size = 128;    // 0: per output channel
  bool symmetric = true;
  bool act_order = false;      // GPTQ
  bool clip_search = false;    // RTN: MSE clip search per group
  double percdamp = 0.01;      // GPTQ damping
  // W8A8 (scheme w8a8 or method smoothquant): activations in int8
  bool int8_activations = false;
  std::string act = "dynamic";     // dynamic (per token) | static (per tensor, from the observer)
  std::string observer = "minmax";  // minmax | percentile | entropy | mse
  double percentile = 99.99;
  double alpha = 0.5;               // SmoothQuant migration strength
  // Mixed precision (w4a16 with rtn or gptq): > 0 picks INT4 or INT8 per channel per layer by
  // measured sensitivity so that the average stored bits per weight stays at most this (0: off).
  double target_bits = 0;
  // Token embedding table: 0 keeps it dense; 4 or 8 quantizes it round-to-nearest per row with
  // this stage's group size and symmetry (compress/embedding.hpp). A head tied to it follows.
  int embedding_bits = 0;
};

struct Stage {
  enum class Kind { Prune, Quantize } kind = Kind::Quantize;
  PruneStage prune;
  QuantStage quant;
  std::vector<std::string> ignore;  // regexes over linear names ("model.layers.0.mlp.down_proj")
  // Also quantize an untied lm_head (round to nearest at the stage's bits and group size). A head
  // tied to the embeddings is quantized with them (QuantStage::embedding_bits) or not at all.
  bool include_head = false;
};

struct Recipe {
  std::vector<Stage> stages;
  std::string calib_file;  // may be empty when no stage needs calibration
  calibrate::SampleConfig calib;
  std::string dense_dtype = "f16";  // storage of the remaining float weights: f32 | f16 | bf16

  bool needs_calibration() const;
  nlohmann::json to_json() const;
};

// Parses "w4a16" / "w8a16" / "w8a8" into the stage's bits and activation mode.
void apply_scheme(QuantStage& q, const std::string& scheme);
// Parses "unstructured" / "2:4" / "4:8" / "N:M" into the stage.
void apply_pattern(PruneStage& p, const std::string& pattern);
// Checks every field; throws a usage Error naming the stage and field.
void validate(const Recipe& r);
// Reads a YAML recipe; errors name the file and the key.
Recipe read_recipe_yaml(const std::string& path);

}  // namespace llmc::compress
