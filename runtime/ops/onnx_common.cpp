// Helpers shared by the ONNX op files: broadcasting, axes and dtype errors.
#include <algorithm>

#include "runtime/ops/onnx_ops.hpp"

namespace llmc::runtime::onnx {

void unsupported_dtype(const Node& n, DType t, const std::string& what) {
  throw Error(n.label() + ": " + what + " dtype " + dtype_name(t) + " is not supported");
}

size_t elem_size(const Tensor& t, const Node& n) {
  if (t.dtype() == DType::I4 || t.dtype() == DType::U4) unsupported_dtype(n, t.dtype(), "packed 4-bit");
  return dtype_size(t.dtype());
}

Shape broadcast_shapes(const std::vector<const Shape*>& shapes, const Node& n) {
  size_t r = 0;
  for (auto* s : shapes) r = std::max(r, s->size());
  Shape out(r, 1);
  for (auto* s : shapes) {
    const size_t pad = r - s->size();
    for (size_t i = 0; i < s->size(); ++i) {
      int64_t d = (*s)[i], &o = out[pad + i];
      if (d == o || d == 1) continue;
      if (o == 1) {
        o = d;
        continue;
      }
      std::string all;
      for (auto* x : shapes) all += (all.empty() ? "" : " and ") + shape_str(*x);
      throw Error(n.label() + ": shapes " + all + " cannot be broadcast together");
    }
  }
  return out;
}

std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  const size_t r = out.size(), pad = r - in.size();
  std::vector<int64_t> st(r, 0);
  int64_t s = 1;
  for (size_t i = in.size(); i-- > 0;) {
    st[pad + i] = in[i] == 1 ? 0 : s;
    s *= in[i];
  }
  return st;
}

namespace {
template <class T>
void broadcast_copy(const Tensor& t, Tensor& out) {
  const T* src = t.data<T>();
  T* dst = out.mutable_data<T>();
  broadcast_loop<1>(out.shape(), {broadcast_strides(t.shape(), out.shape())},
                    [&](int64_t o, const auto& off, const auto& st, int64_t len) {
                      for (int64_t i = 0; i < len; ++i) dst[o + i] = src[off[0] + i * st[0]];
                    });
}
}  // namespace

Tensor broadcast_to(const Tensor& t, const Shape& shape, const Node& n) {
  if (t.shape() == shape) return t;
  Shape os = broadcast_shapes({&t.shape(), &shape}, n);
  Tensor out(t.dtype(), os);
  switch (elem_size(t, n)) {
    case 1: broadcast_copy<uint8_t>(t, out); break;
    case 2: broadcast_copy<uint16_t>(t, out); break;
    case 4: broadcast_copy<uint32_t>(t, out); break;
    default: broadcast_copy<uint64_t>(t, out); break;
  }
  return out;
}

int64_t norm_axis(int64_t axis, int64_t rank, const Node& n) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1))
    throw Error(n.label() + ": axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

std::vector<int64_t> int_values(const Tensor& t, const Node& n, const std::string& what) {
  if (t.dtype() != DType::I64 && t.dtype() != DType::I32)
    throw Error(n.label() + ": " + what + " must be int64 or int32, got " + dtype_name(t.dtype()));
  return t.i64_values();
}

std::vector<int64_t> axes_from(const OpContext& c, size_t idx, const std::string& attr, bool* present) {
  if (c.has(idx)) {
    if (present) *present = true;
    return int_values(c.in(idx), c.node, "axes");
  }
  if (present) *present = c.node.has(attr);
  return c.node.ints(attr);
}

// TensorProto.DataType codes used by Cast's `to` attribute.
DType dtype_from_onnx_code(int64_t code, const Node& n) {
  switch (code) {
    case 1: return DType::F32;
    case 2: return DType::U8;
    case 3: return DType::I8;
    case 4: return DType::U16;
    case 5: return DType::I16;
    case 6: return DType::I32;
    case 7: return DType::I64;
    case 9: return DType::Bool;
    case 10: return DType::F16;
    case 11: return DType::F64;
    case 12: return DType::U32;
    case 13: return DType::U64;
    case 16: return DType::BF16;
    default: throw Error(n.label() + ": Cast to ONNX data type " + std::to_string(code) + " is not supported");
  }
}

bool is_half(DType t) { return t == DType::F16 || t == DType::BF16; }

}  // namespace llmc::runtime::onnx
