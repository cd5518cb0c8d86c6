// Tensor: a dtype, a shape and contiguous row-major storage that is owned, or borrowed from a
// mapped file (read-only) and kept alive by a shared owner.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/ir/dtype.hpp"
#include "runtime/ir/error.hpp"

namespace llmc {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  // Owned, zero-filled storage.
  Tensor(DType dtype, Shape shape);
  // Borrowed storage: `data` must stay valid while `owner` lives; the tensor is read-only.
  static Tensor borrow(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner);
  // Owned f32 tensor filled from values (size must match the shape).
  static Tensor from_f32(Shape shape, const std::vector<float>& values);
  static Tensor from_i64(Shape shape, const std::vector<int64_t>& values);
  static Tensor scalar_f32(float v) { return from_f32({}, {v}); }

  bool defined() const { return has_shape_; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const;  // negative i counts from the end
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return nbytes_for(dtype_, numel()); }
  bool readonly() const { return readonly_; }

  const void* raw() const { return data_; }
  void* mutable_raw();
  template <class T>
  const T* data() const { return static_cast<const T*>(data_); }
  template <class T>
  T* mutable_data() { return static_cast<T*>(mutable_raw()); }

  // Same storage, new shape with the same element count (-1 infers one dimension).
  Tensor reshaped(Shape shape) const;
  // Deep copy into owned storage.
  Tensor clone() const;
  // Element-wise conversion; floats round to nearest even, ints to floats exactly where they fit.
  Tensor to(DType dtype) const;
  Tensor to_f32() const { return dtype_ == DType::F32 ? *this : to(DType::F32); }
  // Values as f32/i64 vectors (copy), for tests and small tensors.
  std::vector<float> f32_values() const;
  std::vector<int64_t> i64_values() const;

 private:
  DType dtype_ = DType::F32;
  Shape shape_;
  bool has_shape_ = false;
  bool readonly_ = false;
  std::shared_ptr<const void> owner_;
  void* data_ = nullptr;
};

}  // namespace llmc
