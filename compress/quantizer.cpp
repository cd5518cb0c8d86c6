#include "compress/quantizer.hpp"

#include <algorithm>
#include <cmath>

namespace llmc::compress {

namespace {

// f16 scale nearest to s (through f32, as any f32 pipeline would store it); never zero.
double to_f16_scale(double s) {
  if (s == 0) return 1.0;
  uint16_t h = f32_to_f16(static_cast<float>(s));
  if ((h & 0x7fff) == 0) h = 1;  // underflow: the smallest subnormal keeps the grid invertible
  const double r = f16_to_f32(h);
  if (!std::isfinite(r)) throw Error("quantization scale " + std::to_string(s) + " overflows f16");
  return r;
}

}  // namespace

void check_quant_config(const QuantConfig& cfg, int64_t cols, const std::string& name) {
  check(cfg.bits == 4 || cfg.bits == 8, "'" + name + "': bits must be 4 or 8, got " + std::to_string(cfg.bits));
  check(cols > 0, "'" + name + "': in_features must be positive, got " + std::to_string(cols));
  check(cfg.group_size >= 0, "'" + name + "': group size must be ≥ 0, got " + std::to_string(cfg.group_size));
  check(cfg.group_size == 0 || cfg.group_size >= cols || cfg.group_size % 32 == 0,
        "'" + name + "': group size " + std::to_string(cfg.group_size) + " is not a multiple of 32 (in_features " +
            std::to_string(cols) + "; the GPU kernels need group boundaries on 32-column blocks)");
  if (cfg.clip_search)
    check(cfg.clip_grid > 0 && cfg.clip_max_shrink > 0 && cfg.clip_max_shrink < 1,
          "'" + name + "': clip search needs clip_grid > 0 and clip_max_shrink in (0, 1)");
}

void check_finite(const float* v, int64_t n, const std::string& name, const std::string& what) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i]))
      throw Error("'" + name + "': " + what + " holds a non-finite value (" + std::to_string(v[i]) + ") at flat index " +
                  std::to_string(i));
}

bool scale_fits_f16(double amax, const QuantConfig& cfg) {
  // the largest scale is max|w|/q_hi (symmetric) or at most 2·max|w|/q_hi (asymmetric); 65504 is
  // f16's largest finite value, and f32→f16 rounding of anything below 65520 stays finite
  return (cfg.symmetric ? amax : 2 * amax) / q_hi(cfg) < 65504.0;
}

void check_f16_range(const float* w, int64_t n, const QuantConfig& cfg, const std::string& name) {
  double amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(static_cast<double>(w[i])));
  check(scale_fits_f16(amax, cfg), "'" + name + "': max |w| = " + std::to_string(amax) + " needs a scale beyond f16's range at " +
                         std::to_string(cfg.bits) + " bits");
}

GroupGrid fit_range(double lo, double hi, const QuantConfig& cfg) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  GroupGrid g;
  if (cfg.symmetric) {
    g.scale = to_f16_scale(std::max(-lo, hi) / q_hi(cfg));
    return g;
  }
  g.scale = to_f16_scale((hi - lo) / q_hi(cfg));
  g.zero = static_cast<int>(std::clamp(std::nearbyint(-lo / g.scale), 0.0, static_cast<double>(q_hi(cfg))));
  return g;
}

int quantize_value(double w, const GroupGrid& g, const QuantConfig& cfg) {
  // nearbyint rounds half to even in the default floating-point environment
  const double q = std::nearbyint(w / g.scale) + g.zero;
  return static_cast<int>(std::clamp(q, static_cast<double>(q_lo(cfg)), static_cast<double>(q_hi(cfg))));
}

double group_sq_error(const double* w, int64_t n, int64_t stride, const GroupGrid& g, const QuantConfig& cfg) {
  double err = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = w[i * stride] - dequantize_value(quantize_value(w[i * stride], g, cfg), g);
    err += d * d;
  }
  return err;
}

GroupGrid fit_group(const double* w, int64_t n, int64_t stride, const QuantConfig& cfg) {
  double lo = 0, hi = 0;
  for (int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, w[i * stride]);
    hi = std::max(hi, w[i * stride]);
  }
  GroupGrid best = fit_range(lo, hi, cfg);
  if (!cfg.clip_search) return best;
  double best_err = group_sq_error(w, n, stride, best, cfg);
  const int steps = static_cast<int>(std::floor(cfg.clip_max_shrink * cfg.clip_grid + 1e-9));
  for (int i = 1; i < steps; ++i) {
    const double p = 1.0 - static_cast<double>(i) / cfg.clip_grid;
    const GroupGrid g = fit_range(lo * p, hi * p, cfg);
    const double err = group_sq_error(w, n, stride, g, cfg);
    if (err < best_err) {
      best_err = err;
      best = g;
    }
  }
  return best;
}

QuantizedWeight pack_weight(int64_t rows, int64_t cols, const QuantConfig& cfg, const int16_t* codes,
                            const GroupGrid* grids) {
  QuantizedWeight qw = QuantizedWeight::allocate(cfg.bits, rows, cols, cfg.group_size, cfg.symmetric);
  const int64_t ng = qw.n_groups();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) qw.set_q(r, c, codes[r * cols + c]);
    for (int64_t g = 0; g < ng; ++g) {
      qw.scales[r * ng + g] = f32_to_f16(static_cast<float>(grids[r * ng + g].scale));
      if (!qw.symmetric) qw.set_zero(r, g, grids[r * ng + g].zero);
    }
  }
  return qw;
}

}  // namespace llmc::compress
