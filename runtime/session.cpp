#include "runtime/session.hpp"

#include <limits>

namespace llmc::runtime {

Session::Session(const Model& model, const KernelTable& kernels) : model_(model), table_(kernels) { refresh(); }

void Session::refresh() {
  const Graph& g = model_.graph;
  kernels_.clear();
  for (const Node& n : g.nodes) {
    auto it = table_.find(kernel_key(n.domain, n.op));
    if (it == table_.end())
      throw Error(model_.source + ": unsupported " + (n.domain.empty() ? "" : "(domain '" + n.domain + "') ") + n.label());
    kernels_.push_back(&it->second);
  }
  state_.assign(g.nodes.size(), {});
  cached_ = false;
  for (const Node& n : g.nodes) cached_ |= n.domain == "llmc" && n.op == "Attention" && n.i("kv_cache", 0) != 0;
  last_use_.clear();
  for (size_t k = 0; k < g.nodes.size(); ++k)
    for (auto& i : g.nodes[k].inputs) last_use_[i] = k;
  for (auto& o : g.outputs) last_use_[o.name] = std::numeric_limits<size_t>::max();
  past_ = 0;
}

void Session::reset() {
  for (auto& s : state_) s.reset();
  past_ = 0;
}

void Session::run_nodes(ValueMap& values, size_t begin, size_t end, const NodeHook& before) {
  const Graph& g = model_.graph;
  for (size_t k = begin; k < end; ++k) {
    const Node& n = g.nodes[k];
    OpContext ctx{n, g, {}, {}, state_[k], past_, 0};
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
      if (w == g.weights.end())
        throw Error(model_.source + ": " + n.label() + ": input '" + name +
                    "' is not produced by any node nor an initializer");
      ctx.inputs.push_back(&w->second);
    }
    if (before) before(k, n, ctx.inputs);
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
      if (!name.empty() && last_use_[name] == k) values.erase(name);
  }
}

std::map<std::string, Tensor> Session::run(const std::map<std::string, Tensor>& feeds) {
  const Graph& g = model_.graph;
  ValueMap values;
  for (const ValueInfo& vi : g.inputs) {
    if (g.weights.count(vi.name)) continue;  // an initializer that is also listed as an input
    if (!feeds.count(vi.name)) throw Error(model_.source + ": graph input '" + vi.name + "' was not given", ErrorKind::Usage);
  }
  for (auto& [k, v] : feeds) values[k] = v;
  int64_t seq = 0;
  if (!g.inputs.empty() && feeds.count(g.inputs[0].name) && feeds.at(g.inputs[0].name).rank() > 0)
    seq = feeds.at(g.inputs[0].name).dim(-1);

  run_nodes(values, 0, g.nodes.size());

  std::map<std::string, Tensor> out;
  for (auto& o : g.outputs) {
    auto it = values.find(o.name);
    if (it != values.end()) {
      out[o.name] = it->second;
      continue;
    }
    auto w = g.weights.find(o.name);
    if (w == g.weights.end()) throw Error(model_.source + ": graph output '" + o.name + "' was never produced");
    out[o.name] = w->second;
  }
  if (cached_) past_ += seq;
  return out;
}

Tensor Session::forward(const std::vector<int64_t>& ids) {
  const Graph& g = model_.graph;
  if (g.inputs.empty() || g.outputs.empty()) throw Error(model_.source + ": graph has no inputs or outputs");
  auto out = run({{g.inputs[0].name, Tensor::from_i64({static_cast<int64_t>(ids.size())}, ids)}});
  return out.at(g.outputs[0].name);
}

}  // namespace llmc::runtime
