// launch_noop: one empty kernel launch, for measuring per-launch overhead in benchmarks.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/cuda/cuda_check.hpp"

namespace llmc::kernels::cuda {
void launch_noop(cudaStream_t stream);
}  // namespace llmc::kernels::cuda
