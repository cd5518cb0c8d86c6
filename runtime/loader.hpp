// Loads any supported model file into a Model: an HF checkpoint directory (config.json +
// safetensors + tokenizer files), an ONNX file, a GGUF file, or a compact .llmc file.
// The kind is detected from the content, not the file name.
#pragma once
#include <string>

#include "runtime/ir/model.hpp"

namespace llmc::runtime {

enum class ModelKind { HfDirectory, Onnx, Gguf, Llmc, Safetensors };

// Detects the kind of `path` from its content; throws Error naming the path when unknown.
ModelKind detect_model_kind(const std::string& path);
std::string kind_name(ModelKind k);

Model load_model(const std::string& path);

// Bytes the model occupies on disk (all files of a checkpoint directory).
int64_t model_file_bytes(const std::string& path);

// Builds the graph for an HF-style config (dispatching on model_type) from named weights.
Model build_from_config(const nlohmann::json& config, std::map<std::string, Tensor> weights, const std::string& where);

}  // namespace llmc::runtime
