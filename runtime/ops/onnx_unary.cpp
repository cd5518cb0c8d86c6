#include "runtime/ops/onnx_ops.hpp"

namespace llmc::runtime::onnx {

void register_unary(KernelTable&) {}

}  // namespace llmc::runtime::onnx
