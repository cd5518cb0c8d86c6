#include "compress/mixed_precision.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <regex>
#include <set>

#include "calibrate/block_runner.hpp"
#include "calibrate/samples.hpp"
#include "compress/rtn.hpp"
#include "runtime/eval.hpp"
#include "runtime/session.hpp"

namespace llmc::compress {

namespace {

struct Target {
  size_t block = 0, node = 0;
  std::string name, weight;
  int64_t rows = 0, cols = 0;
};

std::string num(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4f", x);
  return b;
}

// Σ over rows of KL(p ‖ q), p = softmax(ref row), q = softmax(row); rows run in parallel into a
// vector summed in order, so that the result does not depend on the thread count.
double kl_sum(const Tensor& ref, const std::vector<double>& ref_lse, const Tensor& logits, const std::string& what) {
  if (ref.shape() != logits.shape())
    throw Error(what + ": logits " + shape_str(logits.shape()) + " differ in shape from the original's " +
                    shape_str(ref.shape()),
                ErrorKind::Runtime);
  const int64_t V = ref.dim(-1), n = ref.numel() / V;
  std::vector<double> per(n);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* p = ref.data<float>() + i * V;
    const float* q = logits.data<float>() + i * V;
    const double lq_norm = runtime::log_sum_exp(q, V);
    double kl = 0;
    for (int64_t j = 0; j < V; ++j) {
      const double lp = p[j] - ref_lse[i], lq = q[j] - lq_norm;
      kl += std::exp(lp) * (lp - lq);
    }
    per[i] = kl;
  }
  return std::accumulate(per.begin(), per.end(), 0.0);
}

// The Linear node becomes a LinearQ over `qw`, as the compression passes rewrite it.
void make_quantized(Graph& g, const Target& t, QuantizedWeight qw) {
  Node& n = g.nodes[t.node];
  std::vector<std::string> inputs{n.inputs[0]};
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) inputs.push_back(n.inputs[2]);
  n.op = "LinearQ";
  n.inputs = inputs;
  n.attrs = {{"weight", t.weight}, {"act", std::string("none")}};
  g.quantized[t.weight] = std::move(qw);
  g.weights.erase(t.weight);
}

QuantConfig config_of(const QuantStage& q) {
  QuantConfig c;
  c.bits = q.bits;
  c.group_size = q.group_size;
  c.symmetric = q.symmetric;
  c.clip_search = q.clip_search;
  return c;
}

// Bytes the layer takes at setting q: the grid's buffers, plus GPTQ act-order's g_idx (int32 per
// column) where gptq.cpp stores one.
int64_t stored_bytes(const QuantStage& q, int64_t rows, int64_t cols) {
  int64_t b = static_cast<int64_t>(QuantizedWeight::allocate(q.bits, rows, cols, q.group_size, q.symmetric).nbytes());
  if (q.method == "gptq" && q.act_order && q.group_size > 0 && q.group_size < cols) b += 4 * cols;
  return b;
}

}  // namespace

QuantStage high_setting(const QuantStage& low) {
  QuantStage h = low;
  h.bits = 8;
  h.group_size = 0;
  h.act_order = false;
  h.target_bits = 0;
  return h;
}

std::vector<LayerSensitivity> measure_sensitivity(const Model& model, const std::vector<std::vector<int64_t>>& windows,
                                                  const QuantStage& low, const SensitivityOptions& opt) {
  const std::string what = model.source + ": sensitivity";
  if (windows.empty()) throw Error(what + ": no calibration windows", ErrorKind::Usage);
  for (auto& w : windows)
    if (w.empty()) throw Error(what + ": an empty calibration window", ErrorKind::Usage);
  Model work = model;  // weight tensors share storage; one layer at a time is swapped out
  Graph& g = work.graph;
  if (g.inputs.empty() || g.outputs.empty()) throw Error(what + ": graph has no inputs or outputs", ErrorKind::BadInput);
  const auto blocks = calibrate::find_blocks(g);
  if (blocks.empty()) throw Error(what + ": no decoder blocks with linear layers", ErrorKind::BadInput);

  std::vector<Target> targets;
  for (size_t b = 0; b < blocks.size(); ++b)
    for (size_t k = blocks[b].begin; k < blocks[b].end; ++k) {
      const Node& n = g.nodes[k];
      if (n.domain != "llmc" || n.op != "Linear" || n.inputs.size() < 2 || !g.weights.count(n.inputs[1])) continue;
      if (opt.include && !opt.include(n.name)) continue;
      const Tensor& w = g.weights.at(n.inputs[1]);
      targets.push_back({b, k, n.name, n.inputs[1], w.dim(0), w.dim(1)});
    }

  runtime::Session session(work);
  const std::string in_name = g.inputs[0].name, out_name = g.outputs[0].name;
  const size_t n_nodes = g.nodes.size();
  // Activations live at the current block's input, one map per window (the embeddings run once).
  std::vector<runtime::ValueMap> boundary(windows.size());
  for (size_t w = 0; w < windows.size(); ++w) {
    boundary[w][in_name] = Tensor::from_i64({static_cast<int64_t>(windows[w].size())}, windows[w]);
    session.reset();
    session.run_nodes(boundary[w], 0, blocks.front().begin);
  }
  auto logits_from = [&](const runtime::ValueMap& at, size_t begin) {
    runtime::ValueMap v = at;  // tensors are shared, not copied
    session.reset();
    session.run_nodes(v, begin, n_nodes);
    auto it = v.find(out_name);
    if (it == v.end()) throw Error(what + ": graph output '" + out_name + "' was never produced", ErrorKind::Runtime);
    return it->second;
  };
  std::vector<Tensor> ref(windows.size());
  std::vector<std::vector<double>> ref_lse(windows.size());
  int64_t positions = 0;
  for (size_t w = 0; w < windows.size(); ++w) {
    ref[w] = logits_from(boundary[w], blocks.front().begin).to_f32();
    const int64_t V = ref[w].dim(-1), n = ref[w].numel() / V;
    ref_lse[w].resize(n);
    for (int64_t i = 0; i < n; ++i) ref_lse[w][i] = runtime::log_sum_exp(ref[w].data<float>() + i * V, V);
    positions += n;
  }

  const QuantConfig qc = config_of(low);
  const QuantStage high = high_setting(low);
  std::vector<LayerSensitivity> out;
  size_t pos = blocks.front().begin;
  for (size_t ti = 0; ti < targets.size(); ++ti) {
    const Target& t = targets[ti];
    const size_t begin = blocks[t.block].begin;
    if (pos < begin) {  // advance the boundary through the original blocks before this one
      for (auto& v : boundary) {
        session.reset();
        session.run_nodes(v, pos, begin);
      }
      pos = begin;
    }
    const Node saved_node = g.nodes[t.node];
    const Tensor saved_weight = g.weights.at(t.weight);
    const Tensor w32 = saved_weight.to_f32();
    check_quant_config(qc, t.cols, t.name);  // before sizing, so that errors name the layer
    LayerSensitivity s;
    s.name = t.name;
    s.rows = t.rows;
    s.cols = t.cols;
    s.bytes_low = stored_bytes(low, t.rows, t.cols);
    s.bytes_high = stored_bytes(high, t.rows, t.cols);
    make_quantized(g, t, quantize_rtn(w32.data<float>(), t.rows, t.cols, qc, t.name));
    session.refresh();
    double sum = 0;
    for (size_t w = 0; w < windows.size(); ++w)
      sum += kl_sum(ref[w], ref_lse[w], logits_from(boundary[w], begin).to_f32(), what + " of " + t.name);
    s.kl = sum / static_cast<double>(positions);
    g.nodes[t.node] = saved_node;
    g.quantized.erase(t.weight);
    g.weights[t.weight] = saved_weight;
    session.refresh();
    out.push_back(s);
    if (opt.progress) opt.progress(static_cast<int64_t>(ti + 1), static_cast<int64_t>(targets.size()));
  }
  return out;
}

double average_bits(const std::vector<LayerSensitivity>& layers, const std::map<std::string, int>& bits) {
  double bytes = 0, params = 0;
  for (auto& l : layers) {
    auto it = bits.find(l.name);
    bytes += static_cast<double>(it != bits.end() && it->second == 8 ? l.bytes_high : l.bytes_low);
    params += static_cast<double>(l.rows * l.cols);
  }
  return params > 0 ? 8 * bytes / params : 0;
}

std::map<std::string, int> choose_bits(const std::vector<LayerSensitivity>& layers, double target_bits,
                                       const std::string& what) {
  if (layers.empty()) throw Error(what + ": no layers to allocate bits to", ErrorKind::BadInput);
  if (!(target_bits > 0) || !std::isfinite(target_bits))
    throw Error(what + ": target bits must be a positive number, got " + num(target_bits), ErrorKind::Usage);
  std::set<std::string> names;
  int64_t low = 0, high = 0, params = 0;
  for (auto& l : layers) {
    if (!names.insert(l.name).second) throw Error(what + ": layer '" + l.name + "' is listed twice", ErrorKind::BadInput);
    if (l.rows <= 0 || l.cols <= 0 || l.bytes_low <= 0 || l.bytes_high <= 0 || !(l.kl >= 0) || !std::isfinite(l.kl))
      throw Error(what + ": layer '" + l.name + "' has an invalid shape, size or KL", ErrorKind::BadInput);
    low += l.bytes_low;
    high += l.bytes_high;
    params += l.rows * l.cols;
  }
  // The budget in bytes: 8·bytes ≤ target·params, compared in double on integers (exact for any
  // model below 2^50 bytes).
  const double budget = target_bits * static_cast<double>(params);
  std::map<std::string, int> bits;
  for (auto& l : layers) bits[l.name] = 4;
  if (8.0 * static_cast<double>(low) > budget)
    throw Error(what + ": target " + num(target_bits) + " bits per weight is below " +
                    num(8.0 * static_cast<double>(low) / static_cast<double>(params)) +
                    ", the average with every layer at 4 bits (scales and zero points included)",
                ErrorKind::Usage);
  if (8.0 * static_cast<double>(high) <= budget) {
    for (auto& [n, b] : bits) b = 8;
    return bits;
  }
  // Greedy by KL per extra byte (the knapsack's ratio order); a layer that does not fit is
  // skipped so that smaller ones after it may still use the remaining budget.
  std::vector<size_t> order(layers.size());
  std::iota(order.begin(), order.end(), 0);
  auto ratio = [&](size_t i) {
    const int64_t extra = layers[i].extra_bytes();
    return extra > 0 ? layers[i].kl / static_cast<double>(extra) : INFINITY;
  };
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const double ra = ratio(a), rb = ratio(b);
    if (ra != rb) return ra > rb;
    return layers[a].name < layers[b].name;
  });
  int64_t bytes = low;
  for (size_t i : order) {
    const int64_t next = bytes + layers[i].extra_bytes();
    if (8.0 * static_cast<double>(next) > budget) continue;
    bytes = next;
    bits[layers[i].name] = 8;
  }
  return bits;
}

nlohmann::json sensitivity_json(const std::vector<LayerSensitivity>& layers, const std::map<std::string, int>& bits) {
  nlohmann::json j = nlohmann::json::array();
  for (auto& l : layers) {
    auto it = bits.find(l.name);
    j.push_back({{"name", l.name}, {"kl", l.kl}, {"bits", it != bits.end() ? it->second : 4},
                 {"extra_bytes", l.extra_bytes()}});
  }
  return j;
}

std::map<std::string, int> plan_mixed_precision(Model& model, const Recipe& recipe, const Stage& stage,
                                                const std::vector<int64_t>& calib_tokens,
                                                const std::function<void(int64_t, int64_t)>& progress) {
  const QuantStage& q = stage.quant;
  if (calib_tokens.empty())
    throw Error(model.source + ": --target-bits needs calibration data (--calib) to measure layer sensitivity",
                ErrorKind::Usage);
  calibrate::SampleConfig sc = recipe.calib;
  sc.nsamples = std::min<int64_t>(sc.nsamples, 2);
  sc.seqlen = std::min<int64_t>(sc.seqlen, 128);
  auto windows = calibrate::sample_windows(calib_tokens, sc, recipe.calib_file);
  std::vector<std::regex> ignore;
  for (auto& r : stage.ignore) ignore.emplace_back(r);
  SensitivityOptions opt;
  opt.include = [&](const std::string& name) {
    for (auto& r : ignore)
      if (std::regex_search(name, r)) return false;
    return true;
  };
  opt.progress = progress;
  QuantStage low = q;
  low.method = "rtn";
  auto layers = measure_sensitivity(model, windows, low, opt);
  auto bits = choose_bits(layers, q.target_bits, model.source + ": --target-bits");
  model.metadata["llmc.sensitivity"] = sensitivity_json(layers, bits).dump();
  return bits;
}

void quantize_mixed(Graph& g, const std::vector<LinearTarget>& lins, const QuantStage& q,
                    const std::map<std::string, int>& bits, const StatsMap& stats,
                    std::map<std::string, LinearState>& states, calibrate::BlockRunner* runner,
                    runtime::Session* session, size_t block) {
  std::vector<LinearTarget> lo, hi;
  for (auto& l : lins) {
    auto it = bits.find(l.name);
    (it != bits.end() && it->second == 8 ? hi : lo).push_back(l);
  }
  QuantStage q4 = q;
  q4.target_bits = 0;
  if (!lo.empty()) quantize_linears(g, lo, q4, stats, states, runner, session, block);
  if (!hi.empty()) quantize_linears(g, hi, high_setting(q), stats, states, runner, session, block);
}

}  // namespace llmc::compress
