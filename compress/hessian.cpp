#include "compress/hessian.hpp"

#include <cmath>

#include <Eigen/Cholesky>

#include "compress/quantizer.hpp"

namespace llmc::compress {

using RowMatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

HessianAccumulator::HessianAccumulator(int64_t cols) : cols_(cols), sum_(Eigen::MatrixXd::Zero(cols, cols)) {
  check(cols > 0, "HessianAccumulator: in_features must be positive, got " + std::to_string(cols));
}

void HessianAccumulator::add(const float* X, int64_t n_tokens, const std::string& name) {
  check(n_tokens >= 0, "'" + name + "': negative token count");
  check_finite(X, n_tokens * cols_, name, "activations");
  constexpr int64_t kChunk = 1024;
  Eigen::MatrixXf part(cols_, cols_);
  for (int64_t t0 = 0; t0 < n_tokens; t0 += kChunk) {
    const int64_t nb = std::min(kChunk, n_tokens - t0);
    Eigen::Map<const RowMatF> Xc(X + t0 * cols_, nb, cols_);
    part.setZero();
    part.selfadjointView<Eigen::Lower>().rankUpdate(Xc.transpose());
    sum_.triangularView<Eigen::Lower>() += part.cast<double>();
  }
  n_ += n_tokens;
}

Eigen::MatrixXd HessianAccumulator::hessian() const {
  check(n_ > 0, "HessianAccumulator: no calibration tokens were added");
  Eigen::MatrixXd H = sum_.selfadjointView<Eigen::Lower>();
  return H * (2.0 / static_cast<double>(n_));
}

void check_hessian(const Eigen::MatrixXd& H, int64_t cols, const std::string& name) {
  check(H.rows() == cols && H.cols() == cols, "'" + name + "': Hessian is " + std::to_string(H.rows()) + "×" +
                                                  std::to_string(H.cols()) + ", expected " + std::to_string(cols) +
                                                  "×" + std::to_string(cols) + " (in_features)");
  check(H.allFinite(), "'" + name + "': Hessian holds non-finite values");
}

std::vector<char> fix_dead_columns(Eigen::MatrixXd& H) {
  std::vector<char> dead(H.rows(), 0);
  for (Eigen::Index j = 0; j < H.rows(); ++j)
    if (H(j, j) == 0) {
      H(j, j) = 1;
      dead[j] = 1;
    }
  return dead;
}

DampedFactor damped_ul_cholesky(Eigen::MatrixXd H, double percdamp, int max_retries) {
  DampedFactor r;
  const int64_t n = H.rows();
  const double mean_diag = H.diagonal().mean();
  if (!(mean_diag > 0) || !std::isfinite(mean_diag)) return r;
  // with J the exchange matrix, J(H + λI)J = L·Lᵀ gives H + λI = (JLJ)(JLJ)ᵀ and JLJ is upper.
  // The factorisation runs in place on the lower triangle; the strict upper triangle keeps JHJ
  // for a retry.
  H.reverseInPlace();
  const Eigen::VectorXd diag = H.diagonal();
  for (int k = 0; k <= max_retries; ++k) {
    r.attempts = k + 1;
    r.damp = percdamp * mean_diag * std::pow(10.0, k);
    if (k > 0)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t i = j + 1; i < n; ++i) H(i, j) = H(j, i);
    H.diagonal() = diag.array() + r.damp;
    Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>> llt(H);
    if (llt.info() != Eigen::Success) continue;
    H.reverseInPlace();
    H.triangularView<Eigen::StrictlyLower>().setZero();
    if (!H.allFinite() || !(H.diagonal().array() > 0).all()) return r;
    r.V = std::move(H);
    r.ok = true;
    return r;
  }
  return r;
}

Eigen::MatrixXd column_scaled(const Eigen::MatrixXd& V) {
  return V * V.diagonal().cwiseInverse().asDiagonal();
}

Eigen::MatrixXd current_weights(const Eigen::Ref<const Eigen::MatrixXd>& W0, const Eigen::Ref<const Eigen::MatrixXd>& C,
                                const Eigen::MatrixXd& V, int64_t c0) {
  const int64_t len = W0.cols();
  Eigen::MatrixXd D = (C - W0) * V.diagonal().segment(c0, len).asDiagonal();
  V.block(c0, c0, len, len).triangularView<Eigen::Upper>().solveInPlace<Eigen::OnTheRight>(D);
  return W0 + D;
}

}  // namespace llmc::compress
