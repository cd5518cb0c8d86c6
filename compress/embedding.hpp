// Quantized token embeddings: the table of the model's llmc::Embedding becomes a QuantizedWeight
// read by llmc::EmbeddingQ (gather rows, dequantize), and a head tied to it a LinearQ over the
// same stored weight. For small models the table dominates the file (SmolLM2-135M: 49152 × 576).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/recipe.hpp"
#include "runtime/ir/graph.hpp"

namespace llmc::compress {

struct EmbeddingReport {
  std::string name;             // the table's weight name, e.g. "model.embed_tokens.weight"
  int64_t rows = 0, cols = 0;   // vocabulary, hidden size
  int bits = 0;
  int64_t group_size = 0;       // as stored (cols when per row)
  bool symmetric = true;
  bool tied_head = false;       // the head read the same table and is now a LinearQ over it
  int64_t bytes = 0;            // stored bytes: values, scales, zero points
  int64_t dense_bytes = 0;      // the table's bytes at the recipe's dense dtype, as it was stored before
  double rel_error = 0;         // ‖W − Ŵ‖_F / ‖W‖_F over the table
  double bits_per_weight() const { return 8.0 * static_cast<double>(bytes) / static_cast<double>(rows * cols); }
  nlohmann::json to_json() const;
};

// Quantizes the token embedding table, i.e. the llmc::Embedding node fed by the graph's first
// input, round-to-nearest per row at q.embedding_bits with q's group size (a short last group
// allowed) and symmetry. The node becomes llmc::EmbeddingQ {weight: name}; an llmc::Linear that
// reads the table as its weight (a tied lm_head) becomes llmc::LinearQ over the same entry of
// Graph::quantized, so the file stores it once. Throws Error naming the table when the graph has no
// such embedding, when another op reads the table, or when its weights cannot be quantized.
EmbeddingReport quantize_embedding(Graph& g, const QuantStage& q, const std::string& dense_dtype);

}  // namespace llmc::compress
