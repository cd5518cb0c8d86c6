// Internal to int8_gemm.cu: the CUTLASS sm_90 W8A8 GEMM (int8_gemm_sm90.cu, compiled only with
// LLMC_HAVE_CUTLASS for sm_90a) behind Int8Backend::kCutlass.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace llmc::kernels::cuda::detail {

// Whether int8_gemm_sm90.cu was built with CUTLASS and for sm_90a.
bool w8a8_sm90_compiled();

// y[t, j] = f16(s[t]·(s_w[j]·acc[t, j]) + bias[j]) with acc = q[t, :]·q_w[j, :] over k_pad (int32),
// by a TMA + WGMMA warp-specialized kernel whose epilogue applies the scales and the bias.
// Needs n % 8 == 0, ldy % 8 == 0, k_pad % 16 == 0 and 16-byte aligned pointers (the caller checks).
// workspace: scratch of ws_bytes (CUTLASS's tile scheduler needs a few bytes; 0 is fine).
void w8a8_sm90(const int8_t* q, const float* s, const int8_t* qw, const float* sw, const uint16_t* bias, uint16_t* y,
               int64_t m, int64_t n, int64_t k_pad, int64_t ldy, void* workspace, size_t ws_bytes,
               cudaStream_t stream);

}  // namespace llmc::kernels::cuda::detail
