// The model IR: a graph of nodes over named values, named weights, and metadata.
// Op names follow ONNX where ONNX has the op; fused transformer ops (RMSNorm, Rotary, Attention
// with KV cache, SwiGLU, Linear) live in the "llmc" domain, documented in docs/design.md.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "runtime/ir/quantized.hpp"
#include "runtime/ir/tensor.hpp"

namespace llmc {

using AttrValue = std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>,
                               std::vector<std::string>, Tensor>;

struct Node {
  std::string op;      // "MatMul", "RMSNorm", ...
  std::string domain;  // "" for the ONNX default domain, "llmc" for fused ops, "com.microsoft", ...
  std::string name;
  std::vector<std::string> inputs;  // "" marks an omitted optional input
  std::vector<std::string> outputs;
  std::map<std::string, AttrValue> attrs;

  bool has(const std::string& a) const { return attrs.count(a) != 0; }
  int64_t i(const std::string& a, int64_t dflt) const;
  int64_t i(const std::string& a) const;
  double f(const std::string& a, double dflt) const;
  std::string s(const std::string& a, const std::string& dflt) const;
  std::vector<int64_t> ints(const std::string& a, const std::vector<int64_t>& dflt = {}) const;
  std::vector<double> floats(const std::string& a) const;
  std::vector<std::string> strings(const std::string& a) const;
  const Tensor& t(const std::string& a) const;
  std::string label() const;  // "op 'X' (node 'name')" for error messages
};

struct ValueInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // -1 for dynamic dimensions
};

struct Graph {
  std::vector<Node> nodes;
  std::vector<ValueInfo> inputs, outputs;
  std::map<std::string, Tensor> weights;  // initializers
  // Compressed linear weights, referenced by name from `llmc::LinearQ` nodes (attribute "weight").
  std::map<std::string, QuantizedWeight> quantized;
  std::map<std::string, int64_t> opsets;  // domain -> version ("" is the ONNX default domain)
};

}  // namespace llmc
