#include "runtime/inspect.hpp"

#include <filesystem>

#include "formats/gguf.hpp"
#include "formats/gguf_llama.hpp"
#include "formats/hf_config.hpp"
#include "formats/onnx.hpp"
#include "formats/safetensors.hpp"
#include "runtime/loader.hpp"

namespace llmc::runtime {

namespace {

double zero_fraction(const Tensor& t) {
  if (t.numel() == 0 || (!is_float(t.dtype()) && t.dtype() != DType::I8 && t.dtype() != DType::U8)) return -1;
  Tensor f = t.to_f32();
  int64_t z = 0;
  for (int64_t i = 0; i < f.numel(); ++i) z += f.data<float>()[i] == 0.0f;
  return static_cast<double>(z) / f.numel();
}

void add_tensors(ModelInfo& info, const std::map<std::string, Tensor>& tensors, const std::vector<std::string>& order,
                 bool count_zeros) {
  for (auto& name : order) {
    const Tensor& t = tensors.at(name);
    info.tensors.push_back({name, dtype_name(t.dtype()), t.shape(), t.numel(), static_cast<int64_t>(t.nbytes()),
                            count_zeros ? zero_fraction(t) : -1});
  }
}

}  // namespace

ModelInfo inspect_model(const std::string& path, bool count_zeros) {
  ModelInfo info;
  ModelKind kind = detect_model_kind(path);
  info.format = kind_name(kind);
  switch (kind) {
    case ModelKind::HfDirectory:
    case ModelKind::Safetensors:
    case ModelKind::Llmc: {
      auto st = formats::read_safetensors_checkpoint(path);
      add_tensors(info, st.tensors, st.order, count_zeros);
      for (auto& [k, v] : st.metadata) info.metadata[k] = v;
      if (kind == ModelKind::HfDirectory)
        info.config = formats::read_hf_config((std::filesystem::path(path) / "config.json").string());
      break;
    }
    case ModelKind::Onnx: {
      Model m = formats::read_onnx(path);
      std::vector<std::string> order;
      for (auto& [n, t] : m.graph.weights) order.push_back(n);
      add_tensors(info, m.graph.weights, order, count_zeros);
      for (auto& [d, v] : m.graph.opsets) info.metadata["opset" + (d.empty() ? std::string() : "." + d)] = v;
      break;
    }
    case ModelKind::Gguf: {
      auto g = formats::read_gguf(path);
      for (auto& ti : g.tensors) {
        StoredTensor st{ti.name, formats::ggml_type_name(ti.type), ti.shape(), ti.numel(), static_cast<int64_t>(ti.nbytes), -1};
        if (count_zeros) st.sparsity = zero_fraction(formats::gguf_tensor_f32(g, ti.name));
        info.tensors.push_back(std::move(st));
      }
      if (g.get_string_or("general.architecture", "") == "llama") info.config = formats::gguf_llama_config(g);
      for (auto& [k, v] : g.metadata)
        if (v.type != formats::GgufType::Array) info.metadata[k] = v.value;
      break;
    }
  }
  for (auto& t : info.tensors) {
    info.parameters += t.numel;
    info.bytes += t.bytes;
  }
  return info;
}

}  // namespace llmc::runtime
