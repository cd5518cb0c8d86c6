// CPU kernels for ONNX default-domain ops: one registration function per op family, and the
// helpers they share (dtype dispatch, numpy broadcasting, axis and int-list handling).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "runtime/kernel_registry.hpp"

namespace llmc::runtime::onnx {

void register_elementwise(KernelTable& t);  // onnx_elementwise.cpp: binary ops, Where, Cast
void register_unary(KernelTable& t);        // onnx_unary.cpp: Exp, Relu, Clip, Not, ...
void register_shape_ops(KernelTable& t);    // onnx_shape.cpp: Reshape, Transpose, Gather, Concat, ...
void register_reduce_ops(KernelTable& t);   // onnx_reduce.cpp: ReduceMean/Sum/Max/..., CumSum, ArgMax
void register_nn_ops(KernelTable& t);       // onnx_nn.cpp: MatMul, Gemm, Softmax, LayerNormalization
void register_quant_ops(KernelTable& t);    // onnx_quant.cpp: (De)QuantizeLinear, MatMulInteger, ...
void register_index_ops(KernelTable& t);    // onnx_index.cpp: GatherND, ScatterND/Elements, NonZero, Pad, ...

template <class T>
struct Tag {
  using type = T;
};

// Calls f(Tag<T>{}) with the C++ type of dtype `t`; throws naming the node when the dtype is not
// one of the kinds allowed (floats: f32/f64; ints: all integer types; bools: Bool).
enum DKind : unsigned { kFloats = 1, kInts = 2, kBools = 4, kAll = 7 };
[[noreturn]] void unsupported_dtype(const Node& n, DType t, const std::string& what);

template <unsigned Kinds, class F>
decltype(auto) dispatch(DType t, const Node& n, F&& f) {
  if constexpr ((Kinds & kFloats) != 0) {
    if (t == DType::F32) return f(Tag<float>{});
    if (t == DType::F64) return f(Tag<double>{});
  }
  if constexpr ((Kinds & kInts) != 0) {
    switch (t) {
      case DType::I8: return f(Tag<int8_t>{});
      case DType::U8: return f(Tag<uint8_t>{});
      case DType::I16: return f(Tag<int16_t>{});
      case DType::U16: return f(Tag<uint16_t>{});
      case DType::I32: return f(Tag<int32_t>{});
      case DType::U32: return f(Tag<uint32_t>{});
      case DType::I64: return f(Tag<int64_t>{});
      case DType::U64: return f(Tag<uint64_t>{});
      default: break;
    }
  }
  if constexpr ((Kinds & kBools) != 0)
    if (t == DType::Bool) return f(Tag<bool>{});
  unsupported_dtype(n, t, "input");
}

// Integer arithmetic wraps modulo 2^bits as ONNX Runtime's does; going through uint64 keeps
// signed overflow (and int promotion of u16 products) out of undefined behaviour.
template <class T>
T wrap_add(T a, T b) {
  if constexpr (std::is_integral_v<T>) return static_cast<T>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
  else return a + b;
}
template <class T>
T wrap_sub(T a, T b) {
  if constexpr (std::is_integral_v<T>) return static_cast<T>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
  else return a - b;
}
template <class T>
T wrap_mul(T a, T b) {
  if constexpr (std::is_integral_v<T>) return static_cast<T>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
  else return a * b;
}

// Element types that every op can move around unchanged (for shape ops): dispatch by byte size.
size_t elem_size(const Tensor& t, const Node& n);

// numpy broadcasting (ONNX "multidirectional broadcasting", docs/Broadcasting.md).
Shape broadcast_shapes(const std::vector<const Shape*>& shapes, const Node& n);
// Strides of `in` viewed as `out` (rank aligned from the right; 0 along broadcast dimensions).
std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out);

// Walks `out` in row-major order, calling f(o, off, step, len) for each innermost run of `len`
// output elements starting at flat output index o, where input i starts at off[i] and advances by
// step[i] per element.
template <size_t N, class F>
void broadcast_loop(const Shape& out, const std::array<std::vector<int64_t>, N>& strides, F&& f) {
  const int r = static_cast<int>(out.size());
  std::array<int64_t, N> off{}, step{};
  if (shape_numel(out) == 0) return;
  if (r == 0) {
    f(int64_t{0}, off, step, int64_t{1});
    return;
  }
  const int64_t len = out[r - 1];
  for (size_t i = 0; i < N; ++i) step[i] = strides[i][r - 1];
  std::vector<int64_t> idx(r, 0);
  const int64_t outer = shape_numel(out) / len;
  for (int64_t o = 0; o < outer; ++o) {
    f(o * len, off, step, len);
    for (int d = r - 2; d >= 0; --d) {  // odometer over the outer dimensions
      for (size_t i = 0; i < N; ++i) off[i] += strides[i][d];
      if (++idx[d] < out[d]) break;
      for (size_t i = 0; i < N; ++i) off[i] -= strides[i][d] * out[d];
      idx[d] = 0;
    }
  }
}

// Materialises `t` broadcast to `shape` (any element type; `shape` must be a broadcast of t's).
Tensor broadcast_to(const Tensor& t, const Shape& shape, const Node& n);

// Axis in [-rank, rank) normalised to [0, rank); throws naming the node otherwise.
int64_t norm_axis(int64_t axis, int64_t rank, const Node& n);
// Integer values of an int32/int64 tensor (shapes, axes, indices).
std::vector<int64_t> int_values(const Tensor& t, const Node& n, const std::string& what);
// Axes from input `idx` (newer opsets) or attribute `attr` (older ones); `present` says whether
// either was given.
std::vector<int64_t> axes_from(const OpContext& c, size_t idx, const std::string& attr, bool* present = nullptr);

// f16/bf16: kernels compute these in f32 and round the result back once.
bool is_half(DType t);

// The DType of a TensorProto.DataType code (Cast's `to`, EyeLike's `dtype`).
DType dtype_from_onnx_code(int64_t code, const Node& n);

}  // namespace llmc::runtime::onnx
