// Kernel launches with programmatic stream serialization (programmatic dependent launch, PDL,
// sm_90+): the launch and ramp-up of a kernel overlap the tail of the one before it in the
// stream. A kernel launched this way must call grid_dependency_wait() (mma_util.cuh) before it
// touches anything the previous kernel writes or reads, so stream order still holds.
#pragma once
#include <cuda_runtime_api.h>

#include <utility>

#include "kernels/cuda/cuda_check.hpp"

namespace llmc::kernels::cuda::detail {

// kernel<<<grid, block, smem, stream>>>(args...), overlapped with the previous kernel when
// `overlap` (callers pass false before sm_90, where the attribute does not exist); dynamic
// shared memory above the default 48 KiB is opted into first.
template <class... KArgs, class... Args>
void launch_kernel(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, bool overlap, cudaStream_t stream,
                   Args&&... args) {
  if (smem > 48 * 1024)
    LLMC_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = overlap ? 1 : 0;
  LLMC_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

}  // namespace llmc::kernels::cuda::detail
