// Architecture builders: turn an HF-style config and named weights into a Model whose graph
// uses the fused `llmc` ops (docs/design.md). Weights keep their HF names.
#pragma once
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/ir/model.hpp"

namespace llmc::runtime {

using WeightMap = std::map<std::string, Tensor>;

// The Llama family: llama, mistral, qwen2 (SmolLM is llama). `where` names the source in errors.
Model build_llama(const nlohmann::json& config, WeightMap weights, const std::string& where);

// GPT-2 (learned positions, LayerNorm, Conv1D weights stored [in, out], tanh GELU, tied head).
Model build_gpt2(const nlohmann::json& config, WeightMap weights, const std::string& where);

// BERT encoder (word + position + token-type embeddings, post-norm, erf GELU); outputs
// last_hidden_state.
Model build_bert(const nlohmann::json& config, WeightMap weights, const std::string& where);

// Takes weight `name` from `w`, checking it exists and has `shape`; floats are converted to F32.
Tensor take_weight(WeightMap& w, const std::string& name, const Shape& shape, const std::string& where);

}  // namespace llmc::runtime
