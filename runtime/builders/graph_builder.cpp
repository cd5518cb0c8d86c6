#include "runtime/builders/graph_builder.hpp"

namespace llmc::runtime {

std::string GraphBuilder::weight(const std::string& name, const Shape& shape) {
  if (!m_.graph.weights.count(name)) m_.graph.weights[name] = take_weight(src_, name, shape, where_);
  return name;
}

std::string GraphBuilder::node(const std::string& op, std::vector<std::string> inputs, const std::string& name,
                               std::map<std::string, AttrValue> attrs) {
  node_to(op, std::move(inputs), name, std::move(attrs), name);
  return name;
}

std::string GraphBuilder::onnx(const std::string& op, std::vector<std::string> inputs, const std::string& name,
                               std::map<std::string, AttrValue> attrs) {
  m_.graph.nodes.push_back(Node{op, "", name, std::move(inputs), {name}, std::move(attrs)});
  return name;
}

void GraphBuilder::node_to(const std::string& op, std::vector<std::string> inputs, const std::string& name,
                           std::map<std::string, AttrValue> attrs, const std::string& output) {
  m_.graph.nodes.push_back(Node{op, "llmc", name, std::move(inputs), {output}, std::move(attrs)});
}

std::string GraphBuilder::linear(const std::string& x, const std::string& prefix, int64_t out, int64_t in) {
  std::vector<std::string> ins{x, weight(prefix + ".weight", {out, in})};
  if (has_weight(prefix + ".bias")) ins.push_back(weight(prefix + ".bias", {out}));
  return node("Linear", std::move(ins), prefix, {});
}

Model GraphBuilder::finish() {
  m_.graph.opsets[""] = 17;
  m_.graph.opsets["llmc"] = 1;
  return std::move(m_);
}

}  // namespace llmc::runtime
