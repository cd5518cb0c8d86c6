// ONNX binary element-wise ops with numpy broadcasting (Add, Sub, Mul, Div, Pow, Mod, Max, Min,
// Sum, Mean, comparisons, logic), plus Where, Cast and CastLike.
#include <cmath>
#include <type_traits>

#include "runtime/ops/onnx_ops.hpp"

namespace llmc::runtime::onnx {

namespace {

// z = op(x, y) over the broadcast of a and b. Inputs of the output's shape are walked flat.
template <class TA, class TB, class TO, class Op>
Tensor binary_typed(const Tensor& a, const Tensor& b, DType odt, const Node& n, Op op) {
  const Shape os = broadcast_shapes({&a.shape(), &b.shape()}, n);
  Tensor out(odt, os);
  const TA* pa = a.data<TA>();
  const TB* pb = b.data<TB>();
  TO* po = out.mutable_data<TO>();
  const int64_t total = out.numel();
  if (a.shape() == os && b.shape() == os) {
#pragma omp parallel for schedule(static) if (total > (1 << 18))
    for (int64_t i = 0; i < total; ++i) po[i] = static_cast<TO>(op(pa[i], pb[i]));
    return out;
  }
  broadcast_loop<2>(os, {broadcast_strides(a.shape(), os), broadcast_strides(b.shape(), os)},
                    [&](int64_t o, const auto& off, const auto& st, int64_t len) {
                      const TA* x = pa + off[0];
                      const TB* y = pb + off[1];
                      TO* z = po + o;
                      if (st[0] == 1 && st[1] == 1) {
                        for (int64_t i = 0; i < len; ++i) z[i] = static_cast<TO>(op(x[i], y[i]));
                      } else if (st[1] == 0) {
                        const TB y0 = *y;
                        for (int64_t i = 0; i < len; ++i) z[i] = static_cast<TO>(op(x[i * st[0]], y0));
                      } else if (st[0] == 0) {
                        const TA x0 = *x;
                        for (int64_t i = 0; i < len; ++i) z[i] = static_cast<TO>(op(x0, y[i * st[1]]));
                      } else {
                        for (int64_t i = 0; i < len; ++i) z[i] = static_cast<TO>(op(x[i * st[0]], y[i * st[1]]));
                      }
                    });
  return out;
}

void same_dtype(const Node& n, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    throw Error(n.label() + ": input dtypes differ (" + dtype_name(a.dtype()) + " vs " + dtype_name(b.dtype()) + ")");
}

// f16/bf16 operands are computed in f32 and rounded back once, as ONNX Runtime's CPU kernels do.
Tensor widen(const Tensor& t) { return is_half(t.dtype()) ? t.to(DType::F32) : t; }

// Same-dtype binary op; `boolean_out` gives a Bool result (comparisons).
template <unsigned kinds, class Op>
Tensor binary(const Node& n, const Tensor& a0, const Tensor& b0, bool boolean_out, Op op) {
  same_dtype(n, a0, b0);
  const DType dt = a0.dtype();
  const Tensor a = widen(a0), b = widen(b0);
  Tensor r = dispatch<kinds>(a.dtype(), n, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (boolean_out) return binary_typed<T, T, bool>(a, b, DType::Bool, n, op);
    return binary_typed<T, T, T>(a, b, a.dtype(), n, op);
  });
  return (is_half(dt) && !boolean_out) ? r.to(dt) : r;
}

template <unsigned kinds, class Op>
Kernel arith(Op op) {
  return [op](OpContext& c) { c.outputs[0] = binary<kinds>(c.node, c.in(0), c.in(1), false, op); };
}

template <unsigned kinds, class Op>
Kernel compare(Op op) {
  return [op](OpContext& c) { c.outputs[0] = binary<kinds>(c.node, c.in(0), c.in(1), true, op); };
}

// Sum, Mean, Max, Min take one or more inputs, folded pairwise with broadcasting.
template <unsigned kinds, class Op>
Kernel variadic(Op op, bool mean = false) {
  return [op, mean](OpContext& c) {
    Tensor acc = c.in(0);
    for (size_t i = 1; i < c.num_inputs(); ++i) acc = binary<kinds>(c.node, acc, c.in(i), false, op);
    if (c.num_inputs() == 1) acc = acc.clone();
    if (mean) {
      const DType dt = acc.dtype();
      Tensor cnt = Tensor::from_f32({}, {static_cast<float>(c.num_inputs())}).to(dt);
      acc = binary<kFloats>(c.node, acc, cnt, false, [](auto x, auto y) { return x / y; });
    }
    c.outputs[0] = std::move(acc);
  };
}

template <class T>
T int_div(T x, T y, const Node& n) {
  if (y == 0) throw Error(n.label() + ": integer division by zero");
  return static_cast<T>(x / y);
}

template <class T>
T mod_op(T x, T y, bool fmod) {
  if constexpr (std::is_floating_point_v<T>) {
    T r = std::fmod(x, y);
    if (!fmod && r != 0 && ((r < 0) != (y < 0))) r += y;
    return r;
  } else {
    if (y == 0) return 0;
    T r = static_cast<T>(x % y);
    if constexpr (std::is_signed_v<T>)
      if (!fmod && r != 0 && ((r < 0) != (y < 0))) r = static_cast<T>(r + y);
    return r;
  }
}

void pow_kernel(OpContext& c) {
  // Pow (opset 12+) lets base and exponent differ in type; the result has the base's type.
  const Node& n = c.node;
  const DType dt = c.in(0).dtype();
  const Tensor a = widen(c.in(0)), b = c.in(1).to(DType::F64);
  Tensor r = dispatch<kFloats | kInts>(a.dtype(), n, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return binary_typed<T, double, T>(a, b, a.dtype(), n, [](T x, double y) {
      if constexpr (std::is_same_v<T, float>) return std::pow(x, static_cast<float>(y));
      else return std::pow(static_cast<double>(x), y);
    });
  });
  c.outputs[0] = is_half(dt) ? r.to(dt) : r;
}

template <class T>
void where_typed(const Tensor& cond, const Tensor& x, const Tensor& y, Tensor& out) {
  const Shape& os = out.shape();
  const uint8_t* pc = cond.data<uint8_t>();
  const T* px = x.data<T>();
  const T* py = y.data<T>();
  T* po = out.mutable_data<T>();
  broadcast_loop<3>(os, {broadcast_strides(cond.shape(), os), broadcast_strides(x.shape(), os), broadcast_strides(y.shape(), os)},
                    [&](int64_t o, const auto& off, const auto& st, int64_t len) {
                      for (int64_t i = 0; i < len; ++i)
                        po[o + i] = pc[off[0] + i * st[0]] ? px[off[1] + i * st[1]] : py[off[2] + i * st[2]];
                    });
}

void where_kernel(OpContext& c) {
  const Tensor &cond = c.in(0), &x = c.in(1), &y = c.in(2);
  if (cond.dtype() != DType::Bool) throw Error(c.node.label() + ": condition must be bool, got " + dtype_name(cond.dtype()));
  same_dtype(c.node, x, y);
  Tensor out(x.dtype(), broadcast_shapes({&cond.shape(), &x.shape(), &y.shape()}, c.node));
  switch (elem_size(x, c.node)) {  // Where only selects: any element type of the same size works
    case 1: where_typed<uint8_t>(cond, x, y, out); break;
    case 2: where_typed<uint16_t>(cond, x, y, out); break;
    case 4: where_typed<uint32_t>(cond, x, y, out); break;
    default: where_typed<uint64_t>(cond, x, y, out); break;
  }
  c.outputs[0] = std::move(out);
}

void cast_to(OpContext& c, DType to) {
  const Tensor& x = c.in(0);
  if (is_half(x.dtype()) && is_half(to) && x.dtype() != to) {
    c.outputs[0] = x.to(DType::F32).to(to);  // f16 <-> bf16 goes through f32, which holds both exactly
    return;
  }
  if (x.dtype() == DType::F64 && to == DType::F16) {
    // double -> f16 directly: rounding through f32 first could round twice
    Tensor out(to, x.shape());
    const double* p = x.data<double>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      float f = static_cast<float>(p[i]);
      uint16_t h = f32_to_f16(f);
      const double e = std::fabs(static_cast<double>(f16_to_f32(h)) - p[i]);
      // when f32 rounding moved the value onto a tie, pick the f16 neighbour that is truly nearer
      for (uint16_t cand : {static_cast<uint16_t>(h - 1), static_cast<uint16_t>(h + 1)}) {
        const float fc = f16_to_f32(cand);
        if ((cand & 0x7c00) != 0x7c00 && std::signbit(fc) == std::signbit(f) && std::fabs(fc - p[i]) < e) h = cand;
      }
      out.mutable_data<uint16_t>()[i] = h;
    }
    c.outputs[0] = std::move(out);
    return;
  }
  c.outputs[0] = x.to(to);
}

}  // namespace

void register_elementwise(KernelTable& t) {
  constexpr unsigned num = kFloats | kInts;
  auto add = [](auto x, auto y) { return wrap_add(x, y); };
  t[kernel_key("", "Add")] = arith<num>(add);
  t[kernel_key("", "Sub")] = arith<num>([](auto x, auto y) { return wrap_sub(x, y); });
  t[kernel_key("", "Mul")] = arith<num>([](auto x, auto y) { return wrap_mul(x, y); });
  t[kernel_key("", "Div")] = [](OpContext& c) {
    const Node& n = c.node;
    c.outputs[0] = binary<kFloats | kInts>(n, c.in(0), c.in(1), false, [&n](auto x, auto y) {
      if constexpr (std::is_floating_point_v<decltype(x)>) return x / y;
      else return int_div(x, y, n);
    });
  };
  t[kernel_key("", "Mod")] = [](OpContext& c) {
    const bool fm = c.node.i("fmod", 0) != 0;
    if (is_float(c.in(0).dtype()) && !fm) throw Error(c.node.label() + ": fmod must be 1 for floating-point inputs");
    c.outputs[0] = binary<kFloats | kInts>(c.node, c.in(0), c.in(1), false,
                          [fm](auto x, auto y) { return mod_op<decltype(x)>(x, y, fm); });
  };
  t[kernel_key("", "Pow")] = pow_kernel;
  // Max/Min propagate NaN as numpy's maximum/minimum (and ONNX Runtime) do.
  auto mx = [](auto x, auto y) {
    if constexpr (std::is_floating_point_v<decltype(x)>)
      if (std::isnan(x) || std::isnan(y)) return x + y;
    return x < y ? y : x;
  };
  auto mn = [](auto x, auto y) {
    if constexpr (std::is_floating_point_v<decltype(x)>)
      if (std::isnan(x) || std::isnan(y)) return x + y;
    return y < x ? y : x;
  };
  t[kernel_key("", "Max")] = variadic<num>(mx);
  t[kernel_key("", "Min")] = variadic<num>(mn);
  t[kernel_key("", "Sum")] = variadic<num>(add);
  t[kernel_key("", "Mean")] = variadic<kFloats>(add, true);

  t[kernel_key("", "Equal")] = compare<kAll>([](auto x, auto y) { return x == y; });
  t[kernel_key("", "Less")] = compare<num>([](auto x, auto y) { return x < y; });
  t[kernel_key("", "LessOrEqual")] = compare<num>([](auto x, auto y) { return x <= y; });
  t[kernel_key("", "Greater")] = compare<num>([](auto x, auto y) { return x > y; });
  t[kernel_key("", "GreaterOrEqual")] = compare<num>([](auto x, auto y) { return x >= y; });
  t[kernel_key("", "And")] = arith<kBools>([](bool x, bool y) { return x && y; });
  t[kernel_key("", "Or")] = arith<kBools>([](bool x, bool y) { return x || y; });
  t[kernel_key("", "Xor")] = arith<kBools>([](bool x, bool y) { return x != y; });

  t[kernel_key("", "PRelu")] = arith<num>([](auto x, auto slope) { return x < 0 ? wrap_mul(slope, x) : x; });
  t[kernel_key("", "BitShift")] = [](OpContext& c) {
    const std::string dir = c.node.s("direction", "");
    if (dir != "LEFT" && dir != "RIGHT") throw Error(c.node.label() + ": direction must be LEFT or RIGHT");
    const bool left = dir == "LEFT";
    c.outputs[0] = binary<kInts>(c.node, c.in(0), c.in(1), false, [left](auto x, auto y) {
      using T = decltype(x);
      if constexpr (std::is_signed_v<T>) {
        throw Error("BitShift takes unsigned integers");
        return x;
      } else {
        return y >= sizeof(T) * 8 ? T(0) : static_cast<T>(left ? x << y : x >> y);
      }
    });
  };
  t[kernel_key("", "Where")] = where_kernel;
  t[kernel_key("", "Cast")] = [](OpContext& c) { cast_to(c, dtype_from_onnx_code(c.node.i("to"), c.node)); };
  t[kernel_key("", "CastLike")] = [](OpContext& c) { cast_to(c, c.in(1).dtype()); };
}

}  // namespace llmc::runtime::onnx
