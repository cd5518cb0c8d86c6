// llmc::Error: the one exception type the library throws for bad input or failed runs.
// The CLI maps its kind to an exit code (usage 2, bad input 3, runtime 1).
#pragma once
#include <stdexcept>
#include <string>

namespace llmc {

enum class ErrorKind { Usage, BadInput, Runtime };

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, ErrorKind kind = ErrorKind::BadInput)
      : std::runtime_error(what), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// Throws Error(BadInput) with the message when the condition fails.
inline void check(bool ok, const std::string& msg) {
  if (!ok) throw Error(msg);
}

}  // namespace llmc
