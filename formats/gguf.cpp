// GGUF reader: header, metadata key/values and tensor infos parsed with a bounds-checked cursor
// over the mapped file; tensor data stays in the mapping until a tensor is asked for.
#include "formats/gguf.hpp"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

namespace llmc::formats {

using nlohmann::json;

namespace {

constexpr uint32_t kMaxDims = 4;        // GGML_MAX_DIMS
constexpr int kMaxArrayNesting = 8;     // arrays of arrays; deeper means a corrupt file
constexpr uint64_t kDefaultAlignment = 32;

// A read position in the mapped file; every read checks the bytes it needs are there.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& path) : data_(data), size_(size), path_(path) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  template <class T>
  T read(const std::string& what) {
    if (remaining() < sizeof(T))
      throw Error(path_ + ": " + what + " at offset " + std::to_string(pos_) + " runs past the end of the file (" +
                  std::to_string(size_) + " bytes): truncated file");
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const std::string& what) {
    const size_t at = pos_;
    uint64_t len = read<uint64_t>(what + " (string length)");
    if (len > remaining())
      throw Error(path_ + ": " + what + ": string length " + std::to_string(len) + " at offset " + std::to_string(at) +
                  " runs past the end of the file (" + std::to_string(remaining()) + " bytes left)");
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::F64); }

bool is_int(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
    case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64:
      return true;
    default:
      return false;
  }
}

// Smallest encoding of one value of the type, to reject impossible array lengths before looping.
uint64_t min_encoded_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::Bool: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: case GgufType::String: return 8;
    case GgufType::Array: return 12;
  }
  return 1;
}

// The shortest decimal that reads back as the same f32, so 1e-5 stays 1e-05 in JSON.
json f32_json(float f) {
  if (!std::isfinite(f)) return json(static_cast<double>(f));
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, f);
  double d = 0;
  std::from_chars(buf, r.ptr, d);
  // decimal -> double -> float could in principle double-round to the neighbouring float
  return json(static_cast<float>(d) == f ? d : static_cast<double>(f));
}

json read_value(Cursor& c, GgufType t, const std::string& ctx, int depth, const std::string& path,
                GgufType* elem_out) {
  switch (t) {
    case GgufType::U8: return json(c.read<uint8_t>(ctx));
    case GgufType::I8: return json(c.read<int8_t>(ctx));
    case GgufType::U16: return json(c.read<uint16_t>(ctx));
    case GgufType::I16: return json(c.read<int16_t>(ctx));
    case GgufType::U32: return json(c.read<uint32_t>(ctx));
    case GgufType::I32: return json(c.read<int32_t>(ctx));
    case GgufType::U64: return json(c.read<uint64_t>(ctx));
    case GgufType::I64: return json(c.read<int64_t>(ctx));
    case GgufType::F32: return f32_json(c.read<float>(ctx));
    case GgufType::F64: return json(c.read<double>(ctx));
    case GgufType::Bool: {
      uint8_t b = c.read<uint8_t>(ctx);
      if (b > 1) throw Error(path + ": " + ctx + ": bool byte is " + std::to_string(b) + ", not 0 or 1");
      return json(b == 1);
    }
    case GgufType::String: return json(c.read_string(ctx));
    case GgufType::Array: {
      if (depth >= kMaxArrayNesting)
        throw Error(path + ": " + ctx + ": arrays nested more than " + std::to_string(kMaxArrayNesting) + " deep");
      uint32_t et = c.read<uint32_t>(ctx + " (array element type)");
      if (!valid_type(et))
        throw Error(path + ": " + ctx + ": unknown array element type " + std::to_string(et));
      uint64_t n = c.read<uint64_t>(ctx + " (array length)");
      auto etype = static_cast<GgufType>(et);
      if (n > c.remaining() / min_encoded_size(etype))
        throw Error(path + ": " + ctx + ": array of " + std::to_string(n) + " " + gguf_type_name(etype) +
                    " values runs past the end of the file (" + std::to_string(c.remaining()) + " bytes left)");
      if (elem_out) *elem_out = etype;
      json arr = json::array();
      arr.get_ref<json::array_t&>().reserve(static_cast<size_t>(n));
      for (uint64_t i = 0; i < n; ++i) {
        if (etype == GgufType::String || etype == GgufType::Array)
          arr.push_back(read_value(c, etype, ctx + "[" + std::to_string(i) + "]", depth + 1, path, nullptr));
        else
          arr.push_back(read_value(c, etype, ctx, depth + 1, path, nullptr));
      }
      return arr;
    }
  }
  throw Error(path + ": " + ctx + ": unknown value type " + std::to_string(static_cast<uint32_t>(t)));
}

[[noreturn]] void wrong_kind(const GgufFile& f, const std::string& key, const GgufValue& v, const char* want) {
  std::string got = gguf_type_name(v.type);
  if (v.type == GgufType::Array) got += " of " + gguf_type_name(v.elem_type);
  throw Error(f.path + ": metadata '" + key + "' is " + got + ", expected " + want);
}

}  // namespace

std::string gguf_type_name(GgufType t) {
  static const char* const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                      "bool", "string", "array", "u64", "i64", "f64"};
  auto i = static_cast<uint32_t>(t);
  return i < 13 ? names[i] : "type " + std::to_string(i);
}

Shape GgufTensorInfo::shape() const {
  Shape s;
  for (auto it = dims.rbegin(); it != dims.rend(); ++it) s.push_back(static_cast<int64_t>(*it));
  return s;
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (uint64_t d : dims) n *= static_cast<int64_t>(d);
  return n;
}

const GgufValue& GgufFile::at(const std::string& key) const {
  auto it = metadata.find(key);
  if (it == metadata.end()) throw Error(path + ": metadata key '" + key + "' is missing");
  return it->second;
}

uint64_t GgufFile::get_uint(const std::string& key) const {
  const GgufValue& v = at(key);
  if (!is_int(v.type) || (v.value.is_number_integer() && !v.value.is_number_unsigned() && v.value.get<int64_t>() < 0))
    wrong_kind(*this, key, v, "a non-negative integer");
  return v.value.is_number_unsigned() ? v.value.get<uint64_t>() : static_cast<uint64_t>(v.value.get<int64_t>());
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = at(key);
  if (!is_int(v.type) || (v.value.is_number_unsigned() &&
                          v.value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())))
    wrong_kind(*this, key, v, "an integer that fits in i64");
  return v.value.get<int64_t>();
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = at(key);
  if (v.type != GgufType::F32 && v.type != GgufType::F64 && !is_int(v.type)) wrong_kind(*this, key, v, "a number");
  return v.value.get<double>();
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = at(key);
  if (v.type != GgufType::Bool) wrong_kind(*this, key, v, "a bool");
  return v.value.get<bool>();
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = at(key);
  if (v.type != GgufType::String) wrong_kind(*this, key, v, "a string");
  return v.value.get<std::string>();
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue& v = at(key);
  if (v.type != GgufType::Array || v.elem_type != GgufType::String) wrong_kind(*this, key, v, "an array of strings");
  return v.value.get<std::vector<std::string>>();
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue& v = at(key);
  if (v.type != GgufType::Array || !is_int(v.elem_type) ||
      (v.elem_type == GgufType::U64 && !v.value.empty() &&
       [&] {
         for (auto& e : v.value)
           if (e.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return true;
         return false;
       }()))
    wrong_kind(*this, key, v, "an array of integers that fit in i64");
  return v.value.get<std::vector<int64_t>>();
}

std::vector<double> GgufFile::get_float_array(const std::string& key) const {
  const GgufValue& v = at(key);
  if (v.type != GgufType::Array ||
      (v.elem_type != GgufType::F32 && v.elem_type != GgufType::F64 && !is_int(v.elem_type)))
    wrong_kind(*this, key, v, "an array of numbers");
  return v.value.get<std::vector<double>>();
}

uint64_t GgufFile::get_uint_or(const std::string& key, uint64_t dflt) const { return has(key) ? get_uint(key) : dflt; }
double GgufFile::get_float_or(const std::string& key, double dflt) const { return has(key) ? get_float(key) : dflt; }
bool GgufFile::get_bool_or(const std::string& key, bool dflt) const { return has(key) ? get_bool(key) : dflt; }
std::string GgufFile::get_string_or(const std::string& key, const std::string& dflt) const {
  return has(key) ? get_string(key) : dflt;
}

json GgufFile::metadata_json() const {
  json j = json::object();
  for (auto& [k, v] : metadata) j[k] = v.value;
  return j;
}

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  auto it = tensor_index.find(name);
  if (it == tensor_index.end()) throw Error(path + ": no tensor named '" + name + "'");
  return tensors[it->second];
}

GgufFile read_gguf(const std::string& path) {
  GgufFile f;
  f.path = path;
  f.file = MappedFile::open(path);
  Cursor c(f.file->data(), f.file->size(), path);

  // Header: magic "GGUF", u32 version, u64 tensor count, u64 metadata count (gguf.md "Header").
  if (f.file->size() < 4 || std::memcmp(f.file->data(), "GGUF", 4) != 0)
    throw Error(path + ": not a GGUF file (bad magic: the first 4 bytes are not \"GGUF\")");
  c.read<uint32_t>("magic");
  f.version = c.read<uint32_t>("version");
  if (f.version == 1)
    throw Error(path + ": GGUF version 1 (32-bit lengths) is not supported; convert the model again");
  if ((f.version & 0xffffu) == 0 && (f.version >> 24 == 2 || f.version >> 24 == 3))
    throw Error(path + ": big-endian GGUF files are not supported");
  if (f.version != 2 && f.version != 3)
    throw Error(path + ": unsupported GGUF version " + std::to_string(f.version) + " (this reader handles 2 and 3)");
  uint64_t n_tensors = c.read<uint64_t>("tensor count");
  uint64_t n_kv = c.read<uint64_t>("metadata count");

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string("metadata key #" + std::to_string(i));
    std::string ctx = "metadata '" + key + "'";
    uint32_t t = c.read<uint32_t>(ctx + " (value type)");
    if (!valid_type(t)) throw Error(path + ": " + ctx + ": unknown value type " + std::to_string(t));
    GgufValue v;
    v.type = static_cast<GgufType>(t);
    v.value = read_value(c, v.type, ctx, 0, path, &v.elem_type);
    if (f.metadata.count(key)) throw Error(path + ": duplicate metadata key '" + key + "'");
    f.metadata_order.push_back(key);
    f.metadata.emplace(std::move(key), std::move(v));
  }

  if (f.has("general.alignment")) {
    const GgufValue& a = f.at("general.alignment");
    if (a.type != GgufType::U32) throw Error(path + ": metadata 'general.alignment' is " + gguf_type_name(a.type) + ", expected u32");
    f.alignment = a.value.get<uint64_t>();
    if (f.alignment == 0 || (f.alignment & (f.alignment - 1)) != 0)
      throw Error(path + ": general.alignment " + std::to_string(f.alignment) + " is not a power of two");
  } else {
    f.alignment = kDefaultAlignment;
  }

  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = c.read_string("tensor info #" + std::to_string(i) + " name");
    const std::string where = path + ": tensor '" + t.name + "'";
    const std::string ctx = "tensor '" + t.name + "'";
    uint32_t n_dims = c.read<uint32_t>(ctx + " n_dims");
    if (n_dims > kMaxDims)
      throw Error(where + ": n_dims " + std::to_string(n_dims) + " exceeds the maximum of " + std::to_string(kMaxDims));
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = c.read<uint64_t>(ctx + " dimension " + std::to_string(d));
      if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          (ne != 0 && numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / ne))
        throw Error(where + ": element count overflows int64");
      numel *= ne;
      t.dims.push_back(ne);
    }
    t.type = c.read<uint32_t>(ctx + " type");
    t.offset = c.read<uint64_t>(ctx + " offset");
    const GgmlTypeInfo* ti = ggml_type_info(t.type);
    if (!ti) throw Error(where + ": unknown ggml type id " + std::to_string(t.type));
    const uint64_t row = t.dims.empty() ? 1 : t.dims[0];
    if (row % static_cast<uint64_t>(ti->block_size) != 0)
      throw Error(where + ": rows of " + std::to_string(row) + " elements are not a whole number of " + ti->name +
                  " blocks of " + std::to_string(ti->block_size));
    uint64_t blocks = numel / static_cast<uint64_t>(ti->block_size);
    if (blocks > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(ti->type_size))
      throw Error(where + ": byte size overflows");
    t.nbytes = blocks * static_cast<uint64_t>(ti->type_size);
    if (f.tensor_index.count(t.name)) throw Error(path + ": duplicate tensor name '" + t.name + "'");
    f.tensor_index[t.name] = f.tensors.size();
    f.tensors.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment (gguf.md "File Structure").
  const uint64_t end_of_infos = c.pos();
  f.data_offset = (end_of_infos + f.alignment - 1) / f.alignment * f.alignment;
  const uint64_t size = f.file->size();
  const uint64_t avail = size > f.data_offset ? size - f.data_offset : 0;
  for (const auto& t : f.tensors) {
    const std::string where = path + ": tensor '" + t.name + "'";
    if (t.offset % f.alignment != 0)
      throw Error(where + ": data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                  std::to_string(f.alignment));
    if (t.offset > avail || t.nbytes > avail - t.offset)
      throw Error(where + ": data [" + std::to_string(f.data_offset + t.offset) + ", " +
                  std::to_string(f.data_offset + t.offset + t.nbytes) + ") runs past the end of the file (" +
                  std::to_string(size) + " bytes): truncated file");
  }
  return f;
}

Tensor gguf_tensor_f32(const GgufFile& f, const std::string& name) {
  const GgufTensorInfo& t = f.tensor(name);
  const GgmlTypeInfo* ti = ggml_type_info(t.type);
  if (!ti || !ti->dequantizable)
    throw Error(f.path + ": tensor '" + name + "': cannot dequantize ggml type " + ggml_type_name(t.type) + " (id " +
                std::to_string(t.type) + "); supported: F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K");
  Tensor out(DType::F32, t.shape());
  if (t.numel() > 0) ggml_dequantize(t.type, f.tensor_data(t), out.mutable_data<float>(), t.numel());
  return out;
}

Tensor gguf_tensor(const GgufFile& f, const std::string& name) {
  const GgufTensorInfo& t = f.tensor(name);
  DType dt;
  switch (static_cast<GgmlType>(t.type)) {
    case GgmlType::F32: dt = DType::F32; break;
    case GgmlType::F16: dt = DType::F16; break;
    case GgmlType::BF16: dt = DType::BF16; break;
    default: return gguf_tensor_f32(f, name);
  }
  const uint8_t* p = f.tensor_data(t);
  // A small general.alignment can leave data unaligned for its element type; copy then.
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(dt) == 0)
    return Tensor::borrow(dt, t.shape(), p, std::shared_ptr<const void>(f.file));
  Tensor out(dt, t.shape());
  if (t.nbytes) std::memcpy(out.mutable_raw(), p, t.nbytes);
  return out;
}

}  // namespace llmc::formats
