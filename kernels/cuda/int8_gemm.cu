// W8A8 (int8_gemm.hpp): weight upload, the fused smoothing + activation quantizer, the cuBLASLt
// IMMA path with its dequantizing epilogue, and the dispatch to the CUTLASS sm_90 kernel.
#include "kernels/cuda/int8_gemm.hpp"

#include <cublasLt.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cuda/int8_gemm_sm90.hpp"

namespace llmc::kernels::cuda {

namespace {

constexpr size_t kLtWorkspaceBytes = 32u << 20;
constexpr int kQuantThreads = 256;

int64_t round_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

__device__ __forceinline__ float block_max(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kQuantThreads / 32 ? red[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (lane == 0) red[0] = v;
  }
  __syncthreads();
  return red[0];
}

// Element j of row x after the smoothing division (IEEE round-to-nearest division, as the CPU's).
__device__ __forceinline__ float smoothed(const __half* x, const float* smooth, int64_t j) {
  const float v = __half2float(x[j]);
  return smooth ? __fdiv_rn(v, smooth[j]) : v;
}

// clamp(rint(v / s)) without an IEEE division per element (~20 instructions, which bound the
// kernel): t = v·(1/s) is within 2⁻²³ relative of v / s, i.e. within 2⁻¹⁶ for |t| < 128, and rint
// only changes at half-integers, so t rounds like v / s unless it lies within 2⁻¹⁴ of one; there
// the exact quotient decides. Bit-identical to the CPU's nearbyint(v / s).
__device__ __forceinline__ int8_t quant(float v, float s, float r) {
  float t = __fmul_rn(v, r);
  const float a = fabsf(t);
  if (a < 128.0f && fabsf(a - floorf(a) - 0.5f) < 0x1p-14f) t = __fdiv_rn(v, s);
  return static_cast<int8_t>(fminf(fmaxf(rintf(t), -127.0f), 127.0f));
}

// One block per token. Pass 1 finds max |x/smooth| (skipped for a static scale), pass 2 re-reads
// the row (from L1/L2: a row is at most a few tens of KB) and writes 8 codes per 8-byte store.
// vec: k % 8 == 0, ldx % 8 == 0 and x 16-byte aligned, so 8 halves load as one 16-byte word.
template <bool kVec>
__global__ void __launch_bounds__(kQuantThreads) quantize_act_kernel(const __half* __restrict__ x, int64_t ldx,
                                                                     const float* __restrict__ smooth,
                                                                     int8_t* __restrict__ q, float* __restrict__ s,
                                                                     int64_t k, int64_t k_pad, float static_scale) {
  __shared__ float red[kQuantThreads / 32];
  const int64_t t = blockIdx.x;
  const __half* xr = x + t * ldx;
  int8_t* qr = q + t * k_pad;
  float scale = static_scale;
  if (static_scale == 0.0f) {
    float amax = 0.0f;
    if (kVec) {
      for (int64_t c = threadIdx.x * 8; c < k; c += kQuantThreads * 8) {
        const uint4 raw = *reinterpret_cast<const uint4*>(xr + c);
        const __half* h = reinterpret_cast<const __half*>(&raw);
        for (int i = 0; i < 8; ++i) {
          const float v = __half2float(h[i]);
          amax = fmaxf(amax, fabsf(smooth ? __fdiv_rn(v, smooth[c + i]) : v));
        }
      }
    } else {
      for (int64_t j = threadIdx.x; j < k; j += kQuantThreads) amax = fmaxf(amax, fabsf(smoothed(xr, smooth, j)));
    }
    amax = block_max(amax, red);
    scale = amax > 0.0f ? __fdiv_rn(amax, 127.0f) : 1.0f;
  }
  if (threadIdx.x == 0) s[t] = scale;
  const float rcp = __frcp_rn(scale);
  // 8 codes per thread and step over [0, k_pad); k_pad % 16 == 0 keeps each store 8-byte aligned.
  for (int64_t c = threadIdx.x * 8; c < k_pad; c += kQuantThreads * 8) {
    alignas(8) int8_t out[8];
    if (kVec && c < k) {
      const uint4 raw = *reinterpret_cast<const uint4*>(xr + c);
      const __half* h = reinterpret_cast<const __half*>(&raw);
      for (int i = 0; i < 8; ++i) {
        const float v = __half2float(h[i]);
        out[i] = quant(smooth ? __fdiv_rn(v, smooth[c + i]) : v, scale, rcp);
      }
    } else {
      for (int i = 0; i < 8; ++i) out[i] = c + i < k ? quant(smoothed(xr, smooth, c + i), scale, rcp) : int8_t{0};
    }
    *reinterpret_cast<uint2*>(qr + c) = *reinterpret_cast<const uint2*>(out);
  }
}

// y[t, j] = f16((s[t]·s_w[j])·acc[t, j] + bias[j]), the order and rounding of the CPU twin
// (explicit _rn intrinsics keep nvcc from contracting into an FMA).
__global__ void dequant_epilogue_kernel(const int32_t* __restrict__ acc, int64_t ldc, const float* __restrict__ s,
                                        const float* __restrict__ sw, const __half* __restrict__ bias,
                                        __half* __restrict__ y, int64_t ldy, int64_t m, int64_t n) {
  const int64_t total = m * n;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t t = i / n, j = i - t * n;
    float v = __fmul_rn(__fmul_rn(s[t], sw[j]), static_cast<float>(acc[t * ldc + j]));
    if (bias) v = __fadd_rn(v, __half2float(bias[j]));
    y[t * ldy + j] = __float2half_rn(v);
  }
}

void lt_check(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("W8A8 cuBLASLt: ") + what + " failed: " + cublasGetStatusString(st), ErrorKind::Runtime);
}

}  // namespace

// ---- weight --------------------------------------------------------------------------------

Int8Weight Int8Weight::upload(const QuantizedWeight& w, const std::string& name) {
  w.validate(name);
  check(w.bits == 8 && w.symmetric && w.n_groups() == 1 && w.g_idx.empty(),
        name + ": W8A8 needs an INT8 symmetric per-channel weight (got bits=" + std::to_string(w.bits) +
            (w.symmetric ? " symmetric" : " asymmetric") + " group_size=" + std::to_string(w.group_size) +
            (w.g_idx.empty() ? "" : " with g_idx") + ")");
  Int8Weight d;
  d.rows_ = w.rows;
  d.cols_ = w.cols;
  d.k_pad_ = round_up(w.cols, 16);
  std::vector<int8_t> q(static_cast<size_t>(w.rows * d.k_pad_), 0);
  for (int64_t r = 0; r < w.rows; ++r)
    std::copy_n(reinterpret_cast<const int8_t*>(w.packed.data()) + r * w.cols, w.cols, q.begin() + r * d.k_pad_);
  std::vector<float> sc(static_cast<size_t>(w.rows));
  for (int64_t r = 0; r < w.rows; ++r) sc[r] = w.scale(r, 0);
  d.q_ = DeviceBuffer<int8_t>(q);
  d.scales_ = DeviceBuffer<float>(sc);
  return d;
}

Int8Weight Int8Weight::clone() const {
  Int8Weight d;
  d.rows_ = rows_;
  d.cols_ = cols_;
  d.k_pad_ = k_pad_;
  d.q_ = q_.clone();
  d.scales_ = scales_.clone();
  return d;
}

// ---- context -------------------------------------------------------------------------------

struct W8A8Context::Impl {
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  cublasLtHandle_t lt = nullptr;
  DeviceBuffer<uint8_t> workspace{kLtWorkspaceBytes};
  std::map<std::tuple<int64_t, int64_t, int64_t>, Plan> plans;  // (m, n, k_pad) → descriptors + algorithm

  Impl() { lt_check(cublasLtCreate(&lt), "cublasLtCreate"); }
  ~Impl() {
    for (auto& [key, p] : plans) {
      cublasLtMatrixLayoutDestroy(p.a);
      cublasLtMatrixLayoutDestroy(p.b);
      cublasLtMatrixLayoutDestroy(p.c);
      cublasLtMatmulDescDestroy(p.desc);
    }
    if (lt) cublasLtDestroy(lt);
  }

  // Column-major view (cuBLAS's): C[n, m] (int32, ld ldc) = (q_w as k_pad×n)ᵀ · (q as k_pad×m),
  // the "TN" form IMMA kernels take without reordered layouts.
  Plan& plan(int64_t m, int64_t n, int64_t k, int64_t ldc) {
    const auto key = std::make_tuple(m, n, k);
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
    Plan p;
    lt_check(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32I, CUDA_R_32I), "cublasLtMatmulDescCreate");
    const cublasOperation_t opt = CUBLAS_OP_T;
    lt_check(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opt, sizeof(opt)), "set TRANSA");
    lt_check(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_8I, k, n, k), "layout A");
    lt_check(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_8I, k, m, k), "layout B");
    lt_check(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32I, n, m, ldc), "layout C");
    cublasLtMatmulPreference_t pref;
    lt_check(cublasLtMatmulPreferenceCreate(&pref), "preference");
    const size_t ws = workspace.bytes();
    lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)),
             "preference workspace");
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, p.desc, p.a, p.b, p.c, p.c, pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
      cublasLtMatrixLayoutDestroy(p.a);
      cublasLtMatrixLayoutDestroy(p.b);
      cublasLtMatrixLayoutDestroy(p.c);
      cublasLtMatmulDescDestroy(p.desc);
      throw Error("W8A8 cuBLASLt: no int8 IMMA algorithm for m=" + std::to_string(m) + " n=" + std::to_string(n) +
                      " k=" + std::to_string(k) + " (" + cublasGetStatusString(st) + ")",
                  ErrorKind::Runtime);
    }
    p.algo = res.algo;
    return plans.emplace(key, p).first->second;
  }
};

W8A8Context::W8A8Context(int64_t max_m, int64_t max_n, int64_t max_k)
    : max_m_(max_m),
      max_n_(max_n),
      max_k_(round_up(max_k, 16)),
      qx_(static_cast<size_t>(max_m * round_up(max_k, 16))),
      sx_(static_cast<size_t>(max_m)),
      impl_(std::make_unique<Impl>()) {
  check(max_m > 0 && max_n > 0 && max_k > 0, "W8A8Context: sizes must be positive, got m=" + std::to_string(max_m) +
                                                 " n=" + std::to_string(max_n) + " k=" + std::to_string(max_k));
}

W8A8Context::~W8A8Context() = default;

int32_t* W8A8Context::acc() {
  if (acc_.size() == 0) acc_ = DeviceBuffer<int32_t>(static_cast<size_t>(max_m_ * round_up(max_n_, 4)));
  return acc_.data();
}

bool int8_cutlass_available() {
  if (!detail::w8a8_sm90_compiled()) return false;
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess)
    return false;
  return major == 9 && minor == 0;  // sm_90a code runs on sm_90 only
}

// ---- calls ---------------------------------------------------------------------------------

void quantize_act_s8(const uint16_t* x, const float* smooth, int8_t* q, float* s, int64_t m, int64_t k, int64_t k_pad,
                     float act_scale, cudaStream_t stream, int64_t ldx) {
  if (ldx == 0) ldx = k;
  check(m > 0 && k > 0 && k_pad >= k && k_pad % 16 == 0 && ldx >= k && m < (int64_t{1} << 31),
        "quantize_act_s8: bad shape m=" + std::to_string(m) + " k=" + std::to_string(k) +
            " k_pad=" + std::to_string(k_pad) + " ldx=" + std::to_string(ldx));
  check(act_scale == 0.0f || (std::isfinite(act_scale) && act_scale > 0),
        "quantize_act_s8: static activation scale must be finite and positive, got " + std::to_string(act_scale));
  const bool vec = k % 8 == 0 && ldx % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  const auto* xh = reinterpret_cast<const __half*>(x);
  if (vec)
    quantize_act_kernel<true><<<static_cast<unsigned>(m), kQuantThreads, 0, stream>>>(xh, ldx, smooth, q, s, k, k_pad,
                                                                                     act_scale);
  else
    quantize_act_kernel<false><<<static_cast<unsigned>(m), kQuantThreads, 0, stream>>>(xh, ldx, smooth, q, s, k, k_pad,
                                                                                      act_scale);
  LLMC_CUDA_CHECK_LAUNCH("quantize_act_kernel");
}

void gemm_w8a8(W8A8Context& ctx, const int8_t* q, const float* s, const Int8Weight& w, const uint16_t* bias,
               uint16_t* y, int64_t m, cudaStream_t stream, int64_t ldy, Int8Backend backend) {
  const int64_t n = w.rows(), k = w.k_pad();
  if (ldy == 0) ldy = n;
  check(m > 0 && m <= ctx.max_m() && n <= ctx.max_n() && k <= ctx.max_k() && ldy >= n,
        "gemm_w8a8: m=" + std::to_string(m) + " n=" + std::to_string(n) + " k_pad=" + std::to_string(k) +
            " ldy=" + std::to_string(ldy) + " exceed the context (max m=" + std::to_string(ctx.max_m()) +
            " n=" + std::to_string(ctx.max_n()) + " k=" + std::to_string(ctx.max_k()) + ")");
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const bool cutlass_ok = int8_cutlass_available() && n % 8 == 0 && ldy % 8 == 0 && aligned(y) && aligned(q) &&
                          aligned(w.q()) && (bias == nullptr || aligned(bias));
  if (backend == Int8Backend::kCutlass)
    check(cutlass_ok, "gemm_w8a8: the CUTLASS path needs CUTLASS at build time, an sm_90 device, n % 8 == 0 "
                      "(n=" + std::to_string(n) + "), ldy % 8 == 0 and 16-byte aligned pointers");
  // cuBLASLt is kept for what CUTLASS cannot take and where it measured faster (docs/perf/cuda.md).
  const bool use_cutlass = backend == Int8Backend::kCutlass || (backend == Int8Backend::kAuto && cutlass_ok);
  W8A8Context::Impl& im = ctx.impl();
  if (use_cutlass) {
    detail::w8a8_sm90(q, s, w.q(), w.scales(), bias, y, m, n, k, ldy, im.workspace.data(), im.workspace.bytes(),
                      stream);
    LLMC_CUDA_CHECK_LAUNCH("w8a8_sm90 (CUTLASS)");
    return;
  }
  const int64_t ldc = round_up(n, 4);
  W8A8Context::Impl::Plan& p = im.plan(m, n, k, ldc);
  const int32_t alpha = 1, beta = 0;
  int32_t* acc = ctx.acc();
  lt_check(cublasLtMatmul(im.lt, p.desc, &alpha, w.q(), p.a, q, p.b, &beta, acc, p.c, acc, p.c, &p.algo,
                          im.workspace.data(), im.workspace.bytes(), stream),
           "cublasLtMatmul (int8 IMMA)");
  const int64_t total = m * n;
  const int threads = 256;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((total + threads - 1) / threads, 132 * 16));
  dequant_epilogue_kernel<<<blocks, threads, 0, stream>>>(acc, ldc, s, w.scales(),
                                                          reinterpret_cast<const __half*>(bias),
                                                          reinterpret_cast<__half*>(y), ldy, m, n);
  LLMC_CUDA_CHECK_LAUNCH("dequant_epilogue_kernel");
}

void linear_w8a8(W8A8Context& ctx, const uint16_t* x, const Int8Weight& w, const float* smooth, float act_scale,
                 const uint16_t* bias, uint16_t* y, int64_t m, cudaStream_t stream, int64_t ldy, Int8Backend backend) {
  check(m <= ctx.max_m() && w.k_pad() <= ctx.max_k(),
        "linear_w8a8: m=" + std::to_string(m) + " k=" + std::to_string(w.cols()) + " exceed the context (max m=" +
            std::to_string(ctx.max_m()) + " k=" + std::to_string(ctx.max_k()) + ")");
  quantize_act_s8(x, smooth, ctx.qx(), ctx.sx(), m, w.cols(), w.k_pad(), act_scale, stream);
  gemm_w8a8(ctx, ctx.qx(), ctx.sx(), w, bias, y, m, stream, ldy, backend);
}

}  // namespace llmc::kernels::cuda
