// Decoder: the three calls evaluation and generation make of a causal LM, so that they run on
// either backend. The CPU Session is adapted by SessionDecoder; the CUDA backend's CudaSession
// (runtime/cuda/) implements it directly.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/session.hpp"

namespace llmc::runtime {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Token ids in (one sequence, continuing at past()), logits [T, vocab] f32 on the host out.
  virtual Tensor forward(const std::vector<int64_t>& ids) = 0;
  virtual void reset() = 0;  // clears the KV cache
  virtual int64_t past() const = 0;
};

class SessionDecoder final : public Decoder {
 public:
  explicit SessionDecoder(Session& s) : s_(s) {}
  Tensor forward(const std::vector<int64_t>& ids) override { return s_.forward(ids); }
  void reset() override { s_.reset(); }
  int64_t past() const override { return s_.past(); }

 private:
  Session& s_;
};

}  // namespace llmc::runtime
