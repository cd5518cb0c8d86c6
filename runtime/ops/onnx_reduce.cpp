#include "runtime/ops/onnx_ops.hpp"

namespace llmc::runtime::onnx {

void register_reduce_ops(KernelTable&) {}

}  // namespace llmc::runtime::onnx
