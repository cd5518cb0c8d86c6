// GPTQ (Frantar et al. 2022, Algorithm 1): quantize a linear weight column by column, spreading
// each column's rounding error over the columns not yet quantized through the inverse Hessian.
#pragma once
#include <cstdint>
#include <string>

#include <Eigen/Core>

#include "compress/hessian.hpp"
#include "compress/quantizer.hpp"

namespace llmc::compress {

struct GptqConfig {
  QuantConfig quant;
  double percdamp = 0.01;    // λ = percdamp·mean(diag H)
  int64_t block_size = 128;  // lazy batch width B (§3, "Lazy Batch-Updates")
  bool act_order = false;    // quantize columns by descending H_jj; groups then follow that order (g_idx)
  bool static_groups = false;  // fit every group's grid up front on the original weight (reference option)
  int max_damp_retries = 3;    // ×10 damping steps tried after a failed Cholesky
  // Optional sparsity mask [rows, cols] (row-major, original column order; 0 = pruned), e.g. from
  // a prune stage before quantization. Pruned weights are fixed at exactly zero (code 0 when
  // symmetric, the group's zero point when asymmetric: zero is on every grid) and their error
  // w − 0, w the value GPTQ's updates have carried them to, is propagated through the inverse
  // Hessian like any other column's, as in SparseGPT's joint sparsification and quantization
  // (Frantar & Alistarh 2023). Grids are fitted on the kept weights only. Given the dense weight
  // and a mask, this is that joint method; given the already-pruned weight, it re-fits the kept
  // weights around the quantization error without ever un-pruning a position.
  const uint8_t* mask = nullptr;
};

struct GptqResult {
  QuantizedWeight weight;
  double loss = 0;           // Σ (w − q)² / (2·U_jj²), U = chol(H⁻¹) upper, as the reference reports it;
                             // on RTN fallback Σ (w − ŵ)² / 2
  double damp = 0;           // λ that was used
  bool fell_back_to_rtn = false;
  std::string warning;       // non-empty when damping had to grow or RTN was used instead
};

// W [rows = out, cols = in] row-major f32; H [cols, cols] = 2·XᵀX/n (HessianAccumulator), symmetric.
// Dead inputs (H_jj = 0) get H_jj = 1 and a zero weight column, as in the reference. The sweep
// runs in float64 over the factor V of H + λI = V·Vᵀ instead of U = chol((H + λI)⁻¹) (hessian.hpp;
// the same quantized weight up to rounding, without forming the inverse). Group grids are fitted
// when the sweep enters a group, on the group's weights as updated by every earlier column (the
// reference reads a copy that misses updates from earlier columns of the same lazy block; we apply
// them, which makes the result independent of block_size). With act_order and fitted groups, the
// groups are contiguous in the permuted order and g_idx maps each input column to its group.
// Never throws for an ill-conditioned H: it raises the damping, then falls back to RTN with a
// warning. Throws Error naming `name` on bad shapes, config, or non-finite W or H.
GptqResult gptq_quantize(const float* W, int64_t rows, int64_t cols, const Eigen::MatrixXd& H, const GptqConfig& cfg,
                         const std::string& name);

}  // namespace llmc::compress
