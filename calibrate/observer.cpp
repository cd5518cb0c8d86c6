#include "calibrate/observer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/ir/error.hpp"

namespace llmc::calibrate {

ObserverKind observer_from_name(const std::string& n) {
  if (n == "minmax") return ObserverKind::MinMax;
  if (n == "percentile") return ObserverKind::Percentile;
  if (n == "entropy" || n == "kl") return ObserverKind::Entropy;
  if (n == "mse") return ObserverKind::Mse;
  throw Error("unknown observer '" + n + "' (expected minmax, percentile, entropy or mse)", ErrorKind::Usage);
}

std::string observer_name(ObserverKind k) {
  switch (k) {
    case ObserverKind::MinMax: return "minmax";
    case ObserverKind::Percentile: return "percentile";
    case ObserverKind::Entropy: return "entropy";
    case ObserverKind::Mse: return "mse";
  }
  return "?";
}

void AbsHistogram::add(const float* x, int64_t n) {
  double mx = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) throw Error("observer: non-finite activation value", ErrorKind::Runtime);
    mx = std::max(mx, static_cast<double>(std::fabs(x[i])));
  }
  max_ = std::max(max_, mx);
  if (range_ == 0) {
    if (mx == 0) {  // nothing but zeros so far: count them without fixing a range
      counts_[0] += static_cast<double>(n);
      total_ += n;
      return;
    }
    range_ = std::ldexp(1.0, static_cast<int>(std::ceil(std::log2(mx))));  // a power of two ≥ mx
    if (range_ < mx) range_ *= 2;
  }
  const int bins = static_cast<int>(counts_.size());
  while (mx > range_) {  // double the range: bins 2i and 2i+1 merge into bin i
    for (int i = 0; i < bins / 2; ++i) counts_[i] = counts_[2 * i] + counts_[2 * i + 1];
    std::fill(counts_.begin() + bins / 2, counts_.end(), 0.0);
    range_ *= 2;
  }
  const double scale = bins / range_;
  for (int64_t i = 0; i < n; ++i) {
    int b = static_cast<int>(std::fabs(x[i]) * scale);
    counts_[std::min(b, bins - 1)] += 1;
  }
  total_ += n;
}

double AbsHistogram::threshold(ObserverKind kind, double percentile, int qmax) const {
  if (total_ == 0) throw Error("observer: no activations were recorded (the layer received no calibration tokens)",
                               ErrorKind::Runtime);
  if (max_ == 0) return 0;
  switch (kind) {
    case ObserverKind::MinMax: return max_;
    case ObserverKind::Percentile: {
      if (!(percentile > 0 && percentile <= 100)) throw Error("observer: percentile must be in (0, 100]", ErrorKind::Usage);
      const double target = total_ * percentile / 100.0;
      double acc = 0;
      for (size_t i = 0; i < counts_.size(); ++i) {
        acc += counts_[i];
        if (acc >= target) return std::min(max_, (i + 1) * bin_width());
      }
      return max_;
    }
    case ObserverKind::Entropy: return entropy_threshold(qmax);
    case ObserverKind::Mse: return mse_threshold(qmax);
  }
  return max_;
}

// TensorRT's entropy calibration: for each candidate i (bins kept), P is the histogram clipped at
// bin i with the outliers folded into its last bin; Q quantizes P's first i bins into qmax + 1 levels
// and spreads each level's mass evenly over its non-empty bins; choose the i of least KL(P‖Q).
double AbsHistogram::entropy_threshold(int qmax) const {
  const int levels = qmax + 1, bins = static_cast<int>(counts_.size());
  int last = bins;
  while (last > 0 && counts_[last - 1] == 0) --last;
  if (last <= levels) return std::min(max_, last * bin_width());
  double best_kl = std::numeric_limits<double>::infinity();
  int best_i = last;
  std::vector<double> p, q;
  for (int i = levels; i <= last; ++i) {
    p.assign(counts_.begin(), counts_.begin() + i);
    double outliers = 0;
    for (int j = i; j < bins; ++j) outliers += counts_[j];
    p[i - 1] += outliers;
    q.assign(i, 0.0);
    for (int l = 0; l < levels; ++l) {
      const int b0 = static_cast<int>(static_cast<int64_t>(l) * i / levels);
      const int b1 = static_cast<int>(static_cast<int64_t>(l + 1) * i / levels);
      double mass = 0;
      int nonzero = 0;
      for (int j = b0; j < b1; ++j) {
        mass += counts_[j];
        nonzero += counts_[j] != 0;
      }
      for (int j = b0; j < b1; ++j)
        if (counts_[j] != 0) q[j] = mass / nonzero;
    }
    double ps = 0, qs = 0;
    for (int j = 0; j < i; ++j) {
      ps += p[j];
      qs += q[j];
    }
    double kl = 0;
    for (int j = 0; j < i; ++j) {
      if (p[j] == 0) continue;
      const double pj = p[j] / ps;
      // a level that lost all its mass to clipping leaves q = 0 where p > 0: smooth it as TensorRT does
      const double qj = q[j] > 0 ? q[j] / qs : 1e-10;
      kl += pj * std::log(pj / qj);
    }
    if (kl < best_kl) {
      best_kl = kl;
      best_i = i;
    }
  }
  return std::min(max_, (best_i + 0.5) * bin_width());
}

// Expected squared error of symmetric quantization with clip T over the histogram, taking each
// bin's values at its centre: clipped values cost (x − T)², the rest their rounding error.
double AbsHistogram::mse_threshold(int qmax) const {
  const int bins = static_cast<int>(counts_.size());
  const double w = bin_width();
  double best = std::numeric_limits<double>::infinity(), best_t = max_;
  for (int cand = 1; cand <= bins; ++cand) {
    const double t = std::min(max_, cand * w);
    const double step = t / qmax;
    double err = 0;
    for (int j = 0; j < bins; ++j) {
      if (counts_[j] == 0) continue;
      const double x = (j + 0.5) * w;
      const double d = x > t ? x - t : x - step * std::nearbyint(x / step);
      err += counts_[j] * d * d;
    }
    if (err < best) {
      best = err;
      best_t = t;
    }
    if (t >= max_) break;
  }
  return best_t;
}

}  // namespace llmc::calibrate
