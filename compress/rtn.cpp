#include "compress/rtn.hpp"

#include <algorithm>
#include <vector>

namespace llmc::compress {

QuantizedWeight quantize_rtn(const float* W, int64_t rows, int64_t cols, const QuantConfig& cfg,
                             const std::string& name) {
  check_quant_config(cfg, cols, name);
  check(rows > 0, "'" + name + "': out_features must be positive, got " + std::to_string(rows));
  check_finite(W, rows * cols, name, "weight");
  check_f16_range(W, rows * cols, cfg, name);
  const int64_t gl = group_len(cfg, cols), ng = group_count(cfg, cols);
  std::vector<int16_t> codes(rows * cols);
  std::vector<GroupGrid> grids(rows * ng);
#pragma omp parallel
  {
    std::vector<double> buf(gl);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t c0 = g * gl, len = std::min(gl, cols - c0);  // the last group may be short
        for (int64_t i = 0; i < len; ++i) buf[i] = W[r * cols + c0 + i];
        const GroupGrid grid = fit_group(buf.data(), len, 1, cfg);
        grids[r * ng + g] = grid;
        for (int64_t i = 0; i < len; ++i) codes[r * cols + c0 + i] = static_cast<int16_t>(quantize_value(buf[i], grid, cfg));
      }
    }
  }
  return pack_weight(rows, cols, cfg, codes.data(), grids.data());
}

}  // namespace llmc::compress
