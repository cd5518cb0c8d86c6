#include "runtime/ir/dtype.hpp"

#include "runtime/ir/error.hpp"

namespace llmc {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: case DType::U64: return 8;
    case DType::F32: case DType::I32: case DType::U32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: case DType::U16: return 2;
    case DType::I8: case DType::U8: case DType::Bool: case DType::I4: case DType::U4: return 1;
  }
  return 1;
}

size_t nbytes_for(DType t, int64_t numel) {
  if (t == DType::I4 || t == DType::U4) return static_cast<size_t>((numel + 1) / 2);
  return static_cast<size_t>(numel) * dtype_size(t);
}

std::string dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::I16: return "I16";
    case DType::U16: return "U16";
    case DType::I32: return "I32";
    case DType::U32: return "U32";
    case DType::I64: return "I64";
    case DType::U64: return "U64";
    case DType::Bool: return "BOOL";
    case DType::I4: return "I4";
    case DType::U4: return "U4";
  }
  return "?";
}

DType dtype_from_name(const std::string& n) {
  static const DType all[] = {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I8,
                              DType::U8,  DType::I16, DType::U16,  DType::I32, DType::U32,
                              DType::I64, DType::U64, DType::Bool, DType::I4,  DType::U4};
  for (DType t : all)
    if (dtype_name(t) == n) return t;
  throw Error("unknown dtype '" + n + "'");
}

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64; }

}  // namespace llmc
