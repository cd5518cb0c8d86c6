// The compact .llmc file: a safetensors file whose __metadata__ carries the format version, the
// graph, the architecture config, the tokenizer and the recipe with per-layer statistics, and
// whose tensors hold dense weights and the packed parts of compressed ones. Spec: docs/format.md.
#pragma once
#include <string>

#include "runtime/ir/model.hpp"

namespace llmc::formats {

inline constexpr int kLlmcFormatVersion = 1;

struct LlmcWriteOptions {
  // Storage of dense float weights: "f32", "f16" or "bf16". Values that the dtype cannot hold
  // exactly are rounded (compress_model rounds them in memory first, so nothing changes then).
  std::string dense_dtype = "f32";
};

// Writes atomically (temporary file + rename). Tensor order and JSON are deterministic, so the
// same model gives a byte-identical file.
void write_llmc(const Model& model, const std::string& path, const LlmcWriteOptions& opt = {});

// Maps the file; F32 weights are borrowed zero-copy, F16/BF16 converted to F32, compressed
// weights rebuilt as QuantizedWeight. Throws Error naming the file and the field or tensor on
// a version it does not know, a malformed graph, or tensors that do not match the graph.
Model read_llmc(const std::string& path);

// Graph <-> JSON, as stored under "llmc.graph".
nlohmann::json graph_to_json(const Graph& g);
Graph graph_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace llmc::formats
