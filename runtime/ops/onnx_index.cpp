// ONNX indexing ops: GatherND, ScatterND, ScatterElements (reduction none/add/mul/max/min),
// NonZero, Pad (constant, reflect, edge; pads as attribute before opset 11), EyeLike, OneHot.
#include <algorithm>
#include <cstring>

#include "runtime/ops/onnx_ops.hpp"

namespace llmc::runtime::onnx {

namespace {

std::vector<int64_t> strides_of(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

int64_t checked_index(int64_t i, int64_t dim, const Node& n) {
  const int64_t k = i < 0 ? i + dim : i;
  if (k < 0 || k >= dim) throw Error(n.label() + ": index " + std::to_string(i) + " is out of range for dimension " + std::to_string(dim));
  return k;
}

// GatherND: indices [..., k] address slices of data after `batch_dims` shared leading dims.
void gather_nd_kernel(OpContext& c) {
  const Node& n = c.node;
  const Tensor& x = c.in(0);
  const Tensor& it = c.in(1);
  const auto idx = int_values(it, n, "indices");
  const int64_t b = n.i("batch_dims", 0), k = it.dim(-1);
  if (b + k > x.rank()) throw Error(n.label() + ": batch_dims + index depth exceeds the data rank");
  Shape os(it.shape().begin(), it.shape().end() - 1);
  os.insert(os.end(), x.shape().begin() + b + k, x.shape().end());
  const int64_t es = static_cast<int64_t>(elem_size(x, n));
  int64_t batch = 1, slice = es;
  for (int64_t i = 0; i < b; ++i) batch *= x.shape()[i];
  for (int64_t i = b + k; i < x.rank(); ++i) slice *= x.shape()[i];
  const auto st = strides_of(x.shape());
  const int64_t tuples = k ? static_cast<int64_t>(idx.size()) / k : 0, per_batch = batch ? tuples / batch : 0;
  const int64_t data_batch = b ? st[b - 1] * es : 0;
  Tensor y(x.dtype(), os);
  const auto* s = static_cast<const uint8_t*>(x.raw());
  auto* d = static_cast<uint8_t*>(y.mutable_raw());
  for (int64_t t = 0; t < tuples; ++t) {
    int64_t off = (t / std::max<int64_t>(per_batch, 1)) * data_batch;
    for (int64_t j = 0; j < k; ++j) off += checked_index(idx[t * k + j], x.shape()[b + j], n) * st[b + j] * es;
    std::memcpy(d + t * slice, s + off, slice);
  }
  c.outputs[0] = std::move(y);
}

enum class Reduction { None, Add, Mul, Max, Min };

Reduction reduction_of(const Node& n) {
  const std::string r = n.s("reduction", "none");
  if (r == "none") return Reduction::None;
  if (r == "add") return Reduction::Add;
  if (r == "mul") return Reduction::Mul;
  if (r == "max") return Reduction::Max;
  if (r == "min") return Reduction::Min;
  throw Error(n.label() + ": unknown reduction '" + r + "'");
}

template <class T>
void reduce_into(T& dst, T v, Reduction r) {
  switch (r) {
    case Reduction::None: dst = v; break;
    case Reduction::Add: dst = wrap_add(dst, v); break;
    case Reduction::Mul: dst = wrap_mul(dst, v); break;
    case Reduction::Max: dst = std::max(dst, v); break;
    case Reduction::Min: dst = std::min(dst, v); break;
  }
}

// ScatterND: out = data; out[indices[i]] (a slice) = updates[i], combined by `reduction`.
void scatter_nd_kernel(OpContext& c) {
  const Node& n = c.node;
  const Tensor& x = c.in(0);
  const Tensor& it = c.in(1);
  const Tensor& up = c.in(2);
  const auto idx = int_values(it, n, "indices");
  const int64_t k = it.dim(-1);
  const Reduction red = reduction_of(n);
  int64_t slice = 1;
  for (int64_t i = k; i < x.rank(); ++i) slice *= x.shape()[i];
  const int64_t tuples = k ? static_cast<int64_t>(idx.size()) / k : 0;
  if (up.numel() != tuples * slice || up.dtype() != x.dtype()) throw Error(n.label() + ": updates " + shape_str(up.shape()) + " do not match the indexed slices");
  const auto st = strides_of(x.shape());
  Tensor y = x.clone();
  dispatch<kAll>(x.dtype(), n, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* d = y.mutable_data<T>();
    const T* u = up.data<T>();
    for (int64_t t = 0; t < tuples; ++t) {
      int64_t off = 0;
      for (int64_t j = 0; j < k; ++j) off += checked_index(idx[t * k + j], x.shape()[j], n) * st[j];
      for (int64_t e = 0; e < slice; ++e) reduce_into(d[off + e], u[t * slice + e], red);
    }
  });
  c.outputs[0] = std::move(y);
}

// ScatterElements: out[... indices[i, j, ...] (on axis) ...] = updates[i, j, ...].
void scatter_elements_kernel(OpContext& c) {
  const Node& n = c.node;
  const Tensor& x = c.in(0);
  const Tensor& it = c.in(1);
  const Tensor& up = c.in(2);
  const auto idx = int_values(it, n, "indices");
  const int64_t axis = norm_axis(n.i("axis", 0), x.rank(), n);
  const Reduction red = reduction_of(n);
  if (up.shape() != it.shape() || up.dtype() != x.dtype()) throw Error(n.label() + ": updates must match the indices' shape and the data's dtype");
  const auto xs = strides_of(x.shape()), is = strides_of(it.shape());
  Tensor y = x.clone();
  dispatch<kAll>(x.dtype(), n, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* d = y.mutable_data<T>();
    const T* u = up.data<T>();
    for (int64_t i = 0; i < it.numel(); ++i) {
      int64_t off = 0, rem = i;
      for (int a = 0; a < it.rank(); ++a) {
        const int64_t q = rem / is[a];
        rem %= is[a];
        off += (a == axis ? checked_index(idx[i], x.shape()[a], n) : q) * xs[a];
      }
      reduce_into(d[off], u[i], red);
    }
  });
  c.outputs[0] = std::move(y);
}

void non_zero_kernel(OpContext& c) {
  const Tensor& x = c.in(0);
  const auto st = strides_of(x.shape());
  std::vector<int64_t> hits;
  dispatch<kAll>(x.dtype(), c.node, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = x.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i)
      if (p[i] != T(0)) hits.push_back(i);
  });
  const int64_t r = x.rank(), nnz = static_cast<int64_t>(hits.size());
  Tensor y(DType::I64, {r, nnz});
  int64_t* q = y.mutable_data<int64_t>();
  for (int64_t j = 0; j < nnz; ++j)
    for (int64_t a = 0; a < r; ++a) q[a * nnz + j] = (hits[j] / st[a]) % x.shape()[a];
  c.outputs[0] = std::move(y);
}

// Pad: out[i] = x[i − pad_begin] inside, else the constant, the mirror (reflect: edge not
// repeated) or the nearest edge. Negative pads crop.
void pad_kernel(OpContext& c) {
  const Node& n = c.node;
  const Tensor& x = c.in(0);
  const int64_t r = x.rank();
  std::vector<int64_t> pads = c.has(1) ? int_values(c.in(1), n, "pads") : n.ints("pads");
  std::vector<int64_t> axes;
  if (c.has(3)) {
    for (int64_t a : int_values(c.in(3), n, "axes")) axes.push_back(norm_axis(a, r, n));
  } else {
    for (int64_t a = 0; a < r; ++a) axes.push_back(a);
  }
  const int64_t na = static_cast<int64_t>(axes.size());
  if (static_cast<int64_t>(pads.size()) != 2 * na) throw Error(n.label() + ": pads must have 2 entries per padded axis");
  std::vector<int64_t> lo(r, 0), hi(r, 0);
  for (int64_t i = 0; i < na; ++i) lo[axes[i]] = pads[i], hi[axes[i]] = pads[i + na];
  const std::string mode = n.s("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge") throw Error(n.label() + ": pad mode '" + mode + "' is not supported");
  Shape os(r);
  for (int64_t a = 0; a < r; ++a) {
    os[a] = x.shape()[a] + lo[a] + hi[a];
    if (os[a] < 0) throw Error(n.label() + ": pads crop axis " + std::to_string(a) + " below zero");
    if (mode != "constant" && x.shape()[a] == 0 && os[a] > 0) throw Error(n.label() + ": cannot " + mode + "-pad an empty axis");
  }
  Tensor y(x.dtype(), os);
  const int64_t es = static_cast<int64_t>(elem_size(x, n));
  std::vector<uint8_t> fill(es, 0);
  if (c.has(2) && c.in(2).numel() > 0) std::memcpy(fill.data(), c.in(2).raw(), es);
  else if (n.has("value")) std::memcpy(fill.data(), Tensor::scalar_f32(static_cast<float>(n.f("value", 0))).to(x.dtype()).raw(), es);
  const auto xs = strides_of(x.shape()), ys = strides_of(os);
  const auto* s = static_cast<const uint8_t*>(x.raw());
  auto* d = static_cast<uint8_t*>(y.mutable_raw());
  for (int64_t i = 0; i < y.numel(); ++i) {
    int64_t off = 0, rem = i;
    bool inside = true;
    for (int64_t a = 0; a < r; ++a) {
      int64_t p = rem / ys[a] - lo[a];
      rem %= ys[a];
      const int64_t dim = x.shape()[a];
      if (p < 0 || p >= dim) {
        if (mode == "constant") {
          inside = false;
          break;
        }
        if (mode == "edge") {
          p = std::clamp<int64_t>(p, 0, dim - 1);
        } else {
          const int64_t period = std::max<int64_t>(2 * (dim - 1), 1);
          p = ((p % period) + period) % period;
          if (p >= dim) p = period - p;
        }
      }
      off += p * xs[a];
    }
    std::memcpy(d + i * es, inside ? s + off * es : fill.data(), es);
  }
  c.outputs[0] = std::move(y);
}

void eye_like_kernel(OpContext& c) {
  const Tensor& x = c.in(0);
  if (x.rank() != 2) throw Error(c.node.label() + ": input must be 2-D");
  const DType dt = c.node.has("dtype") ? dtype_from_onnx_code(c.node.i("dtype"), c.node) : x.dtype();
  const int64_t k = c.node.i("k", 0), rows = x.dim(0), cols = x.dim(1);
  Tensor y(DType::F64, x.shape());
  for (int64_t i = 0; i < rows; ++i)
    if (i + k >= 0 && i + k < cols) y.mutable_data<double>()[i * cols + i + k] = 1;
  c.outputs[0] = y.to(dt);
}

// OneHot: out[..., j, ...] (j on `axis`) = on if j == index (negative indices count from depth).
void one_hot_kernel(OpContext& c) {
  const Node& n = c.node;
  const Tensor ind = c.in(0).to(DType::F64);
  const Tensor& vals = c.in(2);
  const int64_t depth = static_cast<int64_t>(c.in(1).to(DType::F64).data<double>()[0]);
  if (vals.numel() != 2) throw Error(n.label() + ": values must hold [off, on]");
  const int64_t r = ind.rank() + 1, axis = norm_axis(n.i("axis", -1), r, n);
  Shape os = ind.shape();
  os.insert(os.begin() + axis, depth);
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= os[i];
  for (int64_t i = axis + 1; i < r; ++i) inner *= os[i];
  Tensor y(vals.dtype(), os);
  const size_t es = elem_size(vals, n);
  const auto* v = static_cast<const uint8_t*>(vals.raw());
  auto* d = static_cast<uint8_t*>(y.mutable_raw());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < depth; ++j)
      for (int64_t in = 0; in < inner; ++in) {
        int64_t h = static_cast<int64_t>(ind.data<double>()[o * inner + in]);
        if (h < 0) h += depth;
        std::memcpy(d + ((o * depth + j) * inner + in) * es, v + (h == j ? es : 0), es);
      }
  c.outputs[0] = std::move(y);
}

}  // namespace

void register_index_ops(KernelTable& t) {
  t[kernel_key("", "OneHot")] = one_hot_kernel;
  t[kernel_key("", "GatherND")] = gather_nd_kernel;
  t[kernel_key("", "ScatterND")] = scatter_nd_kernel;
  t[kernel_key("", "ScatterElements")] = scatter_elements_kernel;
  t[kernel_key("", "NonZero")] = non_zero_kernel;
  t[kernel_key("", "Pad")] = pad_kernel;
  t[kernel_key("", "EyeLike")] = eye_like_kernel;
}

}  // namespace llmc::runtime::onnx
