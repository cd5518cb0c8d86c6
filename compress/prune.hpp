// Weight pruning of one linear W [rows = out, cols = in]: magnitude, N:M, Wanda (Sun et al. 2023),
// SparseGPT (Frantar & Alistarh 2023), and scores for structured (channel/head) pruning.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "runtime/ir/error.hpp"

namespace llmc::compress {

// What to prune. Counts round half away from zero (llround). Among equal scores the later
// position (row-major) is pruned first, i.e. the earlier of equals is kept, so results never
// depend on sort implementation details.
struct SparsityConfig {
  double ratio = 0.5;    // unstructured: fraction of weights set to zero, in [0, 1)
  int n = 0, m = 0;      // m > 0: N:M, keep the n largest of every m consecutive inputs (ratio unused)
  bool per_row = false;  // unstructured: exactly round(ratio·cols) per output row instead of
                         // round(ratio·rows·cols) over the layer (Wanda always compares per row)
};

struct PruneResult {
  std::vector<float> weight;  // pruned weight [rows, cols] (SparseGPT also updates the kept ones)
  std::vector<uint8_t> mask;  // 1 where kept
  double loss = 0;            // SparseGPT: Σ w_pruned² / (2·U_jj²), U = chol(H⁻¹) upper, as the reference
  bool fell_back = false;     // SparseGPT could not factor H and used Wanda scores from diag H
  std::string warning;
};

// Throws Error naming `name` when ratio ∉ [0, 1), n ∉ [1, m), or m does not divide cols.
void check_sparsity(const SparsityConfig& cfg, int64_t cols, const std::string& name);

// Smallest |w| pruned first.
PruneResult prune_magnitude(const float* W, int64_t rows, int64_t cols, const SparsityConfig& cfg,
                            const std::string& name);

// ‖X_j‖₂ per input channel of X [n_tokens, cols], accumulated in f64.
std::vector<float> input_column_norms(const float* X, int64_t n_tokens, int64_t cols, const std::string& name);

// Wanda: score |W_ij|·‖X_j‖₂, compared within each output row (unstructured, per row) or within
// each N:M group. input_norms has cols entries (input_column_norms).
PruneResult prune_wanda(const float* W, int64_t rows, int64_t cols, const float* input_norms,
                        const SparsityConfig& cfg, const std::string& name);

struct SparseGptConfig {
  SparsityConfig sparsity;
  int64_t block_size = 128;  // lazy batch and adaptive mask block Bs
  double percdamp = 0.01;
  int max_damp_retries = 3;  // ×10 damping steps after a failed Cholesky, then Wanda scores
};

// SparseGPT (Algorithm 1): sweep columns left to right; at the start of each block of Bs columns
// choose the mask from w² / [H⁻¹]_jj² on the current weights (over the whole block, or per row
// when per_row), or per group of m columns for N:M; prune, and push each column's error onto the
// later columns through the upper Cholesky factor of H⁻¹. H = 2·XᵀX/n [cols, cols].
PruneResult prune_sparsegpt(const float* W, int64_t rows, int64_t cols, const Eigen::MatrixXd& H,
                            const SparseGptConfig& cfg, const std::string& name);

// Structured pruning scores (the model-level shrink uses them to pick what to keep).
// FFN channel i of an MLP with up (and gate, may be null) [d_ff, d_model] and down [d_model, d_ff]:
// without activations sqrt(‖gate_i‖² + ‖up_i‖² + ‖down_:,i‖²); with act_sqnorm[i] = Σ_t h_ti² of
// down's input, ‖h_i‖·‖down_:,i‖, which is exactly the norm of channel i's contribution to the output.
std::vector<double> ffn_channel_scores(const float* gate, const float* up, const float* down, int64_t d_model,
                                       int64_t d_ff, const float* act_sqnorm, const std::string& name);
// Attention head h: rows [h·Dh, (h+1)·Dh) of W_q [H·Dh, d_model] and the same columns of
// W_o [d_model, H·Dh]. Without activations sqrt(‖W_q[h]‖² + ‖W_o[:, h]‖²); with o_input
// [n_tokens, H·Dh] (the attention output feeding o_proj), ‖o_input[:, h]·W_o[:, h]ᵀ‖_F, the norm of
// the head's contribution to the output.
std::vector<double> head_scores(const float* wq, const float* wo, int64_t d_model, int64_t n_heads, int64_t head_dim,
                                const float* o_input, int64_t n_tokens, const std::string& name);
// Indices of the k highest scores in ascending order (ties keep the lower index).
std::vector<int64_t> keep_top_k(const std::vector<double>& scores, int64_t k, const std::string& name);

}  // namespace llmc::compress
