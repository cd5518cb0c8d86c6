// What a model file stores, tensor by tensor, as `llmcompress inspect` reports it.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace llmc::runtime {

struct StoredTensor {
  std::string name, dtype;  // dtype as stored: F16, Q4_1, I8, ...
  std::vector<int64_t> shape;
  int64_t numel = 0, bytes = 0;
  double sparsity = -1;  // fraction of exact zeros; -1 when not counted
};

struct ModelInfo {
  std::string format;
  std::vector<StoredTensor> tensors;
  int64_t parameters = 0, bytes = 0;
  nlohmann::json config = nlohmann::json::object();
  nlohmann::json metadata = nlohmann::json::object();
};

ModelInfo inspect_model(const std::string& path, bool count_zeros);

}  // namespace llmc::runtime
