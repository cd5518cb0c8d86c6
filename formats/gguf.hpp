// GGUF (ggml's model file, versions 2 and 3, little-endian): typed metadata, tensor infos and
// tensor data, read from a mapped file with every length and offset bounds-checked.
// Spec: ggml docs/gguf.md ("File Structure").
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/gguf_dequant.hpp"
#include "formats/mapped_file.hpp"
#include "runtime/ir/tensor.hpp"

namespace llmc::formats {

// gguf_metadata_value_type.
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};
std::string gguf_type_name(GgufType t);  // "u32", "string", "array", ...

// One metadata value: its GGUF type (and for arrays the element type) and the value as JSON.
// Integers become JSON integers, bools booleans, strings strings (raw bytes, not validated as
// UTF-8), arrays JSON arrays (nested arrays nest). An f32 becomes the shortest decimal that reads
// back as the same f32 (1e-05, not 9.99999974737875e-06), so (float)value is the stored bits.
struct GgufValue {
  GgufType type = GgufType::U8;
  GgufType elem_type = GgufType::U8;  // arrays only: the type of the (outermost) elements
  nlohmann::json value;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // GGUF order: dims[0] (ne[0]) varies fastest
  uint32_t type = 0;           // ggml type id (see GgmlType)
  uint64_t offset = 0;         // from the start of the data section
  uint64_t nbytes = 0;
  // Row-major (PyTorch) shape: dims reversed.
  Shape shape() const;
  int64_t numel() const;
};

struct GgufFile {
  std::string path;
  uint32_t version = 0;
  uint64_t alignment = 32;  // general.alignment, default 32
  uint64_t data_offset = 0;  // absolute file offset of the data section
  std::map<std::string, GgufValue> metadata;
  std::vector<std::string> metadata_order;  // keys in file order
  std::vector<GgufTensorInfo> tensors;      // file order
  std::map<std::string, size_t> tensor_index;
  std::shared_ptr<MappedFile> file;

  bool has(const std::string& key) const { return metadata.count(key) != 0; }
  // Throws Error naming the file and key when absent.
  const GgufValue& at(const std::string& key) const;
  // Typed getters: each throws Error naming the file, the key, and the stored type when the key
  // is absent or holds a value of another kind. get_uint accepts any integer type holding a
  // non-negative value, get_int any integer type, get_float f32/f64 (and integers).
  uint64_t get_uint(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;
  // The value when present, else the default (a present value of the wrong kind still throws).
  uint64_t get_uint_or(const std::string& key, uint64_t dflt) const;
  double get_float_or(const std::string& key, double dflt) const;
  bool get_bool_or(const std::string& key, bool dflt) const;
  std::string get_string_or(const std::string& key, const std::string& dflt) const;

  // All metadata as one JSON object {key: value}.
  nlohmann::json metadata_json() const;

  bool has_tensor(const std::string& name) const { return tensor_index.count(name) != 0; }
  // Throws Error naming the file and tensor when absent.
  const GgufTensorInfo& tensor(const std::string& name) const;
  // The tensor's bytes inside the mapping (bounds were checked by read_gguf).
  const uint8_t* tensor_data(const GgufTensorInfo& t) const { return file->data() + data_offset + t.offset; }
};

// Reads a GGUF file (v2 or v3). Throws Error naming the file (and key or tensor) on: bad magic,
// unsupported version or big-endian file, a count, string or array running past the end of the
// file, an unknown metadata type, duplicate keys or tensor names, n_dims > 4, an unknown ggml
// type (naming tensor and id), a row length that is not a whole number of blocks, a bad
// general.alignment, misaligned tensor offsets, or tensor data past the end of the file.
GgufFile read_gguf(const std::string& path);

// The tensor dequantized to an owned f32 Tensor of row-major shape (reversed GGUF dims).
// Throws Error naming the tensor and its type when the type cannot be dequantized.
Tensor gguf_tensor_f32(const GgufFile& f, const std::string& name);
// F32, F16 and BF16 tensors borrowed zero-copy from the mapping (when suitably aligned), other
// types dequantized to owned f32.
Tensor gguf_tensor(const GgufFile& f, const std::string& name);

}  // namespace llmc::formats
