// Token generation with the KV cache: greedy or sampled (temperature, top-k, top-p), seeded.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <vector>

#include "runtime/decoder.hpp"

namespace llmc::runtime {

struct SamplingOptions {
  double temperature = 0;  // 0: greedy
  int64_t top_k = 0;       // 0: off
  double top_p = 1.0;      // 1: off
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& o) : o_(o), rng_(o.seed) {}
  // Picks the next token from one row of logits.
  int64_t sample(const float* logits, int64_t vocab);

 private:
  SamplingOptions o_;
  std::mt19937_64 rng_;
};

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  std::optional<int64_t> eos_id;
  SamplingOptions sampling;
};

// Prefills `prompt` then decodes one token at a time; `on_token` sees each new id and may
// return false to stop. Returns the generated ids (without the prompt).
std::vector<int64_t> generate(Decoder& d, const std::vector<int64_t>& prompt, const GenerateOptions& o,
                              const std::function<bool(int64_t)>& on_token = {});
std::vector<int64_t> generate(Session& s, const std::vector<int64_t>& prompt, const GenerateOptions& o,
                              const std::function<bool(int64_t)>& on_token = {});

}  // namespace llmc::runtime
