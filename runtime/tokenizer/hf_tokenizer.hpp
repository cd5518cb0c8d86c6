// Internal factories behind tokenizer.hpp's public ones: the HF tokenizer.json pipeline, the
// llama.cpp-style SentencePiece (GGUF "spm") tokenizer, and the libsentencepiece wrapper.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/tokenizer/tokenizer.hpp"

namespace llmc::runtime {

std::unique_ptr<Tokenizer> make_hf_tokenizer(const nlohmann::json& tokenizer_json, const nlohmann::json& tokenizer_config);
std::unique_ptr<Tokenizer> make_spm_gguf_tokenizer(const nlohmann::json& description);
std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::string& model_path);

}  // namespace llmc::runtime
