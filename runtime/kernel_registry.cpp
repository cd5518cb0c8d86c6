#include "runtime/kernel_registry.hpp"

namespace llmc::runtime {

const Tensor& OpContext::in(size_t i) const {
  if (!has(i)) throw Error(node.label() + ": required input " + std::to_string(i) + " is missing");
  return *inputs[i];
}

const KernelTable& cpu_kernels() {
  static const KernelTable table = [] {
    KernelTable t;
    register_fused_ops(t);
    register_onnx_ops(t);
    register_quant_ops(t);
    return t;
  }();
  return table;
}

}  // namespace llmc::runtime
