// Token embedding quantization (compress/embedding.hpp): the table to a QuantizedWeight, the graph rewired.
#include "compress/embedding.hpp"

#include <cmath>

#include "compress/rtn.hpp"

namespace llmc::compress {

nlohmann::json EmbeddingReport::to_json() const {
  return {{"name", name},           {"shape", {rows, cols}}, {"bits", bits},
          {"group_size", group_size}, {"symmetric", symmetric}, {"tied_head", tied_head},
          {"bytes", bytes},         {"dense_bytes", dense_bytes}, {"bits_per_weight", bits_per_weight()},
          {"rel_error", rel_error}};
}

EmbeddingReport quantize_embedding(Graph& g, const QuantStage& q, const std::string& dense_dtype) {
  const std::string what = "--quantize-embeddings";
  if (g.inputs.empty()) throw Error(what + ": the graph has no inputs", ErrorKind::BadInput);
  const std::string& ids = g.inputs[0].name;
  Node* emb = nullptr;
  for (Node& n : g.nodes)
    if (n.domain == "llmc" && n.op == "Embedding" && n.inputs.size() == 2 && n.inputs[1] == ids &&
        g.weights.count(n.inputs[0])) {
      emb = &n;
      break;
    }
  if (!emb)
    throw Error(what + ": no token embedding table (an llmc::Embedding over '" + ids + "') in the graph",
                ErrorKind::BadInput);
  const std::string name = emb->inputs[0];
  const Tensor table = g.weights.at(name).to_f32();
  if (table.rank() != 2) throw Error(what + ": embedding table '" + name + "' is not 2-D", ErrorKind::BadInput);

  // Every other reader of the table must be a linear that uses it as its weight (a tied head).
  std::vector<Node*> heads;
  for (Node& n : g.nodes) {
    if (&n == emb) continue;
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      if (n.inputs[k] != name) continue;
      if (n.domain == "llmc" && n.op == "Linear" && k == 1) {
        heads.push_back(&n);
      } else {
        throw Error(what + ": embedding table '" + name + "' is also read by " + n.label() +
                        ", which cannot take a quantized weight",
                    ErrorKind::BadInput);
      }
    }
  }

  QuantConfig qc;
  qc.bits = q.embedding_bits;
  qc.group_size = q.group_size;
  qc.symmetric = q.symmetric;
  const int64_t rows = table.dim(0), cols = table.dim(1);
  QuantizedWeight qw = quantize_rtn(table.data<float>(), rows, cols, qc, name);
  qw.validate(name);

  EmbeddingReport r;
  r.name = name;
  r.rows = rows;
  r.cols = cols;
  r.bits = qw.bits;
  r.group_size = qw.group_len();
  r.symmetric = qw.symmetric;
  r.tied_head = !heads.empty();
  r.bytes = static_cast<int64_t>(qw.nbytes());
  const DType dt = dense_dtype == "f32" ? DType::F32 : dense_dtype == "bf16" ? DType::BF16 : DType::F16;
  r.dense_bytes = rows * cols * static_cast<int64_t>(dtype_size(dt));
  {
    const Tensor back = dequantize(qw, name);
    double num = 0, den = 0;
    for (int64_t i = 0; i < rows * cols; ++i) {
      const double w = table.data<float>()[i], d = w - back.data<float>()[i];
      num += d * d;
      den += w * w;
    }
    r.rel_error = den > 0 ? std::sqrt(num / den) : 0;
  }

  emb->op = "EmbeddingQ";
  emb->inputs = {ids};
  emb->attrs = {{"weight", name}};
  for (Node* h : heads) {
    std::vector<std::string> inputs{h->inputs[0]};
    if (h->inputs.size() > 2 && !h->inputs[2].empty()) inputs.push_back(h->inputs[2]);
    h->op = "LinearQ";
    h->inputs = inputs;
    h->attrs = {{"weight", name}, {"act", std::string("none")}};
  }
  g.quantized[name] = std::move(qw);
  g.weights.erase(name);
  return r;
}

}  // namespace llmc::compress
