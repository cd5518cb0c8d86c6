// ONNX unary element-wise ops (Exp, Erf, Relu, Sigmoid, Clip, Not, IsNaN, ...) and Identity.
// f16/bf16 inputs are computed in f32 and rounded back once.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "runtime/ops/onnx_ops.hpp"

namespace llmc::runtime::onnx {

namespace {

Tensor widen(const Tensor& t) { return is_half(t.dtype()) ? t.to(DType::F32) : t; }

// y = op(x) element-wise, same dtype as x.
template <unsigned kinds, class Op>
void apply(OpContext& c, Op op) {
  const DType dt = c.in(0).dtype();
  const Tensor x = widen(c.in(0));
  Tensor y(x.dtype(), x.shape());
  dispatch<kinds>(x.dtype(), c.node, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = x.data<T>();
    T* q = y.mutable_data<T>();
    const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) q[i] = static_cast<T>(op(p[i]));
  });
  c.outputs[0] = is_half(dt) ? y.to(dt) : y;
}

template <unsigned kinds, class Op>
Kernel unary(Op op) {
  return [op](OpContext& c) { apply<kinds>(c, op); };
}

// y = pred(x) as bool.
template <class Pred>
void predicate(OpContext& c, Pred pred) {
  const Tensor x = widen(c.in(0));
  Tensor y(DType::Bool, x.shape());
  dispatch<kFloats>(x.dtype(), c.node, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = x.data<T>();
    bool* q = y.mutable_data<bool>();
    for (int64_t i = 0; i < x.numel(); ++i) q[i] = pred(p[i]);
  });
  c.outputs[0] = std::move(y);
}

// Clip: bounds from inputs 1 and 2 (opset 11+) or attributes min/max (opset 6); absent bounds
// are the type's limits.
void clip_kernel(OpContext& c) {
  const Node& n = c.node;
  const Tensor lo_t = c.has(1) ? widen(c.in(1)) : Tensor(), hi_t = c.has(2) ? widen(c.in(2)) : Tensor();
  for (const Tensor* b : {&lo_t, &hi_t})
    if (b->defined() && b->numel() != 1) throw Error(n.label() + ": min and max must be scalars");
  constexpr unsigned kinds = kFloats | kInts;
  dispatch<kinds>(widen(c.in(0)).dtype(), n, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T lo = std::numeric_limits<T>::lowest(), hi = std::numeric_limits<T>::max();
    if (lo_t.defined()) lo = lo_t.to(widen(c.in(0)).dtype()).template data<T>()[0];
    else if (n.has("min")) lo = static_cast<T>(n.f("min", 0));
    if (hi_t.defined()) hi = hi_t.to(widen(c.in(0)).dtype()).template data<T>()[0];
    else if (n.has("max")) hi = static_cast<T>(n.f("max", 0));
    apply<kinds>(c, [lo, hi](auto x) {
      using X = decltype(x);
      return std::isnan(static_cast<double>(x)) ? x : std::min(std::max(x, static_cast<X>(lo)), static_cast<X>(hi));
    });
  });
}

template <class T>
T sigmoid(T x) {
  // split by sign so that exp never overflows
  return x >= 0 ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
}

}  // namespace

void register_unary(KernelTable& t) {
  constexpr unsigned num = kFloats | kInts;
  auto key = [](const char* op) { return kernel_key("", op); };
  t[key("Abs")] = unary<num>([](auto x) {
    if constexpr (std::is_unsigned_v<decltype(x)>) return x;
    else return x < 0 ? wrap_sub(decltype(x)(0), x) : x;
  });
  t[key("Neg")] = unary<num>([](auto x) { return wrap_sub(decltype(x)(0), x); });
  t[key("Sign")] = unary<num>([](auto x) { return (x > 0) - (x < 0); });
  t[key("Exp")] = unary<kFloats>([](auto x) { return std::exp(x); });
  t[key("Log")] = unary<kFloats>([](auto x) { return std::log(x); });
  t[key("Sqrt")] = unary<kFloats>([](auto x) { return std::sqrt(x); });
  t[key("Reciprocal")] = unary<kFloats>([](auto x) { return decltype(x)(1) / x; });
  t[key("Erf")] = unary<kFloats>([](auto x) { return std::erf(x); });
  t[key("Tanh")] = unary<kFloats>([](auto x) { return std::tanh(x); });
  t[key("Sin")] = unary<kFloats>([](auto x) { return std::sin(x); });
  t[key("Cos")] = unary<kFloats>([](auto x) { return std::cos(x); });
  t[key("Floor")] = unary<kFloats>([](auto x) { return std::floor(x); });
  t[key("Ceil")] = unary<kFloats>([](auto x) { return std::ceil(x); });
  t[key("Round")] = unary<kFloats>([](auto x) { return std::nearbyint(x); });  // half to even
  t[key("Sigmoid")] = unary<kFloats>([](auto x) { return sigmoid(x); });
  t[key("Softsign")] = unary<kFloats>([](auto x) { return x / (decltype(x)(1) + std::fabs(x)); });
  t[key("Softplus")] = unary<kFloats>([](auto x) {
    return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
  });
  t[key("Relu")] = unary<num>([](auto x) { return x > 0 ? x : decltype(x)(0); });
  t[key("Not")] = unary<kBools>([](bool x) { return !x; });
  t[key("Identity")] = [](OpContext& c) { c.outputs[0] = c.in(0); };
  t[key("IsNaN")] = [](OpContext& c) { predicate(c, [](auto x) { return std::isnan(x); }); };
  t[key("IsInf")] = [](OpContext& c) {
    const bool neg = c.node.i("detect_negative", 1) != 0, pos = c.node.i("detect_positive", 1) != 0;
    predicate(c, [neg, pos](auto x) { return std::isinf(x) && ((x > 0 && pos) || (x < 0 && neg)); });
  };
  t[key("LeakyRelu")] = [](OpContext& c) {
    const double a = c.node.f("alpha", 0.01);
    apply<kFloats>(c, [a](auto x) { return x >= 0 ? x : static_cast<decltype(x)>(a * x); });
  };
  t[key("Elu")] = [](OpContext& c) {
    const double a = c.node.f("alpha", 1.0);
    apply<kFloats>(c, [a](auto x) { return x >= 0 ? x : static_cast<decltype(x)>(a * std::expm1(x)); });
  };
  t[key("Selu")] = [](OpContext& c) {
    const double a = c.node.f("alpha", 1.67326319217681884765625), g = c.node.f("gamma", 1.05070102214813232421875);
    apply<kFloats>(c, [a, g](auto x) { return static_cast<decltype(x)>(x > 0 ? g * x : g * a * std::expm1(x)); });
  };
  t[key("HardSigmoid")] = [](OpContext& c) {
    const double a = c.node.f("alpha", 0.2), b = c.node.f("beta", 0.5);
    apply<kFloats>(c, [a, b](auto x) { return static_cast<decltype(x)>(std::max(0.0, std::min(1.0, a * x + b))); });
  };
  t[key("HardSwish")] = unary<kFloats>([](auto x) {
    return static_cast<decltype(x)>(x * std::max(0.0, std::min(1.0, x / 6.0 + 0.5)));
  });
  t[key("Clip")] = clip_kernel;
  t[key("Tan")] = unary<kFloats>([](auto x) { return std::tan(x); });
  t[key("Asin")] = unary<kFloats>([](auto x) { return std::asin(x); });
  t[key("Acos")] = unary<kFloats>([](auto x) { return std::acos(x); });
  t[key("Atan")] = unary<kFloats>([](auto x) { return std::atan(x); });
  t[key("Sinh")] = unary<kFloats>([](auto x) { return std::sinh(x); });
  t[key("Cosh")] = unary<kFloats>([](auto x) { return std::cosh(x); });
  t[key("Asinh")] = unary<kFloats>([](auto x) { return std::asinh(x); });
  t[key("Acosh")] = unary<kFloats>([](auto x) { return std::acosh(x); });
  t[key("Atanh")] = unary<kFloats>([](auto x) { return std::atanh(x); });
  t[key("Celu")] = [](OpContext& c) {
    const double a = c.node.f("alpha", 1.0);
    apply<kFloats>(c, [a](auto x) { return static_cast<decltype(x)>(std::max(0.0, double(x)) + std::min(0.0, a * std::expm1(x / a))); });
  };
  t[key("ThresholdedRelu")] = [](OpContext& c) {
    const double a = c.node.f("alpha", 1.0);
    apply<kFloats>(c, [a](auto x) { return x > a ? x : decltype(x)(0); });
  };
  t[key("Shrink")] = [](OpContext& c) {
    const double l = c.node.f("lambd", 0.5), b = c.node.f("bias", 0.0);
    apply<num>(c, [l, b](auto x) {
      using X = decltype(x);
      return x < -l ? static_cast<X>(x + b) : x > l ? static_cast<X>(x - b) : X(0);
    });
  };
  // Dropout at inference (training_mode false, or ratio 0) passes the input through with an
  // all-true mask; training-mode dropout draws random masks, which a reference backend can't match.
  t[key("Dropout")] = [](OpContext& c) {
    const bool training = c.has(2) && c.in(2).i64_values().at(0) != 0;
    const double ratio = c.has(1) ? c.in(1).to(DType::F64).data<double>()[0] : c.node.f("ratio", 0.5);
    if (training && ratio != 0) throw Error(c.node.label() + ": training-mode Dropout (random masks) is not supported");
    c.outputs[0] = c.in(0);
    if (c.outputs.size() > 1) {
      Tensor mask(DType::Bool, c.in(0).shape());
      std::fill(mask.mutable_data<uint8_t>(), mask.mutable_data<uint8_t>() + mask.numel(), uint8_t{1});
      c.outputs[1] = std::move(mask);
    }
  };
}

}  // namespace llmc::runtime::onnx
