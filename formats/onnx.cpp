// ONNX import/export through libonnx's generated onnx.proto classes (onnx/onnx-ml.proto, IR v8).
#include "formats/onnx.hpp"

#ifdef LLMC_HAVE_ONNX

#include <algorithm>
#include <climits>
#include <cstring>
#include <filesystem>
#include <set>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <onnx/onnx_pb.h>

#include "formats/mapped_file.hpp"

namespace llmc::formats {

namespace {

namespace fs = std::filesystem;
using onnx::AttributeProto;
using onnx::TensorProto;

// TensorProto.DataType codes; 21/22 are ONNX 1.16's UINT4/INT4 (low nibble first, as our packing).
DType dtype_from_code(int code, const std::string& where) {
  switch (code) {
    case TensorProto::FLOAT: return DType::F32;
    case TensorProto::UINT8: return DType::U8;
    case TensorProto::INT8: return DType::I8;
    case TensorProto::UINT16: return DType::U16;
    case TensorProto::INT16: return DType::I16;
    case TensorProto::INT32: return DType::I32;
    case TensorProto::INT64: return DType::I64;
    case TensorProto::BOOL: return DType::Bool;
    case TensorProto::FLOAT16: return DType::F16;
    case TensorProto::DOUBLE: return DType::F64;
    case TensorProto::UINT32: return DType::U32;
    case TensorProto::UINT64: return DType::U64;
    case TensorProto::BFLOAT16: return DType::BF16;
    case 21: return DType::U4;
    case 22: return DType::I4;
    case TensorProto::STRING: throw Error(where + ": string tensors are not supported");
    default: throw Error(where + ": unsupported ONNX data type " + std::to_string(code));
  }
}

int code_from_dtype(DType t) {
  switch (t) {
    case DType::F32: return TensorProto::FLOAT;
    case DType::U8: return TensorProto::UINT8;
    case DType::I8: return TensorProto::INT8;
    case DType::U16: return TensorProto::UINT16;
    case DType::I16: return TensorProto::INT16;
    case DType::I32: return TensorProto::INT32;
    case DType::I64: return TensorProto::INT64;
    case DType::Bool: return TensorProto::BOOL;
    case DType::F16: return TensorProto::FLOAT16;
    case DType::F64: return TensorProto::DOUBLE;
    case DType::U32: return TensorProto::UINT32;
    case DType::U64: return TensorProto::UINT64;
    case DType::BF16: return TensorProto::BFLOAT16;
    case DType::U4: return 21;
    case DType::I4: return 22;
  }
  return 0;
}

// Where external data files are looked up, and the mappings already opened.
struct ExternalFiles {
  fs::path dir;
  std::map<std::string, std::shared_ptr<MappedFile>> open;
};

Tensor external_tensor(const TensorProto& tp, DType dt, const Shape& shape, ExternalFiles& ext,
                       const std::string& where) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : tp.external_data()) {
    try {
      if (kv.key() == "location") location = kv.value();
      else if (kv.key() == "offset") offset = std::stoll(kv.value());
      else if (kv.key() == "length") length = std::stoll(kv.value());
    } catch (const std::exception&) {
      throw Error(where + ": external data field '" + kv.key() + "' is not a number: '" + kv.value() + "'");
    }
  }
  if (location.empty()) throw Error(where + ": external data has no location");
  const fs::path rel(location);
  // ONNX's checker rejects locations outside the model's directory; so do we.
  if (rel.is_absolute() || std::any_of(rel.begin(), rel.end(), [](const fs::path& p) { return p == ".."; }))
    throw Error(where + ": external data location '" + location + "' leaves the model's directory");
  const int64_t need = static_cast<int64_t>(nbytes_for(dt, shape_numel(shape)));
  if (length >= 0 && length != need)
    throw Error(where + ": external data length " + std::to_string(length) + " does not match " + dtype_name(dt) +
                " " + shape_str(shape) + " (" + std::to_string(need) + " bytes)");
  if (offset < 0) throw Error(where + ": negative external data offset");
  auto& file = ext.open[location];
  if (!file) {
    const std::string p = (ext.dir / rel).string();
    if (!fs::exists(p)) throw Error(where + ": external data file '" + p + "' is missing");
    file = MappedFile::open(p);
  }
  if (static_cast<uint64_t>(offset) + static_cast<uint64_t>(need) > file->size())
    throw Error(where + ": external data file '" + file->path() + "' is too short: needs bytes [" +
                std::to_string(offset) + ", " + std::to_string(offset + need) + ") but has " +
                std::to_string(file->size()));
  const uint8_t* p = file->data() + offset;
  Tensor t = Tensor::borrow(dt, shape, p, file);
  return reinterpret_cast<uintptr_t>(p) % dtype_size(dt) ? t.clone() : t;
}

template <class Src, class Dst>
void copy_field(const google::protobuf::RepeatedField<Src>& f, Tensor& t) {
  auto* d = t.mutable_data<Dst>();
  for (int i = 0; i < f.size(); ++i) d[i] = static_cast<Dst>(f.Get(i));
}

// Decodes a TensorProto. raw_data is borrowed from the message (kept alive by `owner`); typed
// fields (float_data, int32_data, ...) are copied as the spec maps them per data type.
Tensor tensor_from_proto(const TensorProto& tp, const std::shared_ptr<const void>& owner, ExternalFiles* ext,
                         const std::string& where) {
  const DType dt = dtype_from_code(tp.data_type(), where);
  Shape shape(tp.dims().begin(), tp.dims().end());
  for (int64_t d : shape)
    if (d < 0) throw Error(where + ": negative dimension in " + shape_str(shape));
  if (tp.has_segment()) throw Error(where + ": segmented tensors are not supported");
  if (tp.data_location() == TensorProto::EXTERNAL) {
    if (!ext) throw Error(where + ": external data is not allowed here");
    return external_tensor(tp, dt, shape, *ext, where);
  }
  const int64_t n = shape_numel(shape);
  const size_t need = nbytes_for(dt, n);
  if (tp.has_raw_data()) {
    const std::string& raw = tp.raw_data();
    if (raw.size() != need)
      throw Error(where + ": raw_data has " + std::to_string(raw.size()) + " bytes, " + dtype_name(dt) + " " +
                  shape_str(shape) + " needs " + std::to_string(need));
    if (need == 0) return Tensor(dt, shape);
    Tensor t = Tensor::borrow(dt, shape, raw.data(), owner);
    return reinterpret_cast<uintptr_t>(raw.data()) % dtype_size(dt) ? t.clone() : t;
  }
  Tensor t(dt, shape);
  int64_t have = 0;
  auto count = [&](int64_t c) {
    have = c;
    return c == n || (dt == DType::I4 || dt == DType::U4 ? c == static_cast<int64_t>(need) : false);
  };
  bool ok = true;
  switch (dt) {
    case DType::F32: ok = count(tp.float_data_size()); if (ok) copy_field<float, float>(tp.float_data(), t); break;
    case DType::F64: ok = count(tp.double_data_size()); if (ok) copy_field<double, double>(tp.double_data(), t); break;
    case DType::I64: ok = count(tp.int64_data_size()); if (ok) copy_field<int64_t, int64_t>(tp.int64_data(), t); break;
    case DType::U32: ok = count(tp.uint64_data_size()); if (ok) copy_field<uint64_t, uint32_t>(tp.uint64_data(), t); break;
    case DType::U64: ok = count(tp.uint64_data_size()); if (ok) copy_field<uint64_t, uint64_t>(tp.uint64_data(), t); break;
    case DType::I32: ok = count(tp.int32_data_size()); if (ok) copy_field<int32_t, int32_t>(tp.int32_data(), t); break;
    case DType::I16: ok = count(tp.int32_data_size()); if (ok) copy_field<int32_t, int16_t>(tp.int32_data(), t); break;
    case DType::I8: ok = count(tp.int32_data_size()); if (ok) copy_field<int32_t, int8_t>(tp.int32_data(), t); break;
    case DType::U8: case DType::Bool: case DType::I4: case DType::U4:  // 4-bit: one packed byte per int32
      ok = count(tp.int32_data_size()); if (ok) copy_field<int32_t, uint8_t>(tp.int32_data(), t); break;
    case DType::U16: case DType::F16: case DType::BF16:  // half types store their bit patterns
      ok = count(tp.int32_data_size()); if (ok) copy_field<int32_t, uint16_t>(tp.int32_data(), t); break;
  }
  if (!ok)
    throw Error(where + ": has " + std::to_string(have) + " values in its typed data field, " + shape_str(shape) +
                " needs " + std::to_string(n));
  return t;
}

void tensor_to_proto(const Tensor& t, const std::string& name, TensorProto& tp) {
  tp.set_name(name);
  tp.set_data_type(code_from_dtype(t.dtype()));
  for (int64_t d : t.shape()) tp.add_dims(d);
  tp.set_raw_data(t.raw(), t.nbytes());
}

AttrValue attr_from_proto(const AttributeProto& a, const std::shared_ptr<const void>& owner, ExternalFiles& ext,
                          const std::string& where) {
  auto type = a.type();
  if (type == AttributeProto::UNDEFINED) {  // IR < 2 models leave the type out: infer it from the field set
    if (a.has_f()) type = AttributeProto::FLOAT;
    else if (a.has_i()) type = AttributeProto::INT;
    else if (a.has_s()) type = AttributeProto::STRING;
    else if (a.has_t()) type = AttributeProto::TENSOR;
    else if (a.floats_size()) type = AttributeProto::FLOATS;
    else if (a.ints_size()) type = AttributeProto::INTS;
    else if (a.strings_size()) type = AttributeProto::STRINGS;
  }
  switch (type) {
    case AttributeProto::FLOAT: return static_cast<double>(a.f());
    case AttributeProto::INT: return static_cast<int64_t>(a.i());
    case AttributeProto::STRING: return a.s();
    case AttributeProto::TENSOR: return tensor_from_proto(a.t(), owner, &ext, where);
    case AttributeProto::FLOATS: return std::vector<double>(a.floats().begin(), a.floats().end());
    case AttributeProto::INTS: return std::vector<int64_t>(a.ints().begin(), a.ints().end());
    case AttributeProto::STRINGS: return std::vector<std::string>(a.strings().begin(), a.strings().end());
    default:
      throw Error(where + ": attribute type " + AttributeProto::AttributeType_Name(type) +
                  " is not supported (subgraphs, sparse tensors and type protos cannot be imported)");
  }
}

ValueInfo value_info_from_proto(const onnx::ValueInfoProto& v, const std::string& where) {
  ValueInfo vi;
  vi.name = v.name();
  if (!v.type().has_tensor_type())
    throw Error(where + ": value '" + v.name() + "' is not a tensor (sequences, maps and optionals are not supported)");
  const auto& tt = v.type().tensor_type();
  vi.dtype = dtype_from_code(tt.elem_type(), where + ": value '" + v.name() + "'");
  for (const auto& d : tt.shape().dim()) vi.shape.push_back(d.has_dim_value() ? d.dim_value() : -1);
  return vi;
}

void value_info_to_proto(const ValueInfo& vi, onnx::ValueInfoProto& v) {
  v.set_name(vi.name);
  auto* tt = v.mutable_type()->mutable_tensor_type();
  tt->set_elem_type(code_from_dtype(vi.dtype));
  auto* sh = tt->mutable_shape();
  for (int64_t d : vi.shape) {
    auto* dim = sh->add_dim();
    if (d >= 0) dim->set_dim_value(d);
  }
}

void attr_to_proto(const std::string& name, const AttrValue& v, AttributeProto& a) {
  a.set_name(name);
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, int64_t>) a.set_type(AttributeProto::INT), a.set_i(x);
        else if constexpr (std::is_same_v<T, double>) a.set_type(AttributeProto::FLOAT), a.set_f(static_cast<float>(x));
        else if constexpr (std::is_same_v<T, std::string>) a.set_type(AttributeProto::STRING), a.set_s(x);
        else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
          a.set_type(AttributeProto::INTS);
          for (auto e : x) a.add_ints(e);
        } else if constexpr (std::is_same_v<T, std::vector<double>>) {
          a.set_type(AttributeProto::FLOATS);
          for (auto e : x) a.add_floats(static_cast<float>(e));
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          a.set_type(AttributeProto::STRINGS);
          for (auto& e : x) a.add_strings(e);
        } else {
          a.set_type(AttributeProto::TENSOR);
          tensor_to_proto(x, "", *a.mutable_t());
        }
      },
      v);
}

// Before opset 13, Softmax, LogSoftmax and Hardmax coerce their input to 2-D
// [∏ dims[:axis], ∏ dims[axis:]] (axis default 1) and normalise whole rows. The kernels implement
// the opset-13 single-axis form, so such a node becomes Flatten → op(axis 1) → Reshape back to
// Shape(x), which keeps its meaning at the old opset too. Returns false for other nodes.
bool add_legacy_softmax(const Node& n, Graph& g, const std::string& path) {
  static const std::set<std::string> ops = {"Softmax", "LogSoftmax", "Hardmax"};
  auto v = g.opsets.find("");
  if (!n.domain.empty() || !ops.count(n.op) || v == g.opsets.end() || v->second >= 13) return false;
  if (n.inputs.size() != 1 || n.outputs.size() != 1) throw Error(path + ": " + n.label() + ": expects one input and one output");
  const std::string &x = n.inputs[0], &y = n.outputs[0];
  g.nodes.push_back(Node{"Shape", "", n.name + "/shape", {x}, {y + "/shape"}, {}});
  g.nodes.push_back(Node{"Flatten", "", n.name + "/flatten", {x}, {y + "/2d"}, {{"axis", n.i("axis", 1)}}});
  g.nodes.push_back(Node{n.op, "", n.name, {y + "/2d"}, {y + "/2d_out"}, {{"axis", int64_t{1}}}});
  g.nodes.push_back(Node{"Reshape", "", n.name + "/reshape", {y + "/2d_out", y + "/shape"}, {y}, {}});
  return true;
}

// Parses a whole file as one message with the total-bytes limit raised from Protobuf's 64 MiB
// default to the format's 2 GiB ceiling.
template <class Msg>
void parse_file(const std::string& path, Msg& msg, const std::string& what) {
  auto file = MappedFile::open(path);
  if (file->size() > static_cast<size_t>(INT_MAX))
    throw Error(path + ": not an ONNX " + what + ": " + std::to_string(file->size()) +
                " bytes is over Protobuf's 2 GiB limit (store large tensors as external data)");
  google::protobuf::io::ArrayInputStream raw(file->data(), static_cast<int>(file->size()));
  google::protobuf::io::CodedInputStream in(&raw);
  in.SetTotalBytesLimit(INT_MAX);
  if (!msg.ParseFromCodedStream(&in) || !in.ConsumedEntireMessage())
    throw Error(path + ": not an ONNX " + what + ": Protobuf parsing failed");
}

}  // namespace

Tensor read_onnx_tensor(const std::string& path) {
  auto tp = std::make_shared<TensorProto>();
  parse_file(path, *tp, "tensor");
  ExternalFiles ext{fs::path(path).parent_path(), {}};
  return tensor_from_proto(*tp, tp, &ext, path + ": tensor '" + tp->name() + "'").clone();
}

Model read_onnx(const std::string& path) {
  auto mp = std::make_shared<onnx::ModelProto>();
  parse_file(path, *mp, "model");
  // Arbitrary bytes can parse as a message of unknown fields; a model has an IR version and a graph.
  if (!mp->has_graph() || mp->ir_version() <= 0)
    throw Error(path + ": not an ONNX model: " + (mp->has_graph() ? "no IR version" : "no graph"));
  const onnx::GraphProto& gp = mp->graph();
  ExternalFiles ext{fs::path(path).parent_path(), {}};
  Model m;
  m.arch = "onnx";
  m.source = path;
  m.metadata["onnx.ir_version"] = std::to_string(mp->ir_version());
  if (!mp->producer_name().empty()) m.metadata["onnx.producer_name"] = mp->producer_name();
  if (!mp->producer_version().empty()) m.metadata["onnx.producer_version"] = mp->producer_version();
  if (!gp.name().empty()) m.metadata["onnx.graph_name"] = gp.name();
  for (const auto& kv : mp->metadata_props()) m.metadata[kv.key()] = kv.value();
  Graph& g = m.graph;
  for (const auto& op : mp->opset_import()) g.opsets[op.domain() == "ai.onnx" ? "" : op.domain()] = op.version();
  if (gp.sparse_initializer_size()) throw Error(path + ": sparse initializers are not supported");
  const std::shared_ptr<const void> owner = mp;
  for (const auto& tp : gp.initializer()) {
    const std::string where = path + ": initializer '" + tp.name() + "'";
    if (g.weights.count(tp.name())) throw Error(where + " is defined twice");
    g.weights[tp.name()] = tensor_from_proto(tp, owner, &ext, where);
  }
  for (const auto& v : gp.input()) g.inputs.push_back(value_info_from_proto(v, path + ": graph input"));
  for (const auto& v : gp.output()) g.outputs.push_back(value_info_from_proto(v, path + ": graph output"));

  std::set<std::string> known;
  for (auto& vi : g.inputs) known.insert(vi.name);
  for (auto& [k, w] : g.weights) known.insert(k);
  for (int i = 0; i < gp.node_size(); ++i) {
    const onnx::NodeProto& np = gp.node(i);
    Node n;
    n.op = np.op_type();
    n.domain = np.domain() == "ai.onnx" ? "" : np.domain();
    n.name = np.name().empty() ? n.op + "_" + std::to_string(i) : np.name();
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    const std::string where = path + ": " + n.label();
    for (const auto& a : np.attribute()) n.attrs[a.name()] = attr_from_proto(a, owner, ext, where + ": attribute '" + a.name() + "'");
    // The spec requires nodes in topological order, so every input must already exist here.
    for (const auto& in : n.inputs)
      if (!in.empty() && !known.count(in))
        throw Error(where + ": input '" + in + "' is neither a graph input, an initializer, nor an earlier node's output");
    for (const auto& o : n.outputs)
      if (!o.empty()) known.insert(o);
    if (!add_legacy_softmax(n, g, path)) g.nodes.push_back(std::move(n));
  }
  for (auto& vi : g.outputs)
    if (!known.count(vi.name)) throw Error(path + ": graph output '" + vi.name + "' is not produced by any node");
  return m;
}

void write_onnx(const Model& model, const std::string& path, bool external_data) {
  const Graph& g = model.graph;
  onnx::ModelProto mp;
  auto meta = model.metadata;
  auto take = [&](const std::string& k, const std::string& dflt) {
    auto it = meta.find(k);
    std::string v = it == meta.end() ? dflt : it->second;
    if (it != meta.end()) meta.erase(it);
    return v;
  };
  mp.set_ir_version(std::stoll(take("onnx.ir_version", "8")));
  mp.set_producer_name(take("onnx.producer_name", "llmcompress"));
  mp.set_producer_version(take("onnx.producer_version", ""));
  auto* gp = mp.mutable_graph();
  gp->set_name(take("onnx.graph_name", "llmc"));
  for (auto& [k, v] : meta) {
    auto* p = mp.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  }
  // ONNX requires an opset import for every domain that a node uses.
  std::map<std::string, int64_t> opsets = g.opsets;
  for (const Node& n : g.nodes)
    if (!opsets.count(n.domain)) opsets[n.domain] = n.domain.empty() ? 17 : 1;
  if (opsets.empty()) opsets[""] = 17;
  for (auto& [d, v] : opsets) {
    auto* op = mp.add_opset_import();
    op->set_domain(d);
    op->set_version(v);
  }
  for (const Node& n : g.nodes) {
    auto* np = gp->add_node();
    np->set_op_type(n.op);
    np->set_domain(n.domain);
    np->set_name(n.name);
    for (auto& i : n.inputs) np->add_input(i);
    for (auto& o : n.outputs) np->add_output(o);
    for (auto& [k, v] : n.attrs) attr_to_proto(k, v, *np->add_attribute());
  }
  for (auto& vi : g.inputs) value_info_to_proto(vi, *gp->add_input());
  for (auto& vi : g.outputs) value_info_to_proto(vi, *gp->add_output());

  const std::string data_name = fs::path(path).filename().string() + ".data";
  std::unique_ptr<AtomicWriter> data;
  const char zeros[64] = {};
  for (auto& [name, t] : g.weights) {
    auto* tp = gp->add_initializer();
    if (!external_data || t.nbytes() <= 1024) {
      tensor_to_proto(t, name, *tp);
      continue;
    }
    if (!data) data = std::make_unique<AtomicWriter>((fs::path(path).parent_path() / data_name).string());
    if (size_t pad = (64 - data->written() % 64) % 64) data->write(zeros, pad);  // aligned for mmap readers
    tp->set_name(name);
    tp->set_data_type(code_from_dtype(t.dtype()));
    for (int64_t d : t.shape()) tp->add_dims(d);
    tp->set_data_location(TensorProto::EXTERNAL);
    auto kv = [&](const char* k, const std::string& v) {
      auto* e = tp->add_external_data();
      e->set_key(k);
      e->set_value(v);
    };
    kv("location", data_name);
    kv("offset", std::to_string(data->written()));
    kv("length", std::to_string(t.nbytes()));
    data->write(t.raw(), t.nbytes());
  }
  if (mp.ByteSizeLong() > static_cast<size_t>(INT_MAX))
    throw Error(path + ": the model is over Protobuf's 2 GiB limit; write it with external data", ErrorKind::Usage);
  std::string bytes;
  if (!mp.SerializeToString(&bytes)) throw Error(path + ": Protobuf serialization failed", ErrorKind::Runtime);
  AtomicWriter out(path);
  out.write(bytes.data(), bytes.size());
  if (data) data->commit();  // data first: a model file never points at a missing data file
  out.commit();
}

}  // namespace llmc::formats

#else  // !LLMC_HAVE_ONNX

namespace llmc::formats {

Model read_onnx(const std::string& path) { throw Error(path + ": llmcompress was built without ONNX support"); }
void write_onnx(const Model&, const std::string& path, bool) {
  throw Error(path + ": llmcompress was built without ONNX support");
}
Tensor read_onnx_tensor(const std::string& path) { throw Error(path + ": llmcompress was built without ONNX support"); }

}  // namespace llmc::formats

#endif
