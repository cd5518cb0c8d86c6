// W8A8 on INT8 tensor cores: f16 activations quantized per token (or with a static per-tensor
// scale, optionally divided by SmoothQuant's per-channel factors on the way) times an INT8
// per-channel weight, dequantized into f16 — the CUDA twin of kernels::cpu::linear_w8a8.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>

#include "kernels/cuda/device_buffer.hpp"
#include "runtime/ir/quantized.hpp"

namespace llmc::kernels::cuda {

// An INT8 symmetric per-output-channel weight on the device: q [rows, k_pad] int8 row-major with
// k_pad = cols rounded up to 16 (zero columns, so that every row is 16-byte aligned for the
// tensor-core loads) and f32 scales [rows].
class Int8Weight {
 public:
  // w: bits 8, symmetric, per channel (group_size 0 or cols), no g_idx; errors name `name`.
  static Int8Weight upload(const QuantizedWeight& w, const std::string& name);
  Int8Weight clone() const;

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t k_pad() const { return k_pad_; }
  const int8_t* q() const { return q_.data(); }
  const float* scales() const { return scales_.data(); }
  size_t weight_bytes() const { return q_.bytes() + scales_.bytes(); }

 private:
  int64_t rows_ = 0, cols_ = 0, k_pad_ = 0;
  DeviceBuffer<int8_t> q_;
  DeviceBuffer<float> scales_;
};

// Which GEMM runs: kAuto picks by shape (see int8_gemm.cu); kCublasLt is cuBLASLt IMMA
// (int32 out) plus a dequantizing epilogue kernel; kCutlass is a CUTLASS sm_90 warp-specialized
// TMA/WGMMA kernel with the dequantization fused into its epilogue (needs LLMC_HAVE_CUTLASS,
// an sm_90 device and n % 8 == 0, else it throws).
enum class Int8Backend { kAuto, kCublasLt, kCutlass };

// Whether the CUTLASS path was compiled in and the current device can run it.
bool int8_cutlass_available();

// Owns what a W8A8 call needs besides the weight: a cuBLASLt handle, its workspace (32 MiB), the
// quantized activations and their scales, sized for up to max_m tokens × max_k inputs × max_n
// outputs, and — allocated on the cuBLASLt path's first use only — its int32 accumulator
// (4·max_m·max_n bytes). Calls allocate nothing after that, so they can be captured in a CUDA
// graph once each m has been seen (cuBLASLt's heuristic is cached per m).
class W8A8Context {
 public:
  W8A8Context(int64_t max_m, int64_t max_n, int64_t max_k);
  ~W8A8Context();
  W8A8Context(const W8A8Context&) = delete;
  W8A8Context& operator=(const W8A8Context&) = delete;

  int8_t* qx() { return qx_.data(); }
  float* sx() { return sx_.data(); }
  int32_t* acc();  // [max_m, max_n rounded up to 4], allocated on first use
  int64_t max_m() const { return max_m_; }
  int64_t max_n() const { return max_n_; }
  int64_t max_k() const { return max_k_; }

  struct Impl;  // cuBLASLt state (int8_gemm.cu)
  Impl& impl() { return *impl_; }

 private:
  int64_t max_m_, max_n_, max_k_;
  DeviceBuffer<int8_t> qx_;
  DeviceBuffer<float> sx_;
  DeviceBuffer<int32_t> acc_;
  std::unique_ptr<Impl> impl_;
};

// Activation quantization, one block per token (x f16 [m, k] with row stride ldx ≥ k, 0 for k):
//   v = x[t, j] / smooth[j] (f32, IEEE division; smooth may be null = 1),
//   act_scale == 0: per token, s[t] = max_j |v| / 127 (1 for an all-zero row);
//   act_scale > 0: static per tensor, s[t] = act_scale;
//   q[t, j] = clamp(round_half_even(v / s[t]), −127, 127), q[t, j ≥ k] = 0 up to k_pad.
// Bit-identical to kernels::cpu::quantize_per_token_s8 / quantize_static_s8 applied to x/smooth.
// Moves m·(2k + k_pad + 4) bytes from DRAM (the dynamic path reads each row twice, the second time
// from L1/L2): ~25 MB, ~9 µs at 2048×4096.
void quantize_act_s8(const uint16_t* x, const float* smooth, int8_t* q, float* s, int64_t m, int64_t k,
                     int64_t k_pad, float act_scale, cudaStream_t stream, int64_t ldx = 0);

// y[t, j] = f16(s[t]·s_w[j]·Σ_c q[t, c]·q_w[j, c] + bias[j]) for t < m, j < w.rows(); q [m, k_pad]
// int8 (e.g. ctx.qx() after quantize_act_s8), s [m] f32, bias f16 [n] or null, y row stride
// ldy (0 for n). Exact int32 accumulation. Moves m·k + n·k + 2·m·n bytes (+8·m·n through the
// int32 accumulator on the cuBLASLt path); does 2·m·n·k integer ops (990 dense INT8 TOPS on H100
// SXM at the spec sheet's clocks: ~0.19 ms for 2048×11008×4096).
void gemm_w8a8(W8A8Context& ctx, const int8_t* q, const float* s, const Int8Weight& w, const uint16_t* bias,
               uint16_t* y, int64_t m, cudaStream_t stream, int64_t ldy = 0, Int8Backend backend = Int8Backend::kAuto);

// The whole W8A8 linear: quantize_act_s8 into ctx, then gemm_w8a8. act_scale 0: dynamic per
// token (LinearQ act=dynamic); > 0: that static per-tensor scale (act=static). smooth: device f32
// [k] divisors or null (when SmoothQuant's factors are folded into the previous op already).
void linear_w8a8(W8A8Context& ctx, const uint16_t* x, const Int8Weight& w, const float* smooth, float act_scale,
                 const uint16_t* bias, uint16_t* y, int64_t m, cudaStream_t stream,
                 int64_t ldy = 0, Int8Backend backend = Int8Backend::kAuto);

}  // namespace llmc::kernels::cuda
