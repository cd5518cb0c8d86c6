#include "runtime/kernel_registry.hpp"

namespace llmc::runtime {

void register_onnx_ops(KernelTable&) {}

}  // namespace llmc::runtime
