// NumPy .npy files (format version 1.0, little-endian, C order) for exchanging arrays such as
// logits with other frameworks. Written atomically, streamed in chunks.
#pragma once
#include <memory>
#include <string>

#include "formats/mapped_file.hpp"
#include "runtime/ir/tensor.hpp"

namespace llmc::formats {

class NpyWriter {
 public:
  // The full shape is declared up front; append() must then deliver exactly that many elements.
  NpyWriter(const std::string& path, DType dtype, const Shape& shape);
  void append(const Tensor& chunk);
  void commit();  // checks the element count, then renames into place

 private:
  std::string path_;
  DType dtype_;
  int64_t expected_ = 0, written_ = 0;
  std::unique_ptr<AtomicWriter> out_;
};

void write_npy(const std::string& path, const Tensor& t);
Tensor read_npy(const std::string& path);

}  // namespace llmc::formats
