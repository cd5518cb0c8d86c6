#include "compress/linear_stats.hpp"

#include <cmath>

namespace llmc::compress {

LinearInputStats::LinearInputStats(int64_t cols, const StatsNeeds& needs, std::string name)
    : cols_(cols), needs_(needs), name_(std::move(name)) {
  if (needs.hessian) hessian_ = std::make_unique<HessianAccumulator>(cols);
  if (needs.sq_norm) sq_.assign(cols, 0.0);
  if (needs.abs_max) abs_max_.assign(cols, 0.0f);
  if (needs.histogram) hist_ = std::make_unique<calibrate::AbsHistogram>();
}

void LinearInputStats::add(const Tensor& x) {
  check(x.dtype() == DType::F32 && x.rank() >= 1 && x.dim(-1) == cols_,
        name_ + ": calibration activation has shape " + shape_str(x.shape()) + ", expected [*, " + std::to_string(cols_) + "]");
  const int64_t n = x.numel() / cols_;
  const float* p = x.data<float>();
  if (hessian_) hessian_->add(p, n, name_);
  if (!sq_.empty())
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < cols_; ++j) sq_[j] += static_cast<double>(p[t * cols_ + j]) * p[t * cols_ + j];
  if (!abs_max_.empty())
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < cols_; ++j) abs_max_[j] = std::max(abs_max_[j], std::fabs(p[t * cols_ + j]));
  if (hist_) hist_->add(p, n * cols_);
  // evenly spaced rows of every window, so the sample covers all positions and all windows
  const int64_t k = std::min(needs_.sample_rows_per_window, n);
  for (int64_t i = 0; i < k; ++i) {
    const int64_t t = (2 * i + 1) * n / (2 * k);
    sample_.insert(sample_.end(), p + t * cols_, p + (t + 1) * cols_);
  }
  tokens_ += n;
}

const HessianAccumulator& LinearInputStats::hessian() const {
  if (!hessian_) throw Error(name_ + ": no Hessian was gathered", ErrorKind::Runtime);
  return *hessian_;
}

std::vector<float> LinearInputStats::column_norms() const {
  std::vector<float> r(sq_.size());
  for (size_t j = 0; j < sq_.size(); ++j) r[j] = static_cast<float>(std::sqrt(sq_[j]));
  return r;
}

const calibrate::AbsHistogram& LinearInputStats::histogram() const {
  if (!hist_) throw Error(name_ + ": no activation histogram was gathered", ErrorKind::Runtime);
  return *hist_;
}

}  // namespace llmc::compress
