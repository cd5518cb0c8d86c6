#include "runtime/kernel_registry.hpp"

namespace llmc::runtime {

void register_fused_ops(KernelTable&) {}

}  // namespace llmc::runtime
