#include "runtime/loader.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "formats/gguf.hpp"
#include "formats/gguf_llama.hpp"
#include "formats/hf_config.hpp"
#include "formats/llmc.hpp"
#include "formats/mapped_file.hpp"
#include "formats/onnx.hpp"
#include "formats/safetensors.hpp"
#include "runtime/builders/builders.hpp"

namespace llmc::runtime {

namespace fs = std::filesystem;
using nlohmann::json;

ModelKind detect_model_kind(const std::string& path) {
  if (fs::is_directory(path)) {
    if (fs::exists(fs::path(path) / "config.json")) return ModelKind::HfDirectory;
    throw Error(path + ": a directory without config.json is not a Hugging Face checkpoint");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  unsigned char head[16] = {};
  in.read(reinterpret_cast<char*>(head), sizeof head);
  const auto got = in.gcount();
  if (got >= 4 && std::memcmp(head, "GGUF", 4) == 0) return ModelKind::Gguf;
  if (got >= 9) {
    uint64_t hlen;
    std::memcpy(&hlen, head, 8);
    if (head[8] == '{' && hlen < (1ull << 32)) {
      // safetensors; a .llmc file is safetensors whose metadata declares the format
      std::string header(std::min<uint64_t>(hlen, 1 << 20), '\0');
      in.seekg(8);
      in.read(header.data(), static_cast<std::streamsize>(header.size()));
      return header.find("\"llmc.format_version\"") != std::string::npos ? ModelKind::Llmc : ModelKind::Safetensors;
    }
  }
  // An ONNX ModelProto starts with a Protobuf field tag; ir_version is field 1 (0x08), but exporters
  // may order fields differently, so accept any valid tag of wire type 0 or 2 for fields 1-8.
  if (got >= 2 && (head[0] & 0x7) <= 2 && (head[0] >> 3) >= 1 && (head[0] >> 3) <= 20) return ModelKind::Onnx;
  throw Error(path + ": not a recognised model (expected a Hugging Face directory, .onnx, .gguf or .llmc file)");
}

std::string kind_name(ModelKind k) {
  switch (k) {
    case ModelKind::HfDirectory: return "huggingface";
    case ModelKind::Onnx: return "onnx";
    case ModelKind::Gguf: return "gguf";
    case ModelKind::Llmc: return "llmc";
    case ModelKind::Safetensors: return "safetensors";
  }
  return "?";
}

Model build_from_config(const json& config, std::map<std::string, Tensor> weights, const std::string& where) {
  std::string type = config.value("model_type", "");
  if (type == "llama" || type == "mistral" || type == "qwen2") return build_llama(config, std::move(weights), where);
  if (type == "gpt2") return build_gpt2(config, std::move(weights), where);
  if (type == "bert") return build_bert(config, std::move(weights), where);
  throw Error(where + ": architecture '" + type + "' is not supported (supported: llama, mistral, qwen2, gpt2, bert)");
}

namespace {

Model load_hf(const std::string& dir) {
  fs::path d(dir);
  const std::string cfg_path = (d / "config.json").string();
  json config = formats::read_hf_config(cfg_path);
  auto st = formats::read_safetensors_checkpoint(dir);
  Model m = build_from_config(config, std::move(st.tensors), cfg_path);
  if (fs::exists(d / "tokenizer.json")) {
    auto read_json = [](const fs::path& p) {
      try {
        return json::parse(formats::read_text_file(p.string()));
      } catch (const json::exception& e) {
        throw Error(p.string() + ": invalid JSON: " + e.what());
      }
    };
    m.tokenizer = {{"tokenizer", read_json(d / "tokenizer.json")}, {"tokenizer_config", nullptr}};
    if (fs::exists(d / "tokenizer_config.json")) m.tokenizer["tokenizer_config"] = read_json(d / "tokenizer_config.json");
  } else if (fs::exists(d / "tokenizer.model")) {
    m.tokenizer = {{"sentencepiece_model", (d / "tokenizer.model").string()}};
  }
  return m;
}

Model load_gguf(const std::string& path) {
  auto g = formats::read_gguf(path);
  std::string arch = g.get_string_or("general.architecture", "");
  if (arch != "llama")
    throw Error(path + ": GGUF architecture '" + arch + "' is not supported (supported: llama)");
  json config = formats::gguf_llama_config(g);
  Model m = build_llama(config, formats::gguf_llama_weights(g), path);
  m.tokenizer = formats::gguf_tokenizer_json(g);
  return m;
}

}  // namespace

int64_t model_file_bytes(const std::string& path) {
  if (!fs::is_directory(path)) return static_cast<int64_t>(fs::file_size(path));
  int64_t n = 0;
  for (auto& e : fs::recursive_directory_iterator(path))
    if (e.is_regular_file()) n += static_cast<int64_t>(e.file_size());
  return n;
}

Model load_model(const std::string& path) {
  Model m;
  switch (detect_model_kind(path)) {
    case ModelKind::HfDirectory: m = load_hf(path); break;
    case ModelKind::Gguf: m = load_gguf(path); break;
    case ModelKind::Onnx: m = formats::read_onnx(path); break;
    case ModelKind::Safetensors:
      throw Error(path + ": a bare safetensors file has no architecture; pass the checkpoint directory with its config.json");
    case ModelKind::Llmc: m = formats::read_llmc(path); break;
  }
  m.source = path;
  return m;
}

}  // namespace llmc::runtime
