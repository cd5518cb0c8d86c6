#include "runtime/ir/tensor.hpp"

#include <cstring>

namespace llmc {

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)), has_shape_(true) {
  for (int64_t d : shape_) check(d >= 0, "negative dimension in shape " + shape_str(shape_));
  size_t n = nbytes();
  auto buf = std::shared_ptr<uint8_t[]>(new uint8_t[n ? n : 1]());
  data_ = buf.get();
  owner_ = std::shared_ptr<const void>(buf, buf.get());
}

Tensor Tensor::borrow(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.has_shape_ = true;
  t.readonly_ = true;
  t.owner_ = std::move(owner);
  t.data_ = const_cast<void*>(data);
  return t;
}

Tensor Tensor::from_f32(Shape shape, const std::vector<float>& v) {
  Tensor t(DType::F32, std::move(shape));
  check(static_cast<int64_t>(v.size()) == t.numel(), "from_f32: value count does not match shape");
  if (!v.empty()) std::memcpy(t.data_, v.data(), v.size() * 4);
  return t;
}

Tensor Tensor::from_i64(Shape shape, const std::vector<int64_t>& v) {
  Tensor t(DType::I64, std::move(shape));
  check(static_cast<int64_t>(v.size()) == t.numel(), "from_i64: value count does not match shape");
  if (!v.empty()) std::memcpy(t.data_, v.data(), v.size() * 8);
  return t;
}

int64_t Tensor::dim(int i) const {
  int r = rank();
  if (i < 0) i += r;
  check(i >= 0 && i < r, "dimension index out of range for shape " + shape_str(shape_));
  return shape_[i];
}

void* Tensor::mutable_raw() {
  if (readonly_) throw Error("internal: write to a read-only (mapped) tensor", ErrorKind::Runtime);
  return data_;
}

Tensor Tensor::reshaped(Shape shape) const {
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      check(infer < 0, "reshape: more than one -1 in " + shape_str(shape));
      infer = static_cast<int>(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    check(known != 0 && numel() % known == 0, "reshape: cannot infer dimension of " + shape_str(shape));
    shape[infer] = numel() / known;
  }
  check(shape_numel(shape) == numel(),
        "reshape: " + shape_str(shape_) + " has " + std::to_string(numel()) + " elements, not " +
            std::to_string(shape_numel(shape)) + " of " + shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(dtype_, shape_);
  if (nbytes()) std::memcpy(t.data_, data_, nbytes());
  return t;
}

namespace {

template <class T>
double load_as_double(const void* p, int64_t i) { return static_cast<double>(static_cast<const T*>(p)[i]); }

double load(DType t, const void* p, int64_t i) {
  switch (t) {
    case DType::F32: return load_as_double<float>(p, i);
    case DType::F64: return load_as_double<double>(p, i);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::I8: return load_as_double<int8_t>(p, i);
    case DType::U8: return load_as_double<uint8_t>(p, i);
    case DType::Bool: return static_cast<const uint8_t*>(p)[i] ? 1.0 : 0.0;
    case DType::I16: return load_as_double<int16_t>(p, i);
    case DType::U16: return load_as_double<uint16_t>(p, i);
    case DType::I32: return load_as_double<int32_t>(p, i);
    case DType::U32: return load_as_double<uint32_t>(p, i);
    case DType::I64: return load_as_double<int64_t>(p, i);
    case DType::U64: return load_as_double<uint64_t>(p, i);
    case DType::I4: {
      int v = (static_cast<const uint8_t*>(p)[i / 2] >> ((i & 1) * 4)) & 0xf;
      return v >= 8 ? v - 16 : v;
    }
    case DType::U4: return (static_cast<const uint8_t*>(p)[i / 2] >> ((i & 1) * 4)) & 0xf;
  }
  return 0;
}

void store(DType t, void* p, int64_t i, double v) {
  switch (t) {
    case DType::F32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DType::F64: static_cast<double*>(p)[i] = v; break;
    case DType::F16: static_cast<uint16_t*>(p)[i] = f32_to_f16(static_cast<float>(v)); break;
    case DType::BF16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(static_cast<float>(v)); break;
    case DType::I8: static_cast<int8_t*>(p)[i] = static_cast<int8_t>(v); break;
    case DType::U8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(v); break;
    case DType::Bool: static_cast<uint8_t*>(p)[i] = v != 0; break;
    case DType::I16: static_cast<int16_t*>(p)[i] = static_cast<int16_t>(v); break;
    case DType::U16: static_cast<uint16_t*>(p)[i] = static_cast<uint16_t>(v); break;
    case DType::I32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v); break;
    case DType::U32: static_cast<uint32_t*>(p)[i] = static_cast<uint32_t>(v); break;
    case DType::I64: static_cast<int64_t*>(p)[i] = static_cast<int64_t>(v); break;
    case DType::U64: static_cast<uint64_t*>(p)[i] = static_cast<uint64_t>(v); break;
    case DType::I4:
    case DType::U4: {
      auto* b = static_cast<uint8_t*>(p) + i / 2;
      int sh = (i & 1) * 4;
      *b = static_cast<uint8_t>((*b & ~(0xf << sh)) | ((static_cast<int>(v) & 0xf) << sh));
      break;
    }
  }
}

}  // namespace

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return clone();
  Tensor t(dtype, shape_);
  int64_t n = numel();
  // int64 values above 2^53 would lose bits through double; copy them exactly
  if (dtype_ == DType::I64 && dtype == DType::I32) {
    for (int64_t i = 0; i < n; ++i) t.mutable_data<int32_t>()[i] = static_cast<int32_t>(data<int64_t>()[i]);
    return t;
  }
  if (dtype_ == DType::I32 && dtype == DType::I64) {
    for (int64_t i = 0; i < n; ++i) t.mutable_data<int64_t>()[i] = data<int32_t>()[i];
    return t;
  }
  if (dtype_ == DType::F32 && dtype == DType::F16) {
    for (int64_t i = 0; i < n; ++i) t.mutable_data<uint16_t>()[i] = f32_to_f16(data<float>()[i]);
    return t;
  }
  for (int64_t i = 0; i < n; ++i) store(dtype, t.data_, i, load(dtype_, data_, i));
  return t;
}

std::vector<float> Tensor::f32_values() const {
  Tensor f = to_f32();
  return std::vector<float>(f.data<float>(), f.data<float>() + f.numel());
}

std::vector<int64_t> Tensor::i64_values() const {
  std::vector<int64_t> r(numel());
  if (dtype_ == DType::I64) {
    if (!r.empty()) std::memcpy(r.data(), data_, r.size() * 8);
    return r;
  }
  for (int64_t i = 0; i < numel(); ++i) r[i] = static_cast<int64_t>(load(dtype_, data_, i));
  return r;
}

}  // namespace llmc
