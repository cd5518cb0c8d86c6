// CPU kernels of the fused `llmc` ops (docs/design.md lists them with their attributes).
#include <cmath>
#include <cstring>

#include "kernels/cpu/dense.hpp"
#include "runtime/kernel_registry.hpp"

namespace llmc::runtime {

namespace kc = llmc::kernels::cpu;

namespace {

const Tensor& f32_input(OpContext& c, size_t i) {
  const Tensor& t = c.in(i);
  if (t.dtype() != DType::F32)
    throw Error(c.node.label() + ": input " + std::to_string(i) + " is " + dtype_name(t.dtype()) + ", expected F32");
  return t;
}

// Rows × last dimension view of an activation.
std::pair<int64_t, int64_t> rows_cols(const Tensor& t) {
  int64_t d = t.rank() ? t.dim(-1) : 1;
  return {d ? t.numel() / d : 0, d};
}

void embedding(OpContext& c) {
  const Tensor& table = f32_input(c, 0);
  const Tensor& ids = c.in(1);
  check(table.rank() == 2, c.node.label() + ": table must be 2-D, got " + shape_str(table.shape()));
  const int64_t vocab = table.dim(0), d = table.dim(1);
  auto idv = ids.i64_values();
  Shape out_shape = ids.shape();
  out_shape.push_back(d);
  Tensor out(DType::F32, out_shape);
  for (size_t i = 0; i < idv.size(); ++i) {
    if (idv[i] < 0 || idv[i] >= vocab)
      throw Error(c.node.label() + ": token id " + std::to_string(idv[i]) + " outside the vocabulary of " +
                  std::to_string(vocab));
    std::memcpy(out.mutable_data<float>() + i * d, table.data<float>() + idv[i] * d, d * 4);
  }
  c.outputs[0] = std::move(out);
}

void positions(OpContext& c) {
  const int64_t t = c.in(0).dim(-1);
  Tensor out(DType::I64, {t});
  for (int64_t i = 0; i < t; ++i) out.mutable_data<int64_t>()[i] = c.past + i;
  c.outputs[0] = std::move(out);
}

void linear(OpContext& c) {
  const Tensor& x = f32_input(c, 0);
  const Tensor& w = f32_input(c, 1);
  check(w.rank() == 2, c.node.label() + ": weight must be 2-D [out, in], got " + shape_str(w.shape()));
  auto [m, k] = rows_cols(x);
  check(k == w.dim(1), c.node.label() + ": input has " + std::to_string(k) + " features, weight expects " +
                           std::to_string(w.dim(1)));
  const float* bias = nullptr;
  if (c.has(2)) {
    bias = f32_input(c, 2).data<float>();
    check(c.in(2).numel() == w.dim(0), c.node.label() + ": bias length does not match the weight's rows");
  }
  Shape os = x.shape();
  os.back() = w.dim(0);
  Tensor y(DType::F32, os);
  kc::linear_f32(x.data<float>(), w.data<float>(), bias, y.mutable_data<float>(), m, w.dim(0), k);
  c.outputs[0] = std::move(y);
}

void rms_norm(OpContext& c) {
  const Tensor& x = f32_input(c, 0);
  auto [rows, d] = rows_cols(x);
  check(c.in(1).numel() == d, c.node.label() + ": weight length does not match the hidden size");
  Tensor y(DType::F32, x.shape());
  kc::rms_norm(x.data<float>(), f32_input(c, 1).data<float>(), y.mutable_data<float>(), rows, d,
               static_cast<float>(c.node.f("epsilon", 1e-6)));
  c.outputs[0] = std::move(y);
}

void layer_norm(OpContext& c) {
  const Tensor& x = f32_input(c, 0);
  auto [rows, d] = rows_cols(x);
  check(c.in(1).numel() == d, c.node.label() + ": weight length does not match the hidden size");
  Tensor y(DType::F32, x.shape());
  kc::layer_norm(x.data<float>(), f32_input(c, 1).data<float>(), c.has(2) ? f32_input(c, 2).data<float>() : nullptr,
                 y.mutable_data<float>(), rows, d, static_cast<float>(c.node.f("epsilon", 1e-5)));
  c.outputs[0] = std::move(y);
}

void rotary(OpContext& c) {
  const Tensor& x = f32_input(c, 0);
  const int64_t heads = c.node.i("num_heads"), hd = c.node.i("head_dim");
  auto [t, d] = rows_cols(x);
  check(d == heads * hd, c.node.label() + ": width " + std::to_string(d) + " != num_heads x head_dim");
  Tensor y = x.clone();
  kc::rotary(y.mutable_data<float>(), t, heads, hd, c.node.i("rotary_dim", hd), c.past, c.node.f("theta", 10000.0),
             c.node.i("neox", 1) != 0);
  c.outputs[0] = std::move(y);
}

// The KV cache of one Attention node: [capacity, hkv, d] for K and V, `len` positions filled.
struct KvCache {
  std::vector<float> k, v;
  int64_t len = 0;
};

void attention(OpContext& c) {
  const Tensor& q = f32_input(c, 0);
  const Tensor& k = f32_input(c, 1);
  const Tensor& v = f32_input(c, 2);
  const int64_t hq = c.node.i("num_heads"), hkv = c.node.i("num_kv_heads", hq), d = c.node.i("head_dim");
  check(hkv > 0 && hq % hkv == 0, c.node.label() + ": num_heads must be a multiple of num_kv_heads");
  auto [t, qw] = rows_cols(q);
  check(qw == hq * d, c.node.label() + ": query width does not match num_heads x head_dim");
  check(rows_cols(k).second == hkv * d && rows_cols(v).second == hkv * d && rows_cols(k).first == t,
        c.node.label() + ": key/value shapes do not match num_kv_heads x head_dim");
  const float scale = static_cast<float>(c.node.f("scale", 1.0 / std::sqrt(static_cast<double>(d))));
  const bool causal = c.node.i("causal", 1) != 0;
  Tensor out(DType::F32, q.shape());
  if (c.node.i("kv_cache", 0)) {
    if (!c.state.has_value()) c.state = KvCache{};
    auto& cache = std::any_cast<KvCache&>(c.state);
    check(cache.len == c.past, c.node.label() + ": KV cache holds " + std::to_string(cache.len) +
                                   " positions but the session is at " + std::to_string(c.past));
    const size_t row = static_cast<size_t>(hkv * d);
    cache.k.resize((cache.len + t) * row);
    cache.v.resize((cache.len + t) * row);
    std::memcpy(cache.k.data() + cache.len * row, k.data<float>(), t * row * 4);
    std::memcpy(cache.v.data() + cache.len * row, v.data<float>(), t * row * 4);
    cache.len += t;
    kc::attention(q.data<float>(), cache.k.data(), cache.v.data(), out.mutable_data<float>(), t, cache.len, hq, hkv, d,
                  scale, causal);
  } else {
    kc::attention(q.data<float>(), k.data<float>(), v.data<float>(), out.mutable_data<float>(), t, t, hq, hkv, d,
                  scale, causal);
  }
  c.outputs[0] = std::move(out);
}

void swiglu(OpContext& c) {
  const Tensor& g = f32_input(c, 0);
  const Tensor& u = f32_input(c, 1);
  check(g.shape() == u.shape(), c.node.label() + ": gate and up shapes differ");
  Tensor y(DType::F32, g.shape());
  kc::swiglu(g.data<float>(), u.data<float>(), y.mutable_data<float>(), g.numel());
  c.outputs[0] = std::move(y);
}

void gelu(OpContext& c) {
  const Tensor& x = f32_input(c, 0);
  std::string approx = c.node.s("approximate", "none");
  check(approx == "none" || approx == "tanh", c.node.label() + ": approximate must be 'none' or 'tanh'");
  Tensor y(DType::F32, x.shape());
  kc::gelu(x.data<float>(), y.mutable_data<float>(), x.numel(), approx == "tanh");
  c.outputs[0] = std::move(y);
}

}  // namespace

void register_fused_ops(KernelTable& t) {
  t[kernel_key("llmc", "Embedding")] = embedding;
  t[kernel_key("llmc", "Positions")] = positions;
  t[kernel_key("llmc", "Linear")] = linear;
  t[kernel_key("llmc", "RMSNorm")] = rms_norm;
  t[kernel_key("llmc", "LayerNorm")] = layer_norm;
  t[kernel_key("llmc", "Rotary")] = rotary;
  t[kernel_key("llmc", "Attention")] = attention;
  t[kernel_key("llmc", "SwiGLU")] = swiglu;
  t[kernel_key("llmc", "Gelu")] = gelu;
}

}  // namespace llmc::runtime
