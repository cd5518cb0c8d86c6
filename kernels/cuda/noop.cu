// An empty kernel: bench_kernels times it the way it times every kernel, to show the per-launch
// overhead (graph node to graph node) that each measured call includes.
#include "kernels/cuda/noop.hpp"

namespace llmc::kernels::cuda {

namespace {
__global__ void noop_kernel() {}
}  // namespace

void launch_noop(cudaStream_t stream) {
  noop_kernel<<<1, 32, 0, stream>>>();
  LLMC_CUDA_CHECK_LAUNCH("noop");
}

}  // namespace llmc::kernels::cuda
