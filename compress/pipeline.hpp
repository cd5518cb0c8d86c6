// Compresses a Model in place by a Recipe: block by block, calibration activations of block i
// come from the already-compressed blocks before it (GPTQ's sequential scheme), so memory holds
// one block's statistics plus one boundary activation per calibration sample.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/embedding.hpp"
#include "compress/recipe.hpp"
#include "runtime/ir/model.hpp"

namespace llmc::compress {

struct LinearReport {
  std::string name;       // the linear's node name, e.g. "model.layers.0.self_attn.q_proj"
  std::string method;     // "wanda 2:4 + gptq w4 g128"
  int64_t rows = 0, cols = 0;
  double bits = 32;       // stored bits per weight, scales and zero points included (32: dense f32)
  double sparsity = 0;    // fraction of exact zeros
  double rel_error = -1;  // ‖X·(W − Ŵ)ᵀ‖ / ‖X·Wᵀ‖ on calibration tokens (-1 without calibration)
  double seconds = 0;
  std::string warning;    // e.g. GPTQ damping raised or RTN fallback
};

struct CompressReport {
  std::vector<LinearReport> layers;
  std::vector<EmbeddingReport> embeddings;  // a quantized token embedding table (and tied head)
  double seconds = 0;
  int64_t calib_tokens = 0;
  nlohmann::json to_json() const;
};

struct CompressOptions {
  // stage label, done, total (blocks); called on the calling thread
  std::function<void(const std::string&, int64_t, int64_t)> progress;
};

// Applies every stage of `recipe` to `model` (which must have been built with llmc::Linear nodes,
// e.g. by the architecture builders). calib_tokens feeds the calibration windows when the recipe
// needs them. The recipe and the report are recorded in model.metadata ("llmc.recipe",
// "llmc.report"). Throws Error naming the layer on invalid input.
CompressReport compress_model(Model& model, const Recipe& recipe, const std::vector<int64_t>& calib_tokens,
                              const CompressOptions& opt = {});

// Rounds every float weight of the graph to `dtype` ("f32", "f16", "bf16") and back to f32 in
// memory, so that the model evaluated in memory equals the one written to disk bit for bit.
void round_dense_weights(Model& model, const std::string& dtype);

}  // namespace llmc::compress
