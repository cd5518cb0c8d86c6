// AWQ (Lin et al. 2023): activation-aware weight quantization. Searches per-input-channel scales
// s = s_x^α that protect salient channels (§3.2), then clips each group's range to minimise the
// output error (the reference's auto_clip), and quantizes W·diag(s).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "compress/quantizer.hpp"

namespace llmc::compress {

struct AwqConfig {
  // AWQ's default: INT4, groups of 128, zero points. clip_search here is ignored: AWQ clips on the
  // output error (below), not on the weight error.
  QuantConfig quant{4, 128, false, false, 20, 0.5};
  int n_grid = 20;               // α ∈ {0, 1/n_grid, …, (n_grid − 1)/n_grid}, as the reference's range(n_grid)
  int64_t search_tokens = 1024;  // scale search runs on at most this many tokens (every ⌊n/k⌋-th)
  bool clip = true;
  int clip_grid = 20;            // shrink factors 1 − i/clip_grid, i < ⌊clip_max_shrink·clip_grid⌋
  double clip_max_shrink = 0.5;
  int64_t clip_tokens = 512;     // clip search token sample (the reference's n_sample_token)
};

// One linear layer fed by the shared input X: W [rows, cols] row-major f32.
struct AwqLinear {
  const float* W = nullptr;
  int64_t rows = 0;
  std::string name;
};

struct AwqResult {
  // s per input channel (f32). The quantized weights hold W·diag(s): fold 1/s into the op that
  // produces X (the previous norm's weight, or the previous linear's output rows).
  std::vector<float> scales;
  std::vector<QuantizedWeight> weights;     // one per linear, in the order given
  std::vector<std::vector<float>> clip_max;  // per linear [rows, n_groups]: the chosen clip bound (of W·s)
  double alpha = 0;
  double loss = 0;      // mean squared output error of the chosen scales (before clipping) on the search tokens
  double loss_rtn = 0;  // the same for α = 0, i.e. plain RTN
};

// Linears sharing one input (e.g. q, k and v after the same norm) share the scales; the search
// minimises the summed squared error of their outputs, ‖X·Wᵀ − (X/s)·Q(W·s)ᵀ‖², over X [n_tokens, cols].
// Throws Error naming the linear on bad shapes/config or non-finite weights or activations.
AwqResult awq_quantize(const std::vector<AwqLinear>& linears, int64_t cols, const float* X, int64_t n_tokens,
                       const AwqConfig& cfg);

// Every ⌊n/k⌋-th token of X [n, cols], at most k of them (all when n ≤ k).
std::vector<int64_t> sample_tokens(int64_t n, int64_t k);

}  // namespace llmc::compress
