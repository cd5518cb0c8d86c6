// ONNX quantization ops: QuantizeLinear, DequantizeLinear (per tensor or per axis),
// DynamicQuantizeLinear, MatMulInteger and QLinearMatMul (u8/i8 operands, i32 accumulation).
#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/ops/onnx_ops.hpp"

namespace llmc::runtime::onnx {

namespace {

// Per-element parameter index for a scale/zero point that is a scalar or 1-D along `axis`.
struct PerAxis {
  int64_t inner = 1, len = 1;
  bool scalar = true;
  int64_t at(int64_t i) const { return scalar ? 0 : (i / inner) % len; }
};

PerAxis per_axis(const Tensor& x, const Tensor& scale, const Node& n) {
  PerAxis p;
  if (scale.numel() == 1 && scale.rank() <= 1) return p;
  if (scale.rank() != 1) throw Error(n.label() + ": scale must be a scalar or 1-D, got " + shape_str(scale.shape()));
  const int64_t axis = norm_axis(n.i("axis", 1), x.rank(), n);
  if (scale.dim(0) != x.shape()[axis])
    throw Error(n.label() + ": scale has " + std::to_string(scale.dim(0)) + " entries for axis " + std::to_string(axis) + " of size " + std::to_string(x.shape()[axis]));
  p.scalar = false;
  p.len = scale.dim(0);
  for (int64_t i = axis + 1; i < x.rank(); ++i) p.inner *= x.shape()[i];
  return p;
}

// y = saturate(round_half_even(x / scale) + zero_point), computed in f32 as the spec's reference.
void quantize_kernel(OpContext& c) {
  const Node& n = c.node;
  const Tensor x = c.in(0).to_f32(), scale = c.in(1).to_f32();
  const DType qt = c.has(2) ? c.in(2).dtype() : DType::U8;
  const PerAxis pa = per_axis(x, scale, n);
  const auto zp = c.has(2) ? c.in(2).i64_values() : std::vector<int64_t>(scale.numel(), 0);
  Tensor y(qt, x.shape());
  dispatch<kInts>(qt, n, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (sizeof(T) != 1) {
      unsupported_dtype(n, qt, "zero point");
    } else {
      const float* p = x.data<float>();
      T* q = y.mutable_data<T>();
      const float lo = std::numeric_limits<T>::min(), hi = std::numeric_limits<T>::max();
      for (int64_t i = 0; i < x.numel(); ++i) {
        const int64_t k = pa.at(i);
        const float v = std::nearbyint(p[i] / scale.data<float>()[k]) + static_cast<float>(zp[k]);
        q[i] = static_cast<T>(std::clamp(v, lo, hi));
      }
    }
  });
  c.outputs[0] = std::move(y);
}

// y = (x - zero_point) · scale.
void dequantize_kernel(OpContext& c) {
  const Node& n = c.node;
  const Tensor& x = c.in(0);
  const Tensor scale = c.in(1).to_f32();
  const PerAxis pa = per_axis(x, scale, n);
  const auto zp = c.has(2) ? c.in(2).i64_values() : std::vector<int64_t>(scale.numel(), 0);
  if (c.has(2) && c.in(2).dtype() != x.dtype())
    throw Error(n.label() + ": zero point dtype " + dtype_name(c.in(2).dtype()) + " differs from input " + dtype_name(x.dtype()));
  Tensor y(DType::F32, x.shape());
  float* q = y.mutable_data<float>();
  dispatch<kInts>(x.dtype(), n, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = x.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int64_t k = pa.at(i);
      q[i] = static_cast<float>(static_cast<int64_t>(p[i]) - zp[k]) * scale.data<float>()[k];
    }
  });
  c.outputs[0] = std::move(y);
}

// Uint8 asymmetric quantization over the range [min(0, min x), max(0, max x)].
void dynamic_quantize_kernel(OpContext& c) {
  const Tensor x = c.in(0).to_f32();
  const float* p = x.data<float>();
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < x.numel(); ++i) lo = std::min(lo, p[i]), hi = std::max(hi, p[i]);
  const float scale = (hi - lo) / 255.0f;
  const float zp = scale == 0 ? 0.0f : std::clamp(std::nearbyint(0.0f - lo / scale), 0.0f, 255.0f);
  Tensor y(DType::U8, x.shape());
  uint8_t* q = y.mutable_data<uint8_t>();
  for (int64_t i = 0; i < x.numel(); ++i)
    q[i] = scale == 0 ? static_cast<uint8_t>(zp) : static_cast<uint8_t>(std::clamp(std::nearbyint(p[i] / scale) + zp, 0.0f, 255.0f));
  c.outputs[0] = std::move(y);
  if (c.outputs.size() > 1) c.outputs[1] = Tensor::scalar_f32(scale);
  if (c.outputs.size() > 2) {
    Tensor z(DType::U8, {});
    z.mutable_data<uint8_t>()[0] = static_cast<uint8_t>(zp);
    c.outputs[2] = std::move(z);
  }
}

// Zero point of an operand: scalar, or one per row of A (M) / per column of B (N).
std::vector<int32_t> zero_points(const OpContext& c, size_t idx, int64_t count, const Tensor& of) {
  std::vector<int32_t> z(count, 0);
  if (!c.has(idx)) return z;
  const Tensor& t = c.in(idx);
  if (t.dtype() != of.dtype()) throw Error(c.node.label() + ": zero point dtype " + dtype_name(t.dtype()) + " differs from its operand " + dtype_name(of.dtype()));
  const auto v = t.i64_values();
  if (v.size() == 1) std::fill(z.begin(), z.end(), static_cast<int32_t>(v[0]));
  else if (static_cast<int64_t>(v.size()) == count) std::copy(v.begin(), v.end(), z.begin());
  else throw Error(c.node.label() + ": zero point " + shape_str(t.shape()) + " is neither a scalar nor " + std::to_string(count) + " values");
  return z;
}

// Y[..., m, n] = Σ_k (A[..., m, k] − a_zp) (B[..., k, n] − b_zp) in int32, numpy batch broadcasting.
Tensor matmul_integer(const OpContext& c, const Tensor& a0, const Tensor& b0, size_t azp_idx, size_t bzp_idx) {
  const Node& nd = c.node;
  for (const Tensor* t : {&a0, &b0})
    if (t->dtype() != DType::U8 && t->dtype() != DType::I8) unsupported_dtype(nd, t->dtype(), "operand");
  Tensor a = a0.rank() == 1 ? a0.reshaped({1, a0.dim(0)}) : a0;
  Tensor b = b0.rank() == 1 ? b0.reshaped({b0.dim(0), 1}) : b0;
  const int64_t m = a.dim(-2), k = a.dim(-1), n = b.dim(-1);
  if (b.dim(-2) != k) throw Error(nd.label() + ": inner dimensions differ: " + shape_str(a0.shape()) + " x " + shape_str(b0.shape()));
  const auto az = zero_points(c, azp_idx, m, a0), bz = zero_points(c, bzp_idx, n, b0);
  const Shape abatch(a.shape().begin(), a.shape().end() - 2), bbatch(b.shape().begin(), b.shape().end() - 2);
  const Shape batch = broadcast_shapes({&abatch, &bbatch}, nd);
  Shape os = batch;
  if (a0.rank() != 1) os.push_back(m);
  if (b0.rank() != 1) os.push_back(n);
  Tensor y(DType::I32, os);
  int32_t* py = y.mutable_data<int32_t>();
  auto load = [](const Tensor& t, int64_t i) -> int32_t {
    return t.dtype() == DType::U8 ? t.data<uint8_t>()[i] : t.data<int8_t>()[i];
  };
  std::vector<int32_t> arow(k);
  broadcast_loop<2>(batch, {broadcast_strides(abatch, batch), broadcast_strides(bbatch, batch)},
                    [&](int64_t o, const auto& off, const auto& st, int64_t len) {
                      for (int64_t bi = 0; bi < len; ++bi) {
                        const int64_t ao = (off[0] + bi * st[0]) * m * k, bo = (off[1] + bi * st[1]) * k * n;
                        int32_t* out = py + (o + bi) * m * n;
                        for (int64_t i = 0; i < m; ++i) {
                          for (int64_t p = 0; p < k; ++p) arow[p] = load(a, ao + i * k + p) - az[i];
                          for (int64_t j = 0; j < n; ++j) {
                            int32_t s = 0;
                            for (int64_t p = 0; p < k; ++p) s += arow[p] * (load(b, bo + p * n + j) - bz[j]);
                            out[i * n + j] = s;
                          }
                        }
                      }
                    });
  return y;
}

// QLinearMatMul: integer product of (a − a_zp)(b − b_zp), requantized with a_scale·b_scale/y_scale.
void qlinear_matmul_kernel(OpContext& c) {
  const Node& n = c.node;
  for (size_t i : {1u, 4u, 6u})
    if (c.in(i).numel() != 1) throw Error(n.label() + ": only per-tensor scales are supported");
  const Tensor acc = matmul_integer(c, c.in(0), c.in(3), 2, 5);
  const float s = c.in(1).to_f32().data<float>()[0] * c.in(4).to_f32().data<float>()[0] / c.in(6).to_f32().data<float>()[0];
  const Tensor& yzp = c.in(7);
  const float zp = static_cast<float>(yzp.i64_values()[0]);
  Tensor y(yzp.dtype(), acc.shape());
  const float lo = yzp.dtype() == DType::U8 ? 0.0f : -128.0f, hi = yzp.dtype() == DType::U8 ? 255.0f : 127.0f;
  for (int64_t i = 0; i < acc.numel(); ++i) {
    const float v = std::clamp(std::nearbyint(static_cast<float>(acc.data<int32_t>()[i]) * s) + zp, lo, hi);
    if (yzp.dtype() == DType::U8) y.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(v);
    else y.mutable_data<int8_t>()[i] = static_cast<int8_t>(v);
  }
  c.outputs[0] = std::move(y);
}

}  // namespace

void register_quant_ops(KernelTable& t) {
  t[kernel_key("", "QuantizeLinear")] = quantize_kernel;
  t[kernel_key("", "DequantizeLinear")] = dequantize_kernel;
  t[kernel_key("", "DynamicQuantizeLinear")] = dynamic_quantize_kernel;
  t[kernel_key("", "MatMulInteger")] = [](OpContext& c) { c.outputs[0] = matmul_integer(c, c.in(0), c.in(1), 2, 3); };
  t[kernel_key("", "QLinearMatMul")] = qlinear_matmul_kernel;
}

}  // namespace llmc::runtime::onnx
