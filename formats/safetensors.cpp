#include "formats/safetensors.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "formats/mapped_file.hpp"

namespace llmc::formats {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

DType st_dtype(const std::string& path, const std::string& name, const std::string& s) {
  if (s == "F32") return DType::F32;
  if (s == "F16") return DType::F16;
  if (s == "BF16") return DType::BF16;
  if (s == "F64") return DType::F64;
  if (s == "I8") return DType::I8;
  if (s == "U8") return DType::U8;
  if (s == "I16") return DType::I16;
  if (s == "U16") return DType::U16;
  if (s == "I32") return DType::I32;
  if (s == "U32") return DType::U32;
  if (s == "I64") return DType::I64;
  if (s == "U64") return DType::U64;
  if (s == "BOOL") return DType::Bool;
  throw Error(path + ": tensor '" + name + "': unknown dtype '" + s + "'");
}

}  // namespace

SafetensorsFile read_safetensors(const std::string& path) {
  auto file = MappedFile::open(path);
  const size_t size = file->size();
  if (size < 8) throw Error(path + ": not a safetensors file: " + std::to_string(size) + " bytes, too short for a header");
  uint64_t hlen = 0;
  std::memcpy(&hlen, file->data(), 8);
  if (hlen > size - 8)
    throw Error(path + ": safetensors header length " + std::to_string(hlen) + " runs past the end of the file (" +
                std::to_string(size) + " bytes)");
  json header;
  try {
    header = json::parse(file->data() + 8, file->data() + 8 + hlen);
  } catch (const json::exception& e) {
    throw Error(path + ": safetensors header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) throw Error(path + ": safetensors header is not a JSON object");
  const uint8_t* base = file->data() + 8 + hlen;
  const uint64_t buf_len = size - 8 - hlen;

  SafetensorsFile out;
  struct Span { uint64_t b, e; std::string name; };
  std::vector<Span> spans;
  std::shared_ptr<const void> owner = file;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) throw Error(path + ": __metadata__ is not an object");
      for (auto& [k, v] : info.items()) {
        if (!v.is_string()) throw Error(path + ": __metadata__ value '" + k + "' is not a string");
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    auto where = path + ": tensor '" + name + "'";
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets"))
      throw Error(where + ": entry needs dtype, shape and data_offsets");
    if (!info["dtype"].is_string()) throw Error(where + ": dtype is not a string");
    DType dt = st_dtype(path, name, info["dtype"].get<std::string>());
    Shape shape;
    if (!info["shape"].is_array()) throw Error(where + ": shape is not an array");
    for (auto& d : info["shape"]) {
      if (!d.is_number_unsigned()) throw Error(where + ": shape has a non-integer or negative dimension");
      shape.push_back(d.get<int64_t>());
    }
    auto& off = info["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw Error(where + ": data_offsets must be two non-negative integers");
    uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > buf_len)
      throw Error(where + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                  "] out of range of the " + std::to_string(buf_len) + "-byte data buffer");
    uint64_t need = nbytes_for(dt, shape_numel(shape));
    if (e - b != need)
      throw Error(where + ": shape " + shape_str(shape) + " x " + dtype_name(dt) + " needs " + std::to_string(need) +
                  " bytes but data_offsets span " + std::to_string(e - b));
    spans.push_back({b, e, name});
    out.tensors[name] = Tensor::borrow(dt, shape, base + b, owner);
  }
  std::sort(spans.begin(), spans.end(), [](const Span& x, const Span& y) { return x.b < y.b || (x.b == y.b && x.e < y.e); });
  uint64_t pos = 0;
  for (auto& s : spans) {
    if (s.b < pos) throw Error(path + ": tensor '" + s.name + "' overlaps the tensor before it in the data buffer");
    if (s.b > pos) throw Error(path + ": hole in the data buffer before tensor '" + s.name + "'");
    pos = s.e;
    out.order.push_back(s.name);
  }
  if (pos != buf_len)
    throw Error(path + ": " + std::to_string(buf_len - pos) + " bytes after the last tensor are not covered by any tensor");
  return out;
}

SafetensorsFile read_safetensors_checkpoint(const std::string& path) {
  if (!fs::is_directory(path)) return read_safetensors(path);
  fs::path dir(path);
  if (fs::exists(dir / "model.safetensors")) return read_safetensors((dir / "model.safetensors").string());
  fs::path index = dir / "model.safetensors.index.json";
  if (!fs::exists(index)) throw Error(path + ": no model.safetensors or model.safetensors.index.json");
  json j;
  try {
    j = json::parse(read_text_file(index.string()));
  } catch (const json::exception& e) {
    throw Error(index.string() + ": not valid JSON: " + e.what());
  }
  if (!j.contains("weight_map") || !j["weight_map"].is_object())
    throw Error(index.string() + ": missing object field 'weight_map'");
  std::map<std::string, std::vector<std::string>> by_shard;
  for (auto& [name, shard] : j["weight_map"].items()) {
    if (!shard.is_string()) throw Error(index.string() + ": weight_map entry '" + name + "' is not a file name");
    by_shard[shard.get<std::string>()].push_back(name);
  }
  SafetensorsFile out;
  for (auto& [shard, names] : by_shard) {
    auto part = read_safetensors((dir / shard).string());
    for (auto& n : names) {
      auto it = part.tensors.find(n);
      if (it == part.tensors.end()) throw Error((dir / shard).string() + ": tensor '" + n + "' listed in the index is missing");
      out.tensors[n] = it->second;
      out.order.push_back(n);
    }
    for (auto& [k, v] : part.metadata) out.metadata[k] = v;
  }
  return out;
}

void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata, const std::vector<std::string>& order) {
  std::vector<std::string> names = order;
  if (names.empty())
    for (auto& [n, t] : tensors) names.push_back(n);
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t pos = 0;
  for (auto& n : names) {
    auto it = tensors.find(n);
    if (it == tensors.end()) throw Error(path + ": tensor '" + n + "' named in the write order is missing", ErrorKind::Runtime);
    const Tensor& t = it->second;
    if (t.dtype() == DType::I4 || t.dtype() == DType::U4)
      throw Error(path + ": tensor '" + n + "': packed 4-bit tensors are stored as U8 in safetensors", ErrorKind::Runtime);
    header[n] = {{"dtype", dtype_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {pos, pos + t.nbytes()}}};
    pos += t.nbytes();
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // keep the data buffer 8-byte aligned
  uint64_t hlen = h.size();
  AtomicWriter w(path);
  w.write(&hlen, 8);
  w.write(h.data(), h.size());
  for (auto& n : names) {
    const Tensor& t = tensors.at(n);
    if (t.nbytes()) w.write(t.raw(), t.nbytes());
  }
  w.commit();
}

}  // namespace llmc::formats
