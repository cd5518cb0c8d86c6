// Round-to-nearest weight quantization (INT4/INT8, per channel or group-wise, symmetric or not,
// optionally with an MSE clip search per group): the baseline every other quantizer is measured by.
#pragma once
#include <cstdint>
#include <string>

#include "compress/quantizer.hpp"

namespace llmc::compress {

// Quantizes W [rows = out, cols = in] (row-major f32) group by group on the grid of quantizer.hpp.
// Throws Error naming `name` on a bad config or non-finite weights.
QuantizedWeight quantize_rtn(const float* W, int64_t rows, int64_t cols, const QuantConfig& cfg,
                             const std::string& name);

}  // namespace llmc::compress
