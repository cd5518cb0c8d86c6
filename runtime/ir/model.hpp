// Model: a graph with its weights plus what the formats carried beside it: the architecture
// config, the tokenizer description, and free-form metadata (recipe, statistics, provenance).
#pragma once
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/ir/graph.hpp"

namespace llmc {

struct Model {
  Graph graph;
  std::string arch;          // "llama", "gpt2", "bert", "onnx"
  nlohmann::json config;     // HF-style config.json fields (also built from GGUF metadata)
  nlohmann::json tokenizer;  // tokenizer.json-style description; null when the model has none
  std::map<std::string, std::string> metadata;
  std::string source;        // the path it was loaded from
};

}  // namespace llmc
