#include "formats/llmc.hpp"

#include <cstring>

#include "formats/safetensors.hpp"

namespace llmc::formats {

using nlohmann::json;

namespace {

json attr_to_json(const Node& n, const std::string& k, const AttrValue& v) {
  if (auto* i = std::get_if<int64_t>(&v)) return {{"i", *i}};
  if (auto* f = std::get_if<double>(&v)) return {{"f", *f}};
  if (auto* s = std::get_if<std::string>(&v)) return {{"s", *s}};
  if (auto* is = std::get_if<std::vector<int64_t>>(&v)) return {{"ints", *is}};
  if (auto* fs = std::get_if<std::vector<double>>(&v)) return {{"floats", *fs}};
  if (auto* ss = std::get_if<std::vector<std::string>>(&v)) return {{"strings", *ss}};
  throw Error(n.label() + ": tensor attribute '" + k + "' cannot be stored in .llmc", ErrorKind::Runtime);
}

AttrValue attr_from_json(const json& j, const std::string& where) {
  if (!j.is_object() || j.size() != 1) throw Error(where + ": malformed attribute");
  const std::string& k = j.begin().key();
  const json& v = j.begin().value();
  if (k == "i") return v.get<int64_t>();
  if (k == "f") return v.get<double>();
  if (k == "s") return v.get<std::string>();
  if (k == "ints") return v.get<std::vector<int64_t>>();
  if (k == "floats") return v.get<std::vector<double>>();
  if (k == "strings") return v.get<std::vector<std::string>>();
  throw Error(where + ": unknown attribute type '" + k + "'");
}

json values_to_json(const std::vector<ValueInfo>& vs) {
  json a = json::array();
  for (auto& v : vs) a.push_back({{"name", v.name}, {"dtype", dtype_name(v.dtype)}, {"shape", v.shape}});
  return a;
}

std::vector<ValueInfo> values_from_json(const json& a) {
  std::vector<ValueInfo> out;
  for (auto& v : a) out.push_back({v.at("name"), dtype_from_name(v.at("dtype")), v.at("shape").get<std::vector<int64_t>>()});
  return out;
}

DType dense_dtype(const std::string& s) {
  if (s == "f32") return DType::F32;
  if (s == "f16") return DType::F16;
  if (s == "bf16") return DType::BF16;
  throw Error("dense dtype must be f32, f16 or bf16, got '" + s + "'", ErrorKind::Usage);
}

template <class T>
Tensor vector_tensor(DType dt, Shape shape, const std::vector<T>& v) {
  Tensor t(dt, std::move(shape));
  if (!v.empty()) std::memcpy(t.mutable_raw(), v.data(), v.size() * sizeof(T));
  return t;
}

template <class T>
std::vector<T> tensor_vector(const Tensor& t) {
  std::vector<T> v(t.nbytes() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), t.raw(), v.size() * sizeof(T));
  return v;
}

}  // namespace

json graph_to_json(const Graph& g) {
  json nodes = json::array();
  for (const Node& n : g.nodes) {
    json attrs = json::object();
    for (auto& [k, v] : n.attrs) attrs[k] = attr_to_json(n, k, v);
    nodes.push_back({{"op", n.op}, {"domain", n.domain}, {"name", n.name}, {"inputs", n.inputs},
                     {"outputs", n.outputs}, {"attrs", attrs}});
  }
  return {{"nodes", nodes}, {"inputs", values_to_json(g.inputs)}, {"outputs", values_to_json(g.outputs)},
          {"opsets", g.opsets}};
}

Graph graph_from_json(const json& j, const std::string& where) {
  Graph g;
  try {
    for (auto& n : j.at("nodes")) {
      Node node{n.at("op"), n.at("domain"), n.at("name"), n.at("inputs").get<std::vector<std::string>>(),
                n.at("outputs").get<std::vector<std::string>>(), {}};
      for (auto& [k, v] : n.at("attrs").items()) node.attrs[k] = attr_from_json(v, where + ": node '" + node.name + "'");
      g.nodes.push_back(std::move(node));
    }
    g.inputs = values_from_json(j.at("inputs"));
    g.outputs = values_from_json(j.at("outputs"));
    g.opsets = j.at("opsets").get<std::map<std::string, int64_t>>();
  } catch (const json::exception& e) {
    throw Error(where + ": malformed graph: " + e.what());
  }
  return g;
}

void write_llmc(const Model& model, const std::string& path, const LlmcWriteOptions& opt) {
  if (path == model.source) throw Error(path + ": the output path is the input path; choose another", ErrorKind::Usage);
  const DType dense = dense_dtype(opt.dense_dtype);
  const Graph& g = model.graph;
  std::map<std::string, Tensor> tensors;
  for (auto& [name, t] : g.weights) tensors[name] = is_float(t.dtype()) && t.dtype() != dense ? t.to(dense) : t;
  json qmeta = json::object();
  for (auto& [name, q] : g.quantized) {
    q.validate(name);
    if (q.bits == 8 && q.symmetric)
      tensors[name + ".qweight"] = vector_tensor(DType::I8, {q.rows, q.cols}, q.packed);
    else if (q.bits == 8)
      tensors[name + ".qweight"] = vector_tensor(DType::U8, {q.rows, q.cols}, q.packed);
    else
      tensors[name + ".qweight"] = vector_tensor(DType::U8, {static_cast<int64_t>(q.packed.size())}, q.packed);
    tensors[name + ".scales"] = vector_tensor(DType::F16, {q.rows, q.n_groups()}, q.scales);
    if (!q.symmetric) tensors[name + ".zeros"] = vector_tensor(DType::U8, {static_cast<int64_t>(q.zeros.size())}, q.zeros);
    if (!q.g_idx.empty()) tensors[name + ".g_idx"] = vector_tensor(DType::I32, {q.cols}, q.g_idx);
    qmeta[name] = {{"bits", q.bits}, {"rows", q.rows}, {"cols", q.cols}, {"group_size", q.group_len()},
                   {"symmetric", q.symmetric}, {"act_order", !q.g_idx.empty()}};
  }
  std::map<std::string, std::string> meta = model.metadata;
  meta["llmc.format_version"] = std::to_string(kLlmcFormatVersion);
  meta["llmc.arch"] = model.arch;
  meta["llmc.config"] = model.config.dump();
  meta["llmc.graph"] = graph_to_json(g).dump();
  meta["llmc.tokenizer"] = model.tokenizer.dump();
  meta["llmc.quantized"] = qmeta.dump();
  write_safetensors(path, tensors, meta);
}

Model read_llmc(const std::string& path) {
  auto st = read_safetensors(path);
  auto need = [&](const std::string& key) -> const std::string& {
    auto it = st.metadata.find(key);
    if (it == st.metadata.end()) throw Error(path + ": not an .llmc file: metadata '" + key + "' is missing");
    return it->second;
  };
  const std::string& version = need("llmc.format_version");
  if (version != std::to_string(kLlmcFormatVersion))
    throw Error(path + ": .llmc format version " + version + " is not supported (this build reads version " +
                std::to_string(kLlmcFormatVersion) + ")");
  auto parse = [&](const std::string& key) {
    try {
      return json::parse(need(key));
    } catch (const json::exception& e) {
      throw Error(path + ": metadata '" + key + "' is not valid JSON: " + e.what());
    }
  };
  Model m;
  m.source = path;
  m.arch = need("llmc.arch");
  m.config = parse("llmc.config");
  m.tokenizer = parse("llmc.tokenizer");
  m.graph = graph_from_json(parse("llmc.graph"), path);
  for (auto& [k, v] : st.metadata)
    if (k.rfind("llmc.", 0) != 0 || k == "llmc.recipe" || k == "llmc.report") m.metadata[k] = v;
  json qmeta = parse("llmc.quantized");
  auto take = [&](const std::string& name) -> Tensor {
    auto it = st.tensors.find(name);
    if (it == st.tensors.end()) throw Error(path + ": tensor '" + name + "' is missing");
    Tensor t = it->second;
    st.tensors.erase(it);
    return t;
  };
  for (auto& [name, q] : qmeta.items()) {
    QuantizedWeight w;
    try {
      w.bits = q.at("bits");
      w.rows = q.at("rows");
      w.cols = q.at("cols");
      w.group_size = q.at("group_size");
      w.symmetric = q.at("symmetric");
    } catch (const json::exception& e) {
      throw Error(path + ": quantized weight '" + name + "': malformed description: " + e.what());
    }
    w.packed = tensor_vector<uint8_t>(take(name + ".qweight"));
    Tensor sc = take(name + ".scales");
    if (sc.dtype() != DType::F16) throw Error(path + ": tensor '" + name + ".scales' must be F16");
    w.scales = tensor_vector<uint16_t>(sc);
    if (!w.symmetric) w.zeros = tensor_vector<uint8_t>(take(name + ".zeros"));
    if (q.value("act_order", false)) w.g_idx = tensor_vector<int32_t>(take(name + ".g_idx"));
    w.validate(path + ": '" + name + "'");
    m.graph.quantized[name] = std::move(w);
  }
  for (auto& [name, t] : st.tensors) m.graph.weights[name] = is_float(t.dtype()) ? t.to_f32() : t;
  return m;
}

}  // namespace llmc::formats
