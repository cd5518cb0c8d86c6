// A small helper for architecture builders: appends nodes with generated value names and
// moves checked weights from the source map into the graph.
#pragma once
#include <string>
#include <vector>

#include "runtime/builders/builders.hpp"

namespace llmc::runtime {

class GraphBuilder {
 public:
  GraphBuilder(std::string where, WeightMap& source) : where_(std::move(where)), src_(source) {}

  void input(const std::string& name, DType dt) { m_.graph.inputs.push_back({name, dt, {-1}}); }
  void output(const std::string& name, DType dt) { m_.graph.outputs.push_back({name, dt, {}}); }

  // Moves a weight into the graph (checked against `shape`, converted to F32); returns its name.
  std::string weight(const std::string& name, const Shape& shape);
  bool has_weight(const std::string& name) const { return src_.count(name) || m_.graph.weights.count(name); }

  // Appends an `llmc` (node) or ONNX (onnx) node with one output named after the node.
  std::string node(const std::string& op, std::vector<std::string> inputs, const std::string& name,
                   std::map<std::string, AttrValue> attrs);
  std::string onnx(const std::string& op, std::vector<std::string> inputs, const std::string& name,
                   std::map<std::string, AttrValue> attrs = {});
  void node_to(const std::string& op, std::vector<std::string> inputs, const std::string& name,
               std::map<std::string, AttrValue> attrs, const std::string& output);

  // Linear from `<prefix>.weight` [out, in] and the optional `<prefix>.bias`.
  std::string linear(const std::string& x, const std::string& prefix, int64_t out, int64_t in);

  Model finish();

 private:
  std::string where_;
  WeightMap& src_;
  Model m_;
};

}  // namespace llmc::runtime
