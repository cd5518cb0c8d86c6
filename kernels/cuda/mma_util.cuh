// Device helpers shared by the quantized kernels: the f16 tensor-core MMA, streaming loads, and
// INT4/INT8 → f16 conversion by exponent-bit tricks (exact for the small integers involved).
#pragma once
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

namespace llmc::kernels::cuda::detail {

__device__ __forceinline__ __half2 as_h2(uint32_t u) {
  __half2 h;
  memcpy(&h, &u, 4);
  return h;
}
__device__ __forceinline__ uint32_t as_u32(__half2 h) {
  uint32_t u;
  memcpy(&u, &h, 4);
  return u;
}

// Weights are read exactly once per call: bypass L1 and keep them from displacing the
// activations there.
__device__ __forceinline__ uint4 load_stream(const uint4* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

// 16 bytes global → shared memory without passing through registers (sm_80+), in flight until
// cp_async_wait_all(): a loop of these issues every copy before any lands, so staging costs one
// L2 round trip, not one per iteration. The first src_bytes (0..16) are read, the rest of the
// 16 filled with zeros (src is not read at 0 but must still be a valid global address).
__device__ __forceinline__ void cp_async16(void* smem_dst, const void* src, int src_bytes) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }

// (a & b) | c in one instruction.
__device__ __forceinline__ uint32_t and_or(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
}

// d += A·B for one m16n8k16 tile, f16 operands, f32 accumulators (PTX ISA 9.7.14, sm_80+).
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The f16 with bits 0x6400 | v is 1024 + v for v < 1024, so OR-ing a code into the mantissa and
// subtracting (1024 + zero point) yields q − z exactly (the conversion of FasterTransformer's
// interleaved_numeric_conversion.h and of Marlin, Frantar et al. 2024).
// INT4: one 32-bit word (nibbles a0 a2 a4 a6 a1 a3 a5 a7, see quant_gemv.hpp) → the four A
// registers of one mma step. sub_lo = 1024 + z of row g; add_hi = −(64 + z) of row g + 8 (the
// high nibble lands as 1024 + 16·v, scaled by 1/16 first).
__device__ __forceinline__ void dequant_w4(uint32_t w, __half2 sub_lo, __half2 add_hi, uint32_t (&a)[4]) {
  constexpr uint32_t kLo = 0x000f000fu, kHi = 0x00f000f0u, kExp = 0x64006400u;
  const __half2 sixteenth = as_h2(0x2C002C00u);  // 1/16
  const uint32_t w8 = w >> 8;
  a[0] = as_u32(__hsub2(as_h2(and_or(w, kLo, kExp)), sub_lo));
  a[1] = as_u32(__hfma2(as_h2(and_or(w, kHi, kExp)), sixteenth, add_hi));
  a[2] = as_u32(__hsub2(as_h2(and_or(w8, kLo, kExp)), sub_lo));
  a[3] = as_u32(__hfma2(as_h2(and_or(w8, kHi, kExp)), sixteenth, add_hi));
}

// INT8: words (a0 a1 a2 a3), (a4 a5 a6 a7) as bytes → A registers; sub_g / sub_g8 = 1024 + z.
__device__ __forceinline__ void dequant_w8(uint32_t w0, uint32_t w1, __half2 sub_g, __half2 sub_g8,
                                           uint32_t (&a)[4]) {
  constexpr uint32_t kExp = 0x64646464u;
  a[0] = as_u32(__hsub2(as_h2(__byte_perm(w0, kExp, 0x4140)), sub_g));
  a[1] = as_u32(__hsub2(as_h2(__byte_perm(w0, kExp, 0x4342)), sub_g8));
  a[2] = as_u32(__hsub2(as_h2(__byte_perm(w1, kExp, 0x4140)), sub_g));
  a[3] = as_u32(__hsub2(as_h2(__byte_perm(w1, kExp, 0x4342)), sub_g8));
}

// Programmatic dependent launch (PTX griddepcontrol, sm_90): wait for the previous kernel in the
// stream to complete and flush its writes; let the next kernel start launching. No-ops elsewhere,
// and when the launch did not ask for programmatic serialization.
__device__ __forceinline__ void grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

}  // namespace llmc::kernels::cuda::detail
