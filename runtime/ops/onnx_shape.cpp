#include "runtime/ops/onnx_ops.hpp"

namespace llmc::runtime::onnx {

void register_shape_ops(KernelTable&) {}

}  // namespace llmc::runtime::onnx
