#include "kernels/cpu/transformer_ops.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace llmc::kernels::cpu {

void embedding_gather(const float* table, int64_t d, const int32_t* ids, float* out, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) std::memcpy(out + r * d, table + static_cast<int64_t>(ids[r]) * d, d * sizeof(float));
}

void add(const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void log_softmax_rows(const float* x, float* out, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    const float mx = *std::max_element(xr, xr + n);
    double s = 0;
    for (int64_t j = 0; j < n; ++j) s += std::exp(static_cast<double>(xr[j]) - mx);
    const double lse = mx + std::log(s);
    for (int64_t j = 0; j < n; ++j) out[r * n + j] = static_cast<float>(xr[j] - lse);
  }
}

void argmax_rows(const float* x, int32_t* ids, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r)
    ids[r] = static_cast<int32_t>(std::max_element(x + r * n, x + (r + 1) * n) - (x + r * n));
}

}  // namespace llmc::kernels::cpu
