// ONNX reductions (ReduceMean/Sum/Max/Min/Prod/SumSquare/L1/L2/LogSum/LogSumExp; axes as an
// attribute before opset 13 (ReduceSum) or 18 (the others), as an input after), ArgMax/ArgMin
// CumSum and TopK.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "runtime/ops/onnx_ops.hpp"

namespace llmc::runtime::onnx {

namespace {

Tensor widen(const Tensor& t) { return is_half(t.dtype()) ? t.to(DType::F32) : t; }

enum class Red { Mean, Sum, Max, Min, Prod, SumSquare, L1, L2, LogSum, LogSumExp };

// Accumulates in double for floats and in 64-bit for ints (narrowed once at the end, which
// wraps exactly as accumulating in the narrow type would).
template <class T>
using Acc = std::conditional_t<std::is_floating_point_v<T>, double,
                               std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>;

template <class T>
Acc<T> init(Red r) {
  if (r == Red::Max) return std::is_floating_point_v<T> ? -std::numeric_limits<Acc<T>>::infinity() : std::numeric_limits<T>::lowest();
  if (r == Red::Min) return std::is_floating_point_v<T> ? std::numeric_limits<Acc<T>>::infinity() : std::numeric_limits<T>::max();
  return r == Red::Prod ? 1 : 0;
}

template <class A>
A combine(Red r, A acc, A x) {
  switch (r) {
    case Red::Max: return (x > acc || x != x) ? x : acc;  // NaN propagates
    case Red::Min: return (x < acc || x != x) ? x : acc;
    case Red::Prod: return wrap_mul(acc, x);
    case Red::SumSquare: case Red::L2: return wrap_add(acc, wrap_mul(x, x));
    case Red::L1: return wrap_add(acc, x < 0 ? wrap_sub(A(0), x) : x);
    case Red::LogSumExp: return acc + static_cast<A>(std::exp(static_cast<double>(x)));
    default: return wrap_add(acc, x);
  }
}

template <class A>
A finish(Red r, A acc, int64_t count) {
  switch (r) {
    case Red::Mean: return count ? acc / static_cast<A>(count) : acc;
    case Red::L2: return static_cast<A>(std::sqrt(static_cast<double>(acc)));
    case Red::LogSum: case Red::LogSumExp: return static_cast<A>(std::log(static_cast<double>(acc)));
    default: return acc;
  }
}

Kernel reduce(Red red) {
  return [red](OpContext& c) {
    const Node& n = c.node;
    const DType dt = c.in(0).dtype();
    const Tensor x = widen(c.in(0));
    const int r = x.rank();
    bool given = false;
    auto axes = axes_from(c, 1, "axes", &given);
    const bool keep = n.i("keepdims", 1) != 0;
    if (axes.empty() && n.i("noop_with_empty_axes", 0) != 0) {
      c.outputs[0] = c.in(0);
      return;
    }
    std::vector<bool> reduced(r, axes.empty());
    for (int64_t a : axes) reduced[norm_axis(a, r, n)] = true;
    Shape kept = x.shape(), os;
    int64_t count = 1;
    for (int i = 0; i < r; ++i)
      if (reduced[i]) count *= x.shape()[i], kept[i] = 1;
    for (int i = 0; i < r; ++i)
      if (!reduced[i] || keep) os.push_back(kept[i]);
    // walking the input, each element lands on the output element of its kept coordinates
    const auto st = broadcast_strides(kept, x.shape());
    Tensor y(x.dtype(), os);
    dispatch<kFloats | kInts>(x.dtype(), n, [&](auto tag) {
      using T = typename decltype(tag)::type;
      using A = Acc<T>;
      std::vector<A> acc(shape_numel(kept), init<T>(red));
      const T* p = x.data<T>();
      broadcast_loop<1>(x.shape(), {st}, [&](int64_t o, const auto& off, const auto& step, int64_t len) {
        for (int64_t i = 0; i < len; ++i) {
          A& a = acc[off[0] + i * step[0]];
          a = combine<A>(red, a, static_cast<A>(p[o + i]));
        }
      });
      T* q = y.mutable_data<T>();
      for (size_t i = 0; i < acc.size(); ++i) q[i] = static_cast<T>(finish<A>(red, acc[i], count));
    });
    c.outputs[0] = is_half(dt) ? y.to(dt) : y;
  };
}

Kernel arg_reduce(bool is_max) {
  return [is_max](OpContext& c) {
    const Node& n = c.node;
    const Tensor x = widen(c.in(0));
    const int64_t axis = norm_axis(n.i("axis", 0), x.rank(), n);
    const bool keep = n.i("keepdims", 1) != 0, last = n.i("select_last_index", 0) != 0;
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= x.shape()[i];
    for (int64_t i = axis + 1; i < x.rank(); ++i) inner *= x.shape()[i];
    const int64_t len = x.shape()[axis];
    if (len == 0) throw Error(n.label() + ": cannot reduce an empty axis");
    Shape os = x.shape();
    if (keep) os[axis] = 1;
    else os.erase(os.begin() + axis);
    Tensor y(DType::I64, os);
    int64_t* q = y.mutable_data<int64_t>();
    dispatch<kFloats | kInts>(x.dtype(), n, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* p = x.data<T>();
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t in = 0; in < inner; ++in) {
          const T* s = p + o * len * inner + in;
          int64_t best = 0;
          for (int64_t i = 1; i < len; ++i) {
            const T v = s[i * inner], b = s[best * inner];
            const bool better = is_max ? (v > b || (last && v == b)) : (v < b || (last && v == b));
            if (better) best = i;
          }
          q[o * inner + in] = best;
        }
    });
    c.outputs[0] = std::move(y);
  };
}

void cumsum_kernel(OpContext& c) {
  const Node& n = c.node;
  const Tensor& x = c.in(0);
  const int64_t axis = norm_axis(int_values(c.in(1), n, "axis").at(0), x.rank(), n);
  const bool excl = n.i("exclusive", 0) != 0, rev = n.i("reverse", 0) != 0;
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x.shape()[i];
  for (int64_t i = axis + 1; i < x.rank(); ++i) inner *= x.shape()[i];
  const int64_t len = x.shape()[axis];
  Tensor y(x.dtype(), x.shape());
  dispatch<kFloats | kInts>(x.dtype(), n, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = x.data<T>();
    T* q = y.mutable_data<T>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t in = 0; in < inner; ++in) {
        T sum = 0;
        for (int64_t j = 0; j < len; ++j) {
          const int64_t i = rev ? len - 1 - j : j, at = (o * len + i) * inner + in;
          if (excl) q[at] = sum;
          sum = wrap_add(sum, p[at]);
          if (!excl) q[at] = sum;
        }
      }
  });
  c.outputs[0] = std::move(y);
}

// TopK: the k largest (or smallest) along axis; equal values keep the lower index first.
void top_k_kernel(OpContext& c) {
  const Node& n = c.node;
  const DType dt = c.in(0).dtype();
  const Tensor x = widen(c.in(0));
  const int64_t k = int_values(c.in(1), n, "k").at(0);
  const int64_t axis = norm_axis(n.i("axis", -1), x.rank(), n);
  const bool largest = n.i("largest", 1) != 0;
  const int64_t len = x.shape()[axis];
  if (k < 0 || k > len) throw Error(n.label() + ": k = " + std::to_string(k) + " is outside [0, " + std::to_string(len) + "]");
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x.shape()[i];
  for (int64_t i = axis + 1; i < x.rank(); ++i) inner *= x.shape()[i];
  Shape os = x.shape();
  os[axis] = k;
  Tensor vals(x.dtype(), os), idx(DType::I64, os);
  dispatch<kFloats | kInts>(x.dtype(), n, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = x.data<T>();
    T* qv = vals.mutable_data<T>();
    int64_t* qi = idx.mutable_data<int64_t>();
    std::vector<int64_t> order(len);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t in = 0; in < inner; ++in) {
        const T* s = p + o * len * inner + in;
        for (int64_t i = 0; i < len; ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
          return largest ? s[a * inner] > s[b * inner] : s[a * inner] < s[b * inner];
        });
        for (int64_t j = 0; j < k; ++j) {
          const int64_t at = (o * k + j) * inner + in;
          qv[at] = s[order[j] * inner];
          qi[at] = order[j];
        }
      }
  });
  c.outputs[0] = is_half(dt) ? vals.to(dt) : vals;
  if (c.outputs.size() > 1) c.outputs[1] = std::move(idx);
}

}  // namespace

void register_reduce_ops(KernelTable& t) {
  t[kernel_key("", "TopK")] = top_k_kernel;
  auto key = [](const char* op) { return kernel_key("", op); };
  t[key("ReduceMean")] = reduce(Red::Mean);
  t[key("ReduceSum")] = reduce(Red::Sum);
  t[key("ReduceMax")] = reduce(Red::Max);
  t[key("ReduceMin")] = reduce(Red::Min);
  t[key("ReduceProd")] = reduce(Red::Prod);
  t[key("ReduceSumSquare")] = reduce(Red::SumSquare);
  t[key("ReduceL1")] = reduce(Red::L1);
  t[key("ReduceL2")] = reduce(Red::L2);
  t[key("ReduceLogSum")] = reduce(Red::LogSum);
  t[key("ReduceLogSumExp")] = reduce(Red::LogSumExp);
  t[key("ArgMax")] = arg_reduce(true);
  t[key("ArgMin")] = arg_reduce(false);
  t[key("CumSum")] = cumsum_kernel;
}

}  // namespace llmc::runtime::onnx
