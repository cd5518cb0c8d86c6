#include "runtime/session.hpp"

#include <unordered_map>

namespace llmc::runtime {

Session::Session(const Model& model, const KernelTable& kernels) : model_(model) {
  const Graph& g = model.graph;
  for (const Node& n : g.nodes) {
    auto it = kernels.find(kernel_key(n.domain, n.op));
    if (it == kernels.end())
      throw Error(model.source + ": unsupported " + (n.domain.empty() ? "" : "(domain '" + n.domain + "') ") + n.label());
    kernels_.push_back(&it->second);
  }
  state_.resize(g.nodes.size());
}

void Session::reset() {
  for (auto& s : state_) s.reset();
  past_ = 0;
}

std::map<std::string, Tensor> Session::run(const std::map<std::string, Tensor>& feeds) {
  const Graph& g = model_.graph;
  std::unordered_map<std::string, Tensor> values;
  for (const ValueInfo& vi : g.inputs) {
    if (g.weights.count(vi.name)) continue;  // an initializer that is also listed as an input
    auto it = feeds.find(vi.name);
    if (it == feeds.end()) throw Error(model_.source + ": graph input '" + vi.name + "' was not given", ErrorKind::Usage);
    values[vi.name] = it->second;
  }
  for (auto& [k, v] : feeds)
    if (!values.count(k)) values[k] = v;

  // Remaining uses of each intermediate value, so that activations are freed as soon as possible.
  std::unordered_map<std::string, int> uses;
  for (const Node& n : g.nodes)
    for (auto& i : n.inputs) ++uses[i];
  for (auto& o : g.outputs) uses[o.name] += 1 << 20;

  int64_t seq = 0;
  if (!g.inputs.empty() && feeds.count(g.inputs[0].name) && feeds.at(g.inputs[0].name).rank() > 0)
    seq = feeds.at(g.inputs[0].name).dim(-1);

  for (size_t k = 0; k < g.nodes.size(); ++k) {
    const Node& n = g.nodes[k];
    OpContext ctx{n, {}, {}, state_[k], past_, 0};
    ctx.inputs.reserve(n.inputs.size());
    for (auto& name : n.inputs) {
      if (name.empty()) {
        ctx.inputs.push_back(nullptr);
        continue;
      }
      auto it = values.find(name);
      if (it != values.end()) {
        ctx.inputs.push_back(&it->second);
        continue;
      }
      auto w = g.weights.find(name);
      if (w == g.weights.end()) throw Error(model_.source + ": " + n.label() + ": input '" + name + "' is not produced by any node nor an initializer");
      ctx.inputs.push_back(&w->second);
    }
    ctx.outputs.resize(n.outputs.size());
    try {
      (*kernels_[k])(ctx);
    } catch (const Error& e) {
      std::string msg = e.what();
      if (msg.find(n.label()) == std::string::npos) msg = n.label() + ": " + msg;
      throw Error(msg, e.kind());
    }
    for (size_t o = 0; o < n.outputs.size(); ++o)
      if (!n.outputs[o].empty()) values[n.outputs[o]] = std::move(ctx.outputs[o]);
    for (auto& name : n.inputs)
      if (!name.empty() && --uses[name] == 0) values.erase(name);
  }
  std::map<std::string, Tensor> out;
  for (auto& o : g.outputs) {
    auto it = values.find(o.name);
    if (it == values.end()) {
      auto w = g.weights.find(o.name);
      if (w == g.weights.end()) throw Error(model_.source + ": graph output '" + o.name + "' was never produced");
      out[o.name] = w->second;
    } else {
      out[o.name] = it->second;
    }
  }
  past_ += seq;
  return out;
}

Tensor Session::forward(const std::vector<int64_t>& ids) {
  const Graph& g = model_.graph;
  if (g.inputs.empty() || g.outputs.empty()) throw Error(model_.source + ": graph has no inputs or outputs");
  auto out = run({{g.inputs[0].name, Tensor::from_i64({static_cast<int64_t>(ids.size())}, ids)}});
  return out.at(g.outputs[0].name);
}

}  // namespace llmc::runtime
