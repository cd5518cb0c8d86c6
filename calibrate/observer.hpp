// Per-tensor activation range observers for static INT8 activation quantization: a streaming
// histogram of |x| and the thresholds chosen from it by min-max, percentile, entropy (the KL
// calibration of TensorRT's INT8 calibrator, Migacz 2017) and MSE.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace llmc::calibrate {

enum class ObserverKind { MinMax, Percentile, Entropy, Mse };
ObserverKind observer_from_name(const std::string& name);  // "minmax", "percentile", "entropy", "mse"
std::string observer_name(ObserverKind k);

class AbsHistogram {
 public:
  explicit AbsHistogram(int bins = 2048) : counts_(bins, 0.0) {}
  // Adds |x| of n values. When a value exceeds the range, the range doubles (adjacent bins merge),
  // so the histogram stays exact up to its bin width whatever the order of batches.
  void add(const float* x, int64_t n);
  double max_abs() const { return max_; }
  double range() const { return range_; }
  const std::vector<double>& counts() const { return counts_; }
  int64_t total() const { return total_; }

  // Clipping threshold T (activations quantize as round(x / (T / qmax))) for the observer.
  // percentile is in (0, 100] and used by Percentile only; qmax = 127 for int8.
  double threshold(ObserverKind kind, double percentile = 99.99, int qmax = 127) const;

 private:
  std::vector<double> counts_;
  double range_ = 0, max_ = 0;
  int64_t total_ = 0;
  double bin_width() const { return range_ / counts_.size(); }
  double entropy_threshold(int qmax) const;
  double mse_threshold(int qmax) const;
};

}  // namespace llmc::calibrate
