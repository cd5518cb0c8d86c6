// Statistics of one activation that feeds one or more linear layers, gathered over the
// calibration tokens: the Hessian XᵀX (GPTQ, SparseGPT), Σx² per channel (Wanda), max |x| per
// channel (SmoothQuant), a token sample (AWQ's search, error reports), and an |x| histogram
// (static activation observers).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "calibrate/observer.hpp"
#include "compress/hessian.hpp"
#include "runtime/ir/tensor.hpp"

namespace llmc::compress {

struct StatsNeeds {
  bool hessian = false, sq_norm = false, abs_max = false, histogram = false;
  int64_t sample_rows_per_window = 0;
};

class LinearInputStats {
 public:
  LinearInputStats(int64_t cols, const StatsNeeds& needs, std::string name);
  void add(const Tensor& x);  // x [tokens, cols] f32

  int64_t cols() const { return cols_; }
  int64_t tokens() const { return tokens_; }
  const HessianAccumulator& hessian() const;
  std::vector<float> column_norms() const;  // ‖X_j‖₂
  const std::vector<float>& abs_max() const { return abs_max_; }
  const std::vector<float>& sample() const { return sample_; }  // [sample_rows, cols]
  int64_t sample_rows() const { return cols_ ? static_cast<int64_t>(sample_.size()) / cols_ : 0; }
  const calibrate::AbsHistogram& histogram() const;

 private:
  int64_t cols_, tokens_ = 0;
  StatsNeeds needs_;
  std::string name_;
  std::unique_ptr<HessianAccumulator> hessian_;
  std::vector<double> sq_;
  std::vector<float> abs_max_, sample_;
  std::unique_ptr<calibrate::AbsHistogram> hist_;
};

}  // namespace llmc::compress
