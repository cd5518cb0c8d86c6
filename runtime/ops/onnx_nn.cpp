// ONNX linear-algebra and normalisation ops: MatMul (numpy batch broadcasting), Gemm,
// Softmax/LogSoftmax/Hardmax (opset 13 single-axis form), LayerNormalization (opset 17),
// Gelu (opset 20) and Einsum.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>

#include "kernels/cpu/dense.hpp"
#include "runtime/ops/onnx_ops.hpp"

namespace llmc::runtime::onnx {

namespace {

namespace kc = llmc::kernels::cpu;

Tensor widen(const Tensor& t) { return is_half(t.dtype()) ? t.to(DType::F32) : t; }

// c[m, n] = a[m, k] · b[k, n] for one matrix; f32 goes to Eigen, other types accumulate in T
// (integer MatMul wraps as ONNX Runtime's does).
template <class T>
void gemm_plain(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k) {
  if constexpr (std::is_same_v<T, float>) {
    kc::matmul_f32(a, b, c, m, n, k);
  } else {
    std::fill(c, c + m * n, T(0));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t p = 0; p < k; ++p) {
        const T av = a[i * k + p];
        for (int64_t j = 0; j < n; ++j) c[i * n + j] = wrap_add(c[i * n + j], wrap_mul(av, b[p * n + j]));
      }
  }
}

void matmul_kernel(OpContext& c) {
  const Node& nd = c.node;
  const Tensor& a0 = c.in(0);
  const Tensor& b0 = c.in(1);
  if (a0.dtype() != b0.dtype())
    throw Error(nd.label() + ": input dtypes differ (" + dtype_name(a0.dtype()) + " vs " + dtype_name(b0.dtype()) + ")");
  if (a0.rank() == 0 || b0.rank() == 0) throw Error(nd.label() + ": MatMul inputs must have rank >= 1");
  const DType dt = a0.dtype();
  Tensor a = widen(a0), b = widen(b0);
  // numpy.matmul: a 1-D left operand is a row vector, a 1-D right operand a column vector; the
  // added dimension is dropped from the result.
  const bool a_vec = a.rank() == 1, b_vec = b.rank() == 1;
  if (a_vec) a = a.reshaped({1, a.dim(0)});
  if (b_vec) b = b.reshaped({b.dim(0), 1});
  const int64_t m = a.dim(-2), k = a.dim(-1), n = b.dim(-1);
  if (b.dim(-2) != k)
    throw Error(nd.label() + ": inner dimensions differ: " + shape_str(a0.shape()) + " x " + shape_str(b0.shape()));
  const Shape abatch(a.shape().begin(), a.shape().end() - 2), bbatch(b.shape().begin(), b.shape().end() - 2);
  const Shape batch = broadcast_shapes({&abatch, &bbatch}, nd);
  Shape os = batch;
  if (!a_vec) os.push_back(m);
  if (!b_vec) os.push_back(n);
  Tensor out(a.dtype(), os);
  dispatch<kFloats | kInts>(a.dtype(), nd, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out.mutable_data<T>();
    if (shape_numel(bbatch) == 1) {  // one right matrix: fold a's batch into its rows
      gemm_plain(pa, pb, po, shape_numel(batch) * m, n, k);
      return;
    }
    broadcast_loop<2>(batch, {broadcast_strides(abatch, batch), broadcast_strides(bbatch, batch)},
                      [&](int64_t o, const auto& off, const auto& st, int64_t len) {
                        for (int64_t i = 0; i < len; ++i)
                          gemm_plain(pa + (off[0] + i * st[0]) * m * k, pb + (off[1] + i * st[1]) * k * n,
                                     po + (o + i) * m * n, m, n, k);
                      });
  });
  c.outputs[0] = is_half(dt) ? out.to(dt) : out;
}

// Gemm: Y = alpha · A' · B' + beta · C, A' = transA ? Aᵀ : A, C broadcast to [M, N].
void gemm_kernel(OpContext& c) {
  const Node& nd = c.node;
  const DType dt = c.in(0).dtype();
  Tensor a = widen(c.in(0)), b = widen(c.in(1));
  if (a.rank() != 2 || b.rank() != 2) throw Error(nd.label() + ": A and B must be 2-D");
  const bool ta = nd.i("transA", 0) != 0, tb = nd.i("transB", 0) != 0;
  const double alpha = nd.f("alpha", 1.0), beta = nd.f("beta", 1.0);
  const int64_t m = ta ? a.dim(1) : a.dim(0), k = ta ? a.dim(0) : a.dim(1);
  const int64_t n = tb ? b.dim(0) : b.dim(1);
  if ((tb ? b.dim(1) : b.dim(0)) != k)
    throw Error(nd.label() + ": inner dimensions differ: A " + shape_str(a.shape()) + ", B " + shape_str(b.shape()));
  Tensor out(a.dtype(), {m, n});
  dispatch<kFloats | kInts>(a.dtype(), nd, [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto transposed = [](const Tensor& x) {
      Tensor r(x.dtype(), {x.dim(1), x.dim(0)});
      const T* s = x.data<T>();
      T* d = r.mutable_data<T>();
      for (int64_t i = 0; i < x.dim(0); ++i)
        for (int64_t j = 0; j < x.dim(1); ++j) d[j * x.dim(0) + i] = s[i * x.dim(1) + j];
      return r;
    };
    const Tensor A = ta ? transposed(a) : a, B = tb ? transposed(b) : b;
    T* y = out.mutable_data<T>();
    gemm_plain(A.data<T>(), B.data<T>(), y, m, n, k);
    if (alpha != 1.0)
      for (int64_t i = 0; i < m * n; ++i) y[i] = wrap_mul(y[i], static_cast<T>(alpha));
    if (c.has(2) && beta != 0.0) {
      const Tensor cc = broadcast_to(widen(c.in(2)), {m, n}, nd);
      if (cc.shape() != Shape{m, n}) throw Error(nd.label() + ": C " + shape_str(c.in(2).shape()) + " does not broadcast to [M, N]");
      const T* pc = cc.data<T>();
      for (int64_t i = 0; i < m * n; ++i) y[i] = wrap_add(y[i], wrap_mul(static_cast<T>(beta), pc[i]));
    }
  });
  c.outputs[0] = is_half(dt) ? out.to(dt) : out;
}

enum class SoftKind { Softmax, LogSoftmax, Hardmax };

// Softmax family over one axis (opset 13 semantics): viewed as [outer, len, inner].
template <class T>
void softmax_axis(const T* x, T* y, int64_t outer, int64_t len, int64_t inner, SoftKind kind) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      const T* xs = x + o * len * inner + in;
      T* ys = y + o * len * inner + in;
      T mx = -std::numeric_limits<T>::infinity();
      int64_t arg = 0;
      for (int64_t i = 0; i < len; ++i)
        if (xs[i * inner] > mx) mx = xs[i * inner], arg = i;
      if (kind == SoftKind::Hardmax) {
        for (int64_t i = 0; i < len; ++i) ys[i * inner] = i == arg ? T(1) : T(0);
        continue;
      }
      T sum = 0;
      for (int64_t i = 0; i < len; ++i) sum += std::exp(xs[i * inner] - mx);
      for (int64_t i = 0; i < len; ++i)
        ys[i * inner] = kind == SoftKind::Softmax ? std::exp(xs[i * inner] - mx) / sum : xs[i * inner] - mx - std::log(sum);
    }
}

Kernel softmax_like(SoftKind kind) {
  return [kind](OpContext& c) {
    const Node& nd = c.node;
    const DType dt = c.in(0).dtype();
    const Tensor x = widen(c.in(0));
    const int64_t r = x.rank();
    const int64_t axis = norm_axis(nd.i("axis", -1), r, nd);
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= x.dim(static_cast<int>(i));
    for (int64_t i = axis + 1; i < r; ++i) inner *= x.dim(static_cast<int>(i));
    const int64_t len = r ? x.dim(static_cast<int>(axis)) : 1;
    Tensor y(x.dtype(), x.shape());
    dispatch<kFloats>(x.dtype(), nd, [&](auto tag) {
      using T = typename decltype(tag)::type;
      if constexpr (std::is_same_v<T, float>) {
        if (kind == SoftKind::Softmax && inner == 1) {
          std::copy(x.data<float>(), x.data<float>() + x.numel(), y.mutable_data<float>());
          kc::softmax_rows(y.mutable_data<float>(), outer, len);
          return;
        }
      }
      softmax_axis(x.data<T>(), y.mutable_data<T>(), outer, len, inner, kind);
    });
    c.outputs[0] = is_half(dt) ? y.to(dt) : y;
  };
}

// LayerNormalization (opset 17): normalise over dimensions axis..rank-1, statistics in f32 or
// wider (stash_type 1); optional outputs Mean and InvStdDev keep the reduced dims as 1.
void layer_norm_kernel(OpContext& c) {
  const Node& nd = c.node;
  const DType dt = c.in(0).dtype();
  const Tensor x = widen(c.in(0));
  const int64_t r = x.rank();
  const int64_t axis = norm_axis(nd.i("axis", -1), r, nd);
  const double eps = nd.f("epsilon", 1e-5);
  Shape norm_shape(x.shape().begin() + axis, x.shape().end()), stat_shape = x.shape();
  for (int64_t i = axis; i < r; ++i) stat_shape[i] = 1;
  const int64_t d = shape_numel(norm_shape), rows = d ? x.numel() / d : 0;
  const Tensor scale = broadcast_to(widen(c.in(1)).to(x.dtype()), norm_shape, nd);
  const Tensor bias = c.has(2) ? broadcast_to(widen(c.in(2)).to(x.dtype()), norm_shape, nd) : Tensor();
  if (scale.shape() != norm_shape || (bias.defined() && bias.shape() != norm_shape))
    throw Error(nd.label() + ": scale/bias do not broadcast to the normalised shape " + shape_str(norm_shape));
  Tensor y(x.dtype(), x.shape());
  const DType sdt = x.dtype() == DType::F64 ? DType::F64 : DType::F32;
  Tensor mean(sdt, stat_shape), inv(sdt, stat_shape);
  dispatch<kFloats>(x.dtype(), nd, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    const T* pw = scale.data<T>();
    const T* pb = bias.defined() ? bias.data<T>() : nullptr;
    T* py = y.mutable_data<T>();
    T* pm = mean.mutable_data<T>();
    T* pi = inv.mutable_data<T>();
    for (int64_t row = 0; row < rows; ++row) {
      const T* xr = px + row * d;
      double mu = 0, var = 0;
      for (int64_t i = 0; i < d; ++i) mu += xr[i];
      mu /= static_cast<double>(d);
      for (int64_t i = 0; i < d; ++i) var += (xr[i] - mu) * (xr[i] - mu);
      var /= static_cast<double>(d);
      const double is = 1.0 / std::sqrt(var + eps);
      for (int64_t i = 0; i < d; ++i)
        py[row * d + i] = static_cast<T>((xr[i] - mu) * is * pw[i] + (pb ? pb[i] : T(0)));
      pm[row] = static_cast<T>(mu);
      pi[row] = static_cast<T>(is);
    }
  });
  c.outputs[0] = is_half(dt) ? y.to(dt) : y;
  if (c.outputs.size() > 1) c.outputs[1] = mean;
  if (c.outputs.size() > 2) c.outputs[2] = inv;
}

// Gelu (opset 20): approximate "none" (erf) or "tanh"; f32 through the dense kernel.
void gelu_kernel(OpContext& c) {
  const std::string approx = c.node.s("approximate", "none");
  if (approx != "none" && approx != "tanh") throw Error(c.node.label() + ": approximate must be 'none' or 'tanh'");
  const DType dt = c.in(0).dtype();
  if (!is_float(dt)) unsupported_dtype(c.node, dt, "input");
  const Tensor x = c.in(0).to(dt == DType::F64 ? DType::F64 : DType::F32);
  Tensor y(x.dtype(), x.shape());
  if (x.dtype() == DType::F32) {
    kc::gelu(x.data<float>(), y.mutable_data<float>(), x.numel(), approx == "tanh");
  } else {
    const double* p = x.data<double>();
    double* q = y.mutable_data<double>();
    for (int64_t i = 0; i < x.numel(); ++i)
      q[i] = approx == "tanh" ? 0.5 * p[i] * (1 + std::tanh(std::sqrt(2 / M_PI) * (p[i] + 0.044715 * p[i] * p[i] * p[i])))
                              : 0.5 * p[i] * (1 + std::erf(p[i] / std::sqrt(2.0)));
  }
  c.outputs[0] = y.dtype() == dt ? y : y.to(dt);
}

// Einsum: every index letter (and the ellipsis' broadcast dimensions) gets one loop; the output
// sums over the letters it does not keep. Implicit output: letters used once, alphabetically,
// after the ellipsis dimensions.
void einsum_kernel(OpContext& c) {
  const Node& nd = c.node;
  std::string eq;
  for (char ch : nd.s("equation", "")) if (ch != ' ') eq += ch;
  const size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> terms(1);
  for (char ch : lhs) {
    if (ch == ',') terms.emplace_back();
    else terms.back().push_back(ch);
  }
  if (terms.size() != c.num_inputs()) throw Error(nd.label() + ": equation '" + eq + "' has " + std::to_string(terms.size()) + " operands for " + std::to_string(c.num_inputs()) + " inputs");
  // ellipsis dimensions become the letters '0', '1', ... (never valid index letters)
  int64_t ell = 0;
  for (size_t t = 0; t < terms.size(); ++t) {
    const size_t at = terms[t].find("...");
    if (at != std::string::npos) ell = std::max<int64_t>(ell, c.in(t).rank() - static_cast<int64_t>(terms[t].size() - 3));
  }
  std::string ell_letters;
  for (int64_t i = 0; i < ell; ++i) ell_letters.push_back(static_cast<char>('0' + i));
  auto expand = [&](std::string term, int64_t rank) {
    const size_t at = term.find("...");
    if (at != std::string::npos) term.replace(at, 3, ell_letters.substr(ell - (rank - static_cast<int64_t>(term.size() - 3))));
    return term;
  };
  std::map<char, int64_t> size;
  std::map<char, int> uses;
  for (size_t t = 0; t < terms.size(); ++t) {
    terms[t] = expand(terms[t], c.in(t).rank());
    if (static_cast<int>(terms[t].size()) != c.in(t).rank()) throw Error(nd.label() + ": operand " + std::to_string(t) + " has rank " + std::to_string(c.in(t).rank()) + ", equation term '" + terms[t] + "'");
    for (int i = 0; i < c.in(t).rank(); ++i) {
      const char ch = terms[t][i];
      const int64_t d = c.in(t).shape()[i];
      auto it = size.find(ch);
      if (it == size.end() || it->second == 1) size[ch] = d;
      else if (d != 1 && d != it->second) throw Error(nd.label() + ": index '" + std::string(1, ch) + "' has sizes " + std::to_string(it->second) + " and " + std::to_string(d));
      ++uses[ch];
    }
  }
  std::string out;
  if (arrow != std::string::npos) {
    out = eq.substr(arrow + 2);
    const size_t at = out.find("...");
    if (at != std::string::npos) out.replace(at, 3, ell_letters);
  } else {
    out = ell_letters;
    for (auto& [ch, n] : uses)
      if (n == 1 && std::isalpha(static_cast<unsigned char>(ch))) out.push_back(ch);
  }
  std::string letters = out;  // output letters first, then the summed ones
  for (auto& [ch, n] : size)
    if (out.find(ch) == std::string::npos) letters.push_back(ch);
  Shape os, all;
  for (char ch : out) {
    if (!size.count(ch)) throw Error(nd.label() + ": output index '" + std::string(1, ch) + "' appears in no operand");
    os.push_back(size[ch]);
  }
  for (char ch : letters) all.push_back(size[ch]);
  const DType dt = c.in(0).dtype();
  std::vector<Tensor> ins;
  for (size_t t = 0; t < c.num_inputs(); ++t) ins.push_back(is_half(c.in(t).dtype()) ? c.in(t).to(DType::F32) : c.in(t));
  Tensor y(ins[0].dtype(), os);
  dispatch<kFloats | kInts>(ins[0].dtype(), nd, [&](auto tag) {
    using T = typename decltype(tag)::type;
    // stride of each loop letter in each operand (0 where absent or broadcast)
    std::vector<std::vector<int64_t>> st(ins.size(), std::vector<int64_t>(letters.size(), 0));
    for (size_t t = 0; t < ins.size(); ++t) {
      int64_t s = 1;
      for (int i = ins[t].rank() - 1; i >= 0; --i) {
        if (ins[t].shape()[i] != 1) st[t][letters.find(terms[t][i])] += s;
        s *= ins[t].shape()[i];
      }
    }
    const int64_t total = shape_numel(all), inner = shape_numel(all) / std::max<int64_t>(shape_numel(os), 1);
    T* q = y.mutable_data<T>();
    std::vector<int64_t> idx(letters.size(), 0);
    for (int64_t flat = 0; flat < total; ++flat) {
      T prod = 1;
      for (size_t t = 0; t < ins.size(); ++t) {
        int64_t off = 0;
        for (size_t l = 0; l < letters.size(); ++l) off += idx[l] * st[t][l];
        prod = wrap_mul(prod, ins[t].data<T>()[off]);
      }
      q[flat / inner] = wrap_add(q[flat / inner], prod);
      for (size_t l = letters.size(); l-- > 0;) {
        if (++idx[l] < all[l]) break;
        idx[l] = 0;
      }
    }
  });
  c.outputs[0] = is_half(dt) ? y.to(dt) : y;
}

}  // namespace

void register_nn_ops(KernelTable& t) {
  t[kernel_key("", "Gelu")] = gelu_kernel;
  t[kernel_key("", "Einsum")] = einsum_kernel;
  t[kernel_key("", "MatMul")] = matmul_kernel;
  t[kernel_key("", "Gemm")] = gemm_kernel;
  t[kernel_key("", "Softmax")] = softmax_like(SoftKind::Softmax);
  t[kernel_key("", "LogSoftmax")] = softmax_like(SoftKind::LogSoftmax);
  t[kernel_key("", "Hardmax")] = softmax_like(SoftKind::Hardmax);
  t[kernel_key("", "LayerNormalization")] = layer_norm_kernel;
}

}  // namespace llmc::runtime::onnx
