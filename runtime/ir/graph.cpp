#include "runtime/ir/graph.hpp"

namespace llmc {

namespace {
template <class T>
const T* get(const Node& n, const std::string& a) {
  auto it = n.attrs.find(a);
  if (it == n.attrs.end()) return nullptr;
  const T* v = std::get_if<T>(&it->second);
  if (!v) throw Error(n.label() + ": attribute '" + a + "' has the wrong type");
  return v;
}
}  // namespace

std::string Node::label() const { return "op '" + op + "' (node '" + name + "')"; }

int64_t Node::i(const std::string& a, int64_t dflt) const {
  auto it = attrs.find(a);
  if (it == attrs.end()) return dflt;
  if (auto* d = std::get_if<double>(&it->second)) return static_cast<int64_t>(*d);
  return *get<int64_t>(*this, a);
}

int64_t Node::i(const std::string& a) const {
  if (!has(a)) throw Error(label() + ": missing required attribute '" + a + "'");
  return i(a, 0);
}

double Node::f(const std::string& a, double dflt) const {
  auto it = attrs.find(a);
  if (it == attrs.end()) return dflt;
  if (auto* v = std::get_if<int64_t>(&it->second)) return static_cast<double>(*v);
  return *get<double>(*this, a);
}

std::string Node::s(const std::string& a, const std::string& dflt) const {
  auto* v = get<std::string>(*this, a);
  return v ? *v : dflt;
}

std::vector<int64_t> Node::ints(const std::string& a, const std::vector<int64_t>& dflt) const {
  auto* v = get<std::vector<int64_t>>(*this, a);
  return v ? *v : dflt;
}

std::vector<double> Node::floats(const std::string& a) const {
  auto* v = get<std::vector<double>>(*this, a);
  return v ? *v : std::vector<double>{};
}

std::vector<std::string> Node::strings(const std::string& a) const {
  auto* v = get<std::vector<std::string>>(*this, a);
  return v ? *v : std::vector<std::string>{};
}

const Tensor& Node::t(const std::string& a) const {
  auto* v = get<Tensor>(*this, a);
  if (!v) throw Error(label() + ": missing required tensor attribute '" + a + "'");
  return *v;
}

}  // namespace llmc
