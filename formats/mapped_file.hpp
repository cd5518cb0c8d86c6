// A read-only memory mapping of a whole file, shared by the tensors that borrow from it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace llmc::formats {

class MappedFile {
 public:
  // Maps `path` read-only; throws Error naming the file when it cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Writes through a temporary file in the same directory, renamed over `path` by commit();
// destroyed without commit() it removes the temporary, so a failed run leaves nothing behind.
class AtomicWriter {
 public:
  explicit AtomicWriter(const std::string& path);
  ~AtomicWriter();
  void write(const void* data, size_t n);
  void commit();
  size_t written() const { return written_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  size_t written_ = 0;
};

// Reads a whole (small) file into a string; throws Error naming it on failure.
std::string read_text_file(const std::string& path);

}  // namespace llmc::formats
