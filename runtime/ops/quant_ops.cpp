// CPU kernels over compressed weights from Graph::quantized (attribute `weight` names one):
// `llmc::LinearQ` (inputs x, bias (optional); act "none": f32 activations, "dynamic": int8 per
// token, "static": int8 with the per-tensor act_scale) and `llmc::EmbeddingQ` (input ids [T]:
// rows of the table gathered and dequantized to f32 [T, cols]).
#include "kernels/cpu/quant_gemm.hpp"
#include "runtime/kernel_registry.hpp"

namespace llmc::runtime {

namespace {

const QuantizedWeight& quantized_weight(OpContext& c) {
  const std::string wname = c.node.s("weight", "");
  auto it = c.graph.quantized.find(wname);
  if (it == c.graph.quantized.end()) throw Error(c.node.label() + ": quantized weight '" + wname + "' is missing");
  return it->second;
}

void linear_q(OpContext& c) {
  const Tensor& x = c.in(0);
  const std::string wname = c.node.s("weight", "");
  const QuantizedWeight& w = quantized_weight(c);
  check(x.dtype() == DType::F32, c.node.label() + ": input must be F32");
  const int64_t k = x.rank() ? x.dim(-1) : 0;
  check(k == w.cols, c.node.label() + ": input has " + std::to_string(k) + " features, weight '" + wname +
                         "' expects " + std::to_string(w.cols));
  const float* bias = nullptr;
  if (c.has(1)) {
    check(c.in(1).dtype() == DType::F32 && c.in(1).numel() == w.rows, c.node.label() + ": bias must be F32 [out]");
    bias = c.in(1).data<float>();
  }
  Shape os = x.shape();
  os.back() = w.rows;
  Tensor y(DType::F32, os);
  const int64_t m = x.numel() / k;
  const std::string act = c.node.s("act", "none");
  if (act == "none") {
    kernels::cpu::linear_quantized(x.data<float>(), w, bias, y.mutable_data<float>(), m);
  } else if (act == "dynamic" || act == "static") {
    check(w.bits == 8 && w.symmetric && w.n_groups() == 1 && w.g_idx.empty(),
          c.node.label() + ": int8 activations need an INT8 symmetric per-channel weight");
    float s = static_cast<float>(c.node.f("act_scale", 0));
    check(act == "dynamic" || s > 0, c.node.label() + ": static activation quantization needs act_scale > 0");
    kernels::cpu::linear_w8a8(x.data<float>(), w, bias, y.mutable_data<float>(), m, act == "static" ? &s : nullptr);
  } else {
    throw Error(c.node.label() + ": unknown act mode '" + act + "'");
  }
  c.outputs[0] = std::move(y);
}

void embedding_q(OpContext& c) {
  const QuantizedWeight& w = quantized_weight(c);
  const Tensor& ids = c.in(0);
  const auto idv = ids.i64_values();
  Shape os = ids.shape();
  os.push_back(w.cols);
  Tensor out(DType::F32, os);
  float* o = out.mutable_data<float>();
  for (size_t i = 0; i < idv.size(); ++i) {
    if (idv[i] < 0 || idv[i] >= w.rows)
      throw Error(c.node.label() + ": token id " + std::to_string(idv[i]) + " outside the vocabulary of " +
                  std::to_string(w.rows));
    dequantize_rows(w, idv[i], idv[i] + 1, o + static_cast<int64_t>(i) * w.cols);
  }
  c.outputs[0] = std::move(out);
}

}  // namespace

void register_quant_ops(KernelTable& t) {
  t[kernel_key("llmc", "LinearQ")] = linear_q;
  t[kernel_key("llmc", "EmbeddingQ")] = embedding_q;
}

}  // namespace llmc::runtime
