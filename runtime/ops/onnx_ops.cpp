// The ONNX default-domain kernel table of the CPU backend, gathered from the op family files.
#include "runtime/ops/onnx_ops.hpp"

namespace llmc::runtime {

void register_onnx_ops(KernelTable& t) {
  onnx::register_elementwise(t);
  onnx::register_unary(t);
  onnx::register_shape_ops(t);
  onnx::register_reduce_ops(t);
  onnx::register_nn_ops(t);
  onnx::register_quant_ops(t);
  onnx::register_index_ops(t);
}

}  // namespace llmc::runtime
