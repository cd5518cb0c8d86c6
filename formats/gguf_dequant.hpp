// GGML tensor types (ids, block sizes, bytes per block) and dequantization of the ones we read
// (F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K) to f32: plain functions over buffers.
#pragma once
#include <cstdint>
#include <string>

namespace llmc::formats {

// ggml's type ids as stored in a GGUF tensor info (ggml.h enum ggml_type).
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41,
};

struct GgmlTypeInfo {
  const char* name;     // ggml's spelling: "Q4_K", "BF16", ...
  int64_t block_size;   // elements per block (1 for plain types)
  int64_t type_size;    // bytes per block
  bool dequantizable;   // ggml_dequantize() handles it
};

// Layout of a type id, or nullptr when the id is not a ggml type this reader knows the layout of
// (then a tensor's byte size cannot even be computed).
const GgmlTypeInfo* ggml_type_info(uint32_t type);
// "Q4_K", or "type 99" for ids ggml_type_info does not know.
std::string ggml_type_name(uint32_t type);

// Dequantizes `n` elements (a whole number of blocks) from `src` to `dst`; OpenMP-parallel over
// blocks. Follows ggml-quants.c dequantize_row_* exactly: every product d*scale*q is exact in f32
// (f16 scale: 11 significant bits, sub-scales at most 8, quants at most 6), so the result matches
// ggml and gguf-py bit for bit whether or not the compiler fuses the final add into an FMA.
// Throws Error when the type is not dequantizable or n is not a multiple of the block size.
void ggml_dequantize(uint32_t type, const void* src, float* dst, int64_t n);

// Per-type row kernels (n a multiple of the block size), for callers that know the type.
void dequantize_f16(const uint8_t* src, float* dst, int64_t n);
void dequantize_bf16(const uint8_t* src, float* dst, int64_t n);
void dequantize_q4_0(const uint8_t* src, float* dst, int64_t n);
void dequantize_q4_1(const uint8_t* src, float* dst, int64_t n);
void dequantize_q8_0(const uint8_t* src, float* dst, int64_t n);
void dequantize_q4_k(const uint8_t* src, float* dst, int64_t n);
void dequantize_q5_k(const uint8_t* src, float* dst, int64_t n);
void dequantize_q6_k(const uint8_t* src, float* dst, int64_t n);

}  // namespace llmc::formats
