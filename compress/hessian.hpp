// The layer Hessian H = 2·XᵀX/n of the squared output error (GPTQ §2, SparseGPT §3) and the
// triangular factor of its damped form that both GPTQ and SparseGPT sweep over.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Core>

namespace llmc::compress {

// Adds batches of calibration activations X [n_tokens, cols] (row-major f32) into Σ XᵀX.
// Each chunk of up to 1024 tokens is multiplied in f32 and added into an f64 sum, so the
// accumulation over many batches does not lose precision.
class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t cols);
  // Throws Error naming `name` on non-finite activations.
  void add(const float* X, int64_t n_tokens, const std::string& name = "activations");
  int64_t cols() const { return cols_; }
  int64_t n_tokens() const { return n_; }
  // 2·XᵀX / n over every token added (symmetric); throws Error when no token was added.
  Eigen::MatrixXd hessian() const;

 private:
  int64_t cols_;
  int64_t n_ = 0;
  Eigen::MatrixXd sum_;  // lower triangle of Σ XᵀX
};

// Throws Error naming `name` unless H is cols × cols and finite.
void check_hessian(const Eigen::MatrixXd& H, int64_t cols, const std::string& name);

// Columns whose input never fires (H_jj = 0) get H_jj = 1 so that H stays invertible; the caller
// zeroes those weight columns (they cannot affect the output). Returns which columns were dead.
std::vector<char> fix_dead_columns(Eigen::MatrixXd& H);

// GPTQ and SparseGPT as published sweep with U, the upper Cholesky factor of (H + λI)⁻¹. We use
// V instead, the upper triangular factor with H + λI = V·Vᵀ (so U = V⁻¹), which needs no inverse:
// with ρ = w − q on the columns already fixed (original weight minus its quantized/pruned value),
// the reference's scaled errors are e = ρ·V (since w − q = e·U), so column j, when the sweep
// reaches it, holds w_j + Σ_{i<j} ρ_i·V_ij / V_jj; and the later columns k ≥ j hold the OBS re-fit
// w + (H_kk)⁻¹·H_k,<j·ρ = w + V_kk⁻ᵀ·(V_<j,k)ᵀ·ρ (a triangular solve with a diagonal block of V).
// Same results up to rounding, and the inverse's n³/3 flops are saved.
// When the Cholesky factorisation fails, λ = percdamp·mean(diag H) grows ×10 up to max_retries
// times; ok = false if it never succeeds.
struct DampedFactor {
  Eigen::MatrixXd V;
  double damp = 0;
  int attempts = 0;
  bool ok = false;
};
// H is taken by value: hand over a scratch copy with std::move to save one n×n copy.
DampedFactor damped_ul_cholesky(Eigen::MatrixXd H, double percdamp, int max_retries);

// The sweep's bookkeeping over V. `W0` holds the original weights and `C` the running values
// c_k = w_k + Σ_{i<j} ρ_i·V_ik / V_kk (columns as in W, column-major [rows, cols]).
// Vs = V with column k divided by V_kk: adding ρ_j·Vs(j, k) to c_k advances the sweep past j.
Eigen::MatrixXd column_scaled(const Eigen::MatrixXd& V);
// The OBS-current weights of columns [c0, c0 + len) when the sweep stands at c0, given those
// columns of W0 and C: W0 + ((C − W0)·diag(V_kk))·V_gg⁻¹ with V_gg the diagonal block.
Eigen::MatrixXd current_weights(const Eigen::Ref<const Eigen::MatrixXd>& W0, const Eigen::Ref<const Eigen::MatrixXd>& C,
                                const Eigen::MatrixXd& V, int64_t c0);

}  // namespace llmc::compress
