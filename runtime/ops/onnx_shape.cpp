// ONNX data-movement ops: Reshape, Flatten, Squeeze/Unsqueeze (axes as attribute before opset 13,
// as input after), Transpose, Slice, Gather, GatherElements, Concat, Split, Tile, Expand,
// Shape, Size, ConstantOfShape, Constant, Range, Trilu. They move elements without looking at
// them, so most work on any dtype by element size.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/ops/onnx_ops.hpp"

namespace llmc::runtime::onnx {

namespace {

template <class E>
void strided_copy_typed(const Tensor& src, Tensor& dst, const std::vector<int64_t>& st, int64_t base) {
  const E* s = static_cast<const E*>(src.raw()) + base;
  E* d = static_cast<E*>(dst.mutable_raw());
  broadcast_loop<1>(dst.shape(), {st}, [&](int64_t o, const auto& off, const auto& step, int64_t len) {
    for (int64_t i = 0; i < len; ++i) d[o + i] = s[off[0] + i * step[0]];
  });
}

// dst[idx] = src[base + Σ idx_d · st_d]: the gather behind Transpose and Slice.
void strided_copy(const Tensor& src, Tensor& dst, const std::vector<int64_t>& st, int64_t base, const Node& n) {
  switch (elem_size(src, n)) {
    case 1: strided_copy_typed<uint8_t>(src, dst, st, base); break;
    case 2: strided_copy_typed<uint16_t>(src, dst, st, base); break;
    case 4: strided_copy_typed<uint32_t>(src, dst, st, base); break;
    default: strided_copy_typed<uint64_t>(src, dst, st, base); break;
  }
}

std::vector<int64_t> contiguous_strides(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

int64_t prod(const Shape& s, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to; ++i) p *= s[i];
  return p;
}

void reshape_kernel(OpContext& c) {
  const Tensor& x = c.in(0);
  Shape s = int_values(c.in(1), c.node, "shape");
  const bool allowzero = c.node.i("allowzero", 0) != 0;
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] == 0 && !allowzero) {
      if (i >= x.shape().size()) throw Error(c.node.label() + ": shape entry 0 at " + std::to_string(i) + " has no input dimension to copy");
      s[i] = x.shape()[i];
    }
  c.outputs[0] = x.reshaped(s);
}

void unsqueeze_kernel(OpContext& c) {
  const Tensor& x = c.in(0);
  const auto axes = axes_from(c, 1, "axes");
  const int64_t r = x.rank() + static_cast<int64_t>(axes.size());
  std::vector<bool> ins(r, false);
  for (int64_t a : axes) {
    int64_t k = norm_axis(a, r, c.node);
    if (ins[k]) throw Error(c.node.label() + ": axis " + std::to_string(a) + " is repeated");
    ins[k] = true;
  }
  Shape s;
  size_t j = 0;
  for (int64_t i = 0; i < r; ++i) s.push_back(ins[i] ? 1 : x.shape()[j++]);
  c.outputs[0] = x.reshaped(s);
}

void squeeze_kernel(OpContext& c) {
  const Tensor& x = c.in(0);
  bool given = false;
  const auto axes = axes_from(c, 1, "axes", &given);
  std::vector<bool> drop(x.rank(), false);
  for (int64_t a : axes) {
    int64_t k = norm_axis(a, x.rank(), c.node);
    if (x.shape()[k] != 1) throw Error(c.node.label() + ": cannot squeeze axis " + std::to_string(a) + " of size " + std::to_string(x.shape()[k]));
    drop[k] = true;
  }
  Shape s;
  for (int i = 0; i < x.rank(); ++i)
    if (!(given ? drop[i] : x.shape()[i] == 1)) s.push_back(x.shape()[i]);
  c.outputs[0] = x.reshaped(s);
}

void transpose_kernel(OpContext& c) {
  const Tensor& x = c.in(0);
  const int r = x.rank();
  std::vector<int64_t> perm = c.node.ints("perm");
  if (perm.empty())
    for (int i = r - 1; i >= 0; --i) perm.push_back(i);
  if (static_cast<int>(perm.size()) != r) throw Error(c.node.label() + ": perm has " + std::to_string(perm.size()) + " entries for rank " + std::to_string(r));
  const auto in_st = contiguous_strides(x.shape());
  Shape os(r);
  std::vector<int64_t> st(r);
  std::vector<bool> used(r, false);
  for (int i = 0; i < r; ++i) {
    const int64_t p = norm_axis(perm[i], r, c.node);
    if (used[p]) throw Error(c.node.label() + ": perm is not a permutation");
    used[p] = true;
    os[i] = x.shape()[p];
    st[i] = in_st[p];
  }
  Tensor y(x.dtype(), os);
  strided_copy(x, y, st, 0, c.node);
  c.outputs[0] = std::move(y);
}

// Slice (opset 10+: starts, ends, axes, steps as inputs; opset 1: attributes), clamped as the
// spec says: negative indices count from the end, then starts/ends clamp into the dimension.
void slice_kernel(OpContext& c) {
  const Node& n = c.node;
  const Tensor& x = c.in(0);
  const int r = x.rank();
  std::vector<int64_t> starts, ends, axes, steps;
  if (c.has(1)) {
    starts = int_values(c.in(1), n, "starts");
    ends = int_values(c.in(2), n, "ends");
    if (c.has(3)) axes = int_values(c.in(3), n, "axes");
    if (c.has(4)) steps = int_values(c.in(4), n, "steps");
  } else {
    starts = n.ints("starts"), ends = n.ints("ends"), axes = n.ints("axes");
  }
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    throw Error(n.label() + ": starts, ends, axes and steps differ in length");
  Shape os = x.shape();
  const auto in_st = contiguous_strides(x.shape());
  std::vector<int64_t> st = in_st;
  int64_t base = 0;
  std::vector<bool> seen(r, false);
  for (size_t i = 0; i < starts.size(); ++i) {
    const int64_t a = norm_axis(axes[i], r, n), dim = x.shape()[a], step = steps[i];
    if (seen[a]) throw Error(n.label() + ": axis " + std::to_string(axes[i]) + " is repeated");
    seen[a] = true;
    if (step == 0) throw Error(n.label() + ": step 0");
    int64_t b = starts[i], e = ends[i];
    if (b < 0) b += dim;
    if (e < 0 && e > INT64_MIN + dim) e += dim;
    if (step > 0) {
      b = std::clamp<int64_t>(b, 0, dim), e = std::clamp<int64_t>(e, 0, dim);
      os[a] = e > b ? (e - b + step - 1) / step : 0;
    } else {
      b = std::clamp<int64_t>(b, 0, dim - 1), e = std::clamp<int64_t>(e, -1, dim - 1);
      os[a] = b > e ? (b - e + (-step) - 1) / (-step) : 0;
    }
    if (os[a] > 0) base += b * in_st[a];
    st[a] = in_st[a] * step;
  }
  Tensor y(x.dtype(), os);
  if (y.numel()) strided_copy(x, y, st, base, n);
  c.outputs[0] = std::move(y);
}

void gather_kernel(OpContext& c) {
  const Node& n = c.node;
  const Tensor& x = c.in(0);
  const auto idx = int_values(c.in(1), n, "indices");
  const int64_t axis = norm_axis(n.i("axis", 0), x.rank(), n);
  const int64_t dim = x.shape()[axis];
  Shape os(x.shape().begin(), x.shape().begin() + axis);
  os.insert(os.end(), c.in(1).shape().begin(), c.in(1).shape().end());
  os.insert(os.end(), x.shape().begin() + axis + 1, x.shape().end());
  const int64_t outer = prod(x.shape(), 0, axis), es = static_cast<int64_t>(elem_size(x, n));
  const int64_t block = prod(x.shape(), axis + 1, x.shape().size()) * es;
  Tensor y(x.dtype(), os);
  const auto* s = static_cast<const uint8_t*>(x.raw());
  auto* d = static_cast<uint8_t*>(y.mutable_raw());
  const int64_t ni = static_cast<int64_t>(idx.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < ni; ++i) {
      int64_t k = idx[i] < 0 ? idx[i] + dim : idx[i];
      if (k < 0 || k >= dim) throw Error(n.label() + ": index " + std::to_string(idx[i]) + " is out of range for dimension " + std::to_string(dim));
      std::memcpy(d + (o * ni + i) * block, s + (o * dim + k) * block, block);
    }
  c.outputs[0] = std::move(y);
}

template <class E>
void gather_elements_typed(const Tensor& x, const std::vector<int64_t>& idx, Tensor& y, int64_t axis, const Node& n) {
  const auto xs = contiguous_strides(x.shape()), ys = contiguous_strides(y.shape());
  const E* s = static_cast<const E*>(x.raw());
  E* d = static_cast<E*>(y.mutable_raw());
  const int64_t dim = x.shape()[axis];
  for (int64_t i = 0; i < y.numel(); ++i) {
    int64_t off = 0, rem = i;
    for (size_t a = 0; a < ys.size(); ++a) {
      const int64_t q = rem / ys[a];
      rem %= ys[a];
      if (static_cast<int64_t>(a) == axis) {
        int64_t k = idx[i] < 0 ? idx[i] + dim : idx[i];
        if (k < 0 || k >= dim) throw Error(n.label() + ": index " + std::to_string(idx[i]) + " is out of range");
        off += k * xs[a];
      } else {
        off += q * xs[a];
      }
    }
    d[i] = s[off];
  }
}

void gather_elements_kernel(OpContext& c) {
  const Tensor& x = c.in(0);
  const auto idx = int_values(c.in(1), c.node, "indices");
  const int64_t axis = norm_axis(c.node.i("axis", 0), x.rank(), c.node);
  Tensor y(x.dtype(), c.in(1).shape());
  switch (elem_size(x, c.node)) {
    case 1: gather_elements_typed<uint8_t>(x, idx, y, axis, c.node); break;
    case 2: gather_elements_typed<uint16_t>(x, idx, y, axis, c.node); break;
    case 4: gather_elements_typed<uint32_t>(x, idx, y, axis, c.node); break;
    default: gather_elements_typed<uint64_t>(x, idx, y, axis, c.node); break;
  }
  c.outputs[0] = std::move(y);
}

void concat_kernel(OpContext& c) {
  const Node& n = c.node;
  const Tensor& first = c.in(0);
  const int64_t axis = norm_axis(n.i("axis"), first.rank(), n);
  Shape os = first.shape();
  os[axis] = 0;
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    const Tensor& t = c.in(i);
    bool ok = t.dtype() == first.dtype() && t.rank() == first.rank();
    for (int d = 0; ok && d < t.rank(); ++d) ok = d == axis || t.shape()[d] == first.shape()[d];
    if (!ok) throw Error(n.label() + ": input " + std::to_string(i) + " " + dtype_name(t.dtype()) + " " + shape_str(t.shape()) + " does not match input 0 " + shape_str(first.shape()));
    os[axis] += t.shape()[axis];
  }
  Tensor y(first.dtype(), os);
  const int64_t outer = prod(os, 0, axis), es = static_cast<int64_t>(elem_size(first, n));
  const int64_t out_row = prod(os, axis, os.size()) * es;
  auto* d = static_cast<uint8_t*>(y.mutable_raw());
  int64_t at = 0;
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    const Tensor& t = c.in(i);
    const int64_t row = prod(t.shape(), axis, t.shape().size()) * es;
    const auto* s = static_cast<const uint8_t*>(t.raw());
    for (int64_t o = 0; o < outer && row; ++o) std::memcpy(d + o * out_row + at, s + o * row, row);
    at += row;
  }
  c.outputs[0] = std::move(y);
}

// Split: sizes from input 1 (opset 13+) or attribute `split`; else equal parts, the last one
// smaller when the dimension does not divide (opset 18 num_outputs).
void split_kernel(OpContext& c) {
  const Node& n = c.node;
  const Tensor& x = c.in(0);
  const int64_t axis = norm_axis(n.i("axis", 0), x.rank(), n), dim = x.shape()[axis];
  const int64_t parts = static_cast<int64_t>(c.outputs.size());
  std::vector<int64_t> sizes = c.has(1) ? int_values(c.in(1), n, "split") : n.ints("split");
  if (sizes.empty()) {
    const int64_t each = (dim + parts - 1) / parts;
    for (int64_t i = 0; i < parts; ++i) sizes.push_back(std::min(each, dim - i * each));
  }
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  if (static_cast<int64_t>(sizes.size()) != parts || total != dim)
    throw Error(n.label() + ": split sizes do not match " + std::to_string(parts) + " outputs summing to " + std::to_string(dim));
  const int64_t outer = prod(x.shape(), 0, axis), es = static_cast<int64_t>(elem_size(x, n));
  const int64_t inner = prod(x.shape(), axis + 1, x.shape().size()) * es, in_row = dim * inner;
  const auto* s = static_cast<const uint8_t*>(x.raw());
  int64_t at = 0;
  for (int64_t p = 0; p < parts; ++p) {
    Shape os = x.shape();
    os[axis] = sizes[p];
    Tensor y(x.dtype(), os);
    auto* d = static_cast<uint8_t*>(y.mutable_raw());
    const int64_t row = sizes[p] * inner;
    for (int64_t o = 0; o < outer && row; ++o) std::memcpy(d + o * row, s + o * in_row + at, row);
    at += row;
    c.outputs[p] = std::move(y);
  }
}

void tile_kernel(OpContext& c) {
  const Tensor& x = c.in(0);
  const auto reps = int_values(c.in(1), c.node, "repeats");
  if (static_cast<int>(reps.size()) != x.rank()) throw Error(c.node.label() + ": repeats must have one entry per input dimension");
  Shape os = x.shape();
  auto st = contiguous_strides(x.shape());
  // view the output as [rep_0, dim_0, rep_1, dim_1, ...] with stride 0 along the repeats
  Shape view;
  std::vector<int64_t> vst;
  for (int i = 0; i < x.rank(); ++i) {
    if (reps[i] < 0) throw Error(c.node.label() + ": negative repeat");
    os[i] *= reps[i];
    view.push_back(reps[i]), view.push_back(x.shape()[i]);
    vst.push_back(0), vst.push_back(st[i]);
  }
  Tensor y(x.dtype(), view);
  if (y.numel()) strided_copy(x, y, vst, 0, c.node);
  c.outputs[0] = y.reshaped(os);
}

void constant_kernel(OpContext& c) {
  const Node& n = c.node;
  if (n.has("value")) c.outputs[0] = n.t("value");
  else if (n.has("value_float")) c.outputs[0] = Tensor::scalar_f32(static_cast<float>(n.f("value_float", 0)));
  else if (n.has("value_int")) c.outputs[0] = Tensor::from_i64({}, {n.i("value_int")});
  else if (n.has("value_ints")) {
    auto v = n.ints("value_ints");
    c.outputs[0] = Tensor::from_i64({static_cast<int64_t>(v.size())}, v);
  } else if (n.has("value_floats")) {
    auto v = n.floats("value_floats");
    c.outputs[0] = Tensor::from_f32({static_cast<int64_t>(v.size())}, std::vector<float>(v.begin(), v.end()));
  } else {
    throw Error(n.label() + ": no supported value attribute (value, value_float(s), value_int(s))");
  }
}

void constant_of_shape_kernel(OpContext& c) {
  const Shape s = int_values(c.in(0), c.node, "shape");
  Tensor v = c.node.has("value") ? c.node.t("value") : Tensor::scalar_f32(0.0f);
  if (v.numel() != 1) throw Error(c.node.label() + ": value must have one element");
  Tensor y(v.dtype(), s);
  const size_t es = elem_size(v, c.node);
  auto* d = static_cast<uint8_t*>(y.mutable_raw());
  for (int64_t i = 0; i < y.numel(); ++i) std::memcpy(d + i * es, v.raw(), es);
  c.outputs[0] = std::move(y);
}

void range_kernel(OpContext& c) {
  const Tensor &s = c.in(0), &l = c.in(1), &d = c.in(2);
  dispatch<kFloats | kInts>(s.dtype(), c.node, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (l.dtype() != s.dtype() || d.dtype() != s.dtype()) throw Error(c.node.label() + ": start, limit and delta differ in dtype");
    const T start = s.data<T>()[0], limit = l.data<T>()[0], delta = d.data<T>()[0];
    if (delta == 0) throw Error(c.node.label() + ": delta is 0");
    const double cnt = std::ceil((static_cast<double>(limit) - static_cast<double>(start)) / static_cast<double>(delta));
    const int64_t len = std::max<int64_t>(static_cast<int64_t>(cnt), 0);
    Tensor y(s.dtype(), {len});
    T* p = y.mutable_data<T>();
    for (int64_t i = 0; i < len; ++i) p[i] = static_cast<T>(start + static_cast<T>(i) * delta);
    c.outputs[0] = std::move(y);
  });
}

template <class E>
void trilu_typed(const Tensor& x, Tensor& y, int64_t k, bool upper) {
  const int64_t rows = x.dim(-2), cols = x.dim(-1), mats = (rows && cols) ? x.numel() / (rows * cols) : 0;
  const E* s = static_cast<const E*>(x.raw());
  E* d = static_cast<E*>(y.mutable_raw());
  for (int64_t m = 0; m < mats; ++m)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t o = (m * rows + i) * cols + j;
        d[o] = (upper ? j - i >= k : j - i <= k) ? s[o] : E(0);
      }
}

void trilu_kernel(OpContext& c) {
  const Tensor& x = c.in(0);
  if (x.rank() < 2) throw Error(c.node.label() + ": input must have rank >= 2");
  const int64_t k = c.has(1) ? int_values(c.in(1), c.node, "k").at(0) : 0;
  const bool upper = c.node.i("upper", 1) != 0;
  Tensor y(x.dtype(), x.shape());
  switch (elem_size(x, c.node)) {  // zero is all-zero bytes in every dtype
    case 1: trilu_typed<uint8_t>(x, y, k, upper); break;
    case 2: trilu_typed<uint16_t>(x, y, k, upper); break;
    case 4: trilu_typed<uint32_t>(x, y, k, upper); break;
    default: trilu_typed<uint64_t>(x, y, k, upper); break;
  }
  c.outputs[0] = std::move(y);
}

}  // namespace

void register_shape_ops(KernelTable& t) {
  auto key = [](const char* op) { return kernel_key("", op); };
  t[key("Reshape")] = reshape_kernel;
  t[key("Flatten")] = [](OpContext& c) {
    const Tensor& x = c.in(0);
    const int64_t a = c.node.i("axis", 1);
    const int64_t axis = a == x.rank() ? a : norm_axis(a, x.rank(), c.node);
    c.outputs[0] = x.reshaped({prod(x.shape(), 0, axis), prod(x.shape(), axis, x.shape().size())});
  };
  t[key("Unsqueeze")] = unsqueeze_kernel;
  t[key("Squeeze")] = squeeze_kernel;
  t[key("Transpose")] = transpose_kernel;
  t[key("Slice")] = slice_kernel;
  t[key("Gather")] = gather_kernel;
  t[key("GatherElements")] = gather_elements_kernel;
  t[key("Concat")] = concat_kernel;
  t[key("Split")] = split_kernel;
  t[key("Tile")] = tile_kernel;
  t[key("Expand")] = [](OpContext& c) {
    c.outputs[0] = broadcast_to(c.in(0), int_values(c.in(1), c.node, "shape"), c.node).clone();
  };
  t[key("Shape")] = [](OpContext& c) {
    // opset 15 start/end select a range of dimensions, clamped like Slice
    const Shape& s = c.in(0).shape();
    const int64_t r = static_cast<int64_t>(s.size());
    int64_t b = c.node.i("start", 0), e = c.node.i("end", r);
    b = std::clamp<int64_t>(b < 0 ? b + r : b, 0, r), e = std::clamp<int64_t>(e < 0 ? e + r : e, 0, r);
    std::vector<int64_t> v(s.begin() + b, s.begin() + std::max(b, e));
    c.outputs[0] = Tensor::from_i64({static_cast<int64_t>(v.size())}, v);
  };
  t[key("Size")] = [](OpContext& c) { c.outputs[0] = Tensor::from_i64({}, {c.in(0).numel()}); };
  t[key("Constant")] = constant_kernel;
  t[key("ConstantOfShape")] = constant_of_shape_kernel;
  t[key("Range")] = range_kernel;
  t[key("Trilu")] = trilu_kernel;
}

}  // namespace llmc::runtime::onnx
