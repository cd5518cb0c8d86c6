#include "compress/linear_passes.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <Eigen/Core>

#include "compress/awq.hpp"
#include "compress/fold.hpp"
#include "compress/gptq.hpp"
#include "compress/prune.hpp"
#include "compress/rtn.hpp"
#include "compress/smoothquant.hpp"

namespace llmc::compress {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string join_method(const std::string& a, const std::string& b) { return a.empty() ? b : a + " + " + b; }

Tensor weight_f32(const Graph& g, const std::string& name) { return g.weights.at(name).to_f32(); }

void set_weight(Graph& g, const std::string& name, const float* data, int64_t rows, int64_t cols) {
  Tensor t(DType::F32, {rows, cols});
  std::copy(data, data + rows * cols, t.mutable_data<float>());
  g.weights[name] = t;
}

const LinearInputStats& stats_of(const StatsMap& stats, const LinearTarget& l, const char* method) {
  auto it = stats.find(l.input);
  if (it == stats.end()) throw Error(l.name + ": " + method + " needs calibration statistics", ErrorKind::Runtime);
  return it->second;
}

std::string quant_label(const QuantStage& q) {
  std::string s = q.method + " w" + std::to_string(q.bits) + (q.int8_activations ? "a8" : "a16");
  s += q.group_size ? " g" + std::to_string(q.group_size) : " per-channel";
  if (!q.symmetric) s += " asym";
  if (q.act_order) s += " act-order";
  if (q.int8_activations) s += " " + q.act + (q.act == "static" ? " " + q.observer : "");
  return s;
}

// The prune stage's mask for a linear about to be quantized (null when none ran), for GPTQ.
const uint8_t* mask_of(const LinearState& s, const LinearTarget& l) {
  return s.mask.size() == static_cast<size_t>(l.rows * l.cols) ? s.mask.data() : nullptr;
}

// Rewrites the Linear node into a LinearQ over the compressed weight.
void replace_with_quantized(Graph& g, const LinearTarget& l, QuantizedWeight qw, const LinearState& s,
                            const std::string& act, double act_scale) {
  qw.validate(l.weight);
  // Every quantizer keeps a pruned position at exactly zero: RTN, AWQ and SmoothQuant see a 0
  // there and 0 is on every grid; GPTQ is told the mask. Check it rather than patch it.
  if (const uint8_t* mask = mask_of(s, l))
    for (int64_t r = 0; r < qw.rows; ++r)
      for (int64_t c = 0; c < qw.cols; ++c)
        if (!mask[r * qw.cols + c] && qw.q(r, c) != qw.zero(r, qw.group_of(c)))
          throw Error(l.name + ": quantization moved the pruned weight at [" + std::to_string(r) + ", " +
                          std::to_string(c) + "] off zero",
                      ErrorKind::Runtime);
  Node& n = g.nodes[l.node];
  std::vector<std::string> inputs{n.inputs[0]};
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) inputs.push_back(n.inputs[2]);
  n.op = "LinearQ";
  n.inputs = inputs;
  n.attrs = {{"weight", l.weight}, {"act", act}};
  if (act == "static") n.attrs["act_scale"] = act_scale;
  g.quantized[l.weight] = std::move(qw);
  g.weights.erase(l.weight);
}

// Linears grouped by their shared input, in graph order.
std::vector<std::vector<LinearTarget>> by_input(const std::vector<LinearTarget>& lins) {
  std::vector<std::vector<LinearTarget>> groups;
  for (auto& l : lins) {
    auto it = std::find_if(groups.begin(), groups.end(), [&](auto& grp) { return grp[0].input == l.input; });
    if (it == groups.end()) groups.push_back({l});
    else it->push_back(l);
  }
  return groups;
}

// After folding 1/s into a linear's output rows, its reference weight changes the same way.
void fold_into_state(const Graph& g, const std::string& input, const std::vector<float>& s,
                     std::map<std::string, LinearState>& states) {
  const Node* p = producer(g, input);
  if (!p) return;
  const Node* t = nullptr;
  if (p->op == "Linear") t = p;
  else if (p->op == "SwiGLU") t = producer(g, p->inputs.at(1));
  else if (p->op == "Attention") t = producer(g, p->inputs.at(2));
  if (!t || !states.count(t->name) || !states[t->name].original.defined()) return;
  Tensor& w = states[t->name].original;
  w = w.clone();
  const int64_t cols = w.dim(1);
  for (int64_t r = 0; r < w.dim(0); ++r)
    for (int64_t c = 0; c < cols; ++c) w.mutable_data<float>()[r * cols + c] /= s[r];
}

}  // namespace

double global_magnitude_threshold(const Graph& g, const std::vector<LinearTarget>& lins, double sparsity) {
  std::vector<float> mags;
  for (auto& l : lins) {
    Tensor w = weight_f32(g, l.weight);
    for (int64_t i = 0; i < w.numel(); ++i) mags.push_back(std::fabs(w.data<float>()[i]));
  }
  const int64_t k = std::llround(sparsity * static_cast<double>(mags.size()));
  if (k <= 0 || mags.empty()) return -1;
  std::nth_element(mags.begin(), mags.begin() + (k - 1), mags.end());
  return mags[k - 1];
}

void prune_linears(Graph& g, const std::vector<LinearTarget>& lins, const PruneStage& p, const StatsMap& stats,
                   std::map<std::string, LinearState>& states, double global_threshold) {
  SparsityConfig cfg;
  cfg.ratio = p.sparsity;
  cfg.n = p.n;
  cfg.m = p.m;
  const std::string label =
      p.method + " " + (p.m ? std::to_string(p.n) + ":" + std::to_string(p.m)
                            : std::to_string(static_cast<int>(std::lround(p.sparsity * 100))) + "%" +
                                  (p.scope == "global" ? " global" : ""));
  for (auto& l : lins) {
    const auto t0 = Clock::now();
    Tensor w = weight_f32(g, l.weight);
    PruneResult r;
    if (p.method == "magnitude" && global_threshold >= 0) {
      r.weight.assign(w.data<float>(), w.data<float>() + w.numel());
      r.mask.assign(w.numel(), 1);
      for (int64_t i = 0; i < w.numel(); ++i)
        if (std::fabs(r.weight[i]) <= global_threshold) r.weight[i] = 0, r.mask[i] = 0;
    } else if (p.method == "magnitude") {
      r = prune_magnitude(w.data<float>(), l.rows, l.cols, cfg, l.name);
    } else if (p.method == "wanda") {
      auto norms = stats_of(stats, l, "wanda").column_norms();
      r = prune_wanda(w.data<float>(), l.rows, l.cols, norms.data(), cfg, l.name);
    } else {
      SparseGptConfig sc;
      sc.sparsity = cfg;
      r = prune_sparsegpt(w.data<float>(), l.rows, l.cols, stats_of(stats, l, "sparsegpt").hessian().hessian(), sc, l.name);
    }
    set_weight(g, l.weight, r.weight.data(), l.rows, l.cols);
    LinearState& s = states[l.name];
    if (s.mask.empty()) s.mask = r.mask;
    else
      for (size_t i = 0; i < s.mask.size(); ++i) s.mask[i] &= r.mask[i];
    s.method = join_method(s.method, label);
    if (!r.warning.empty()) s.warning = join_method(s.warning, r.warning);
    s.seconds += since(t0);
  }
}

void quantize_linears(Graph& g, const std::vector<LinearTarget>& lins, const QuantStage& q, const StatsMap& stats,
                      std::map<std::string, LinearState>& states, calibrate::BlockRunner* runner,
                      runtime::Session* session, size_t block) {
  QuantConfig qc;
  qc.bits = q.bits;
  qc.group_size = q.group_size;
  qc.symmetric = q.symmetric;
  qc.clip_search = q.clip_search;
  const std::string label = quant_label(q);
  std::map<std::string, QuantizedWeight> done;

  if (q.method == "awq") {
    // Later groups first: a group's scales fold into an earlier op (up_proj for down_proj), which
    // must still be in floating point when they do.
    auto groups = by_input(lins);
    for (auto it = groups.rbegin(); it != groups.rend(); ++it) {
      const auto t0 = Clock::now();
      const auto& grp = *it;
      const auto& st = stats_of(stats, grp[0], "awq");
      std::vector<Tensor> ws;
      std::vector<AwqLinear> al;
      for (auto& l : grp) ws.push_back(weight_f32(g, l.weight));
      for (size_t i = 0; i < grp.size(); ++i) al.push_back({ws[i].data<float>(), grp[i].rows, grp[i].name});
      AwqConfig cfg;
      cfg.quant = qc;
      cfg.quant.clip_search = false;
      const bool foldable = can_fold(g, grp[0].input);
      if (!foldable) cfg.n_grid = 1;  // α = 0: no scaling, clip search only (AutoAWQ skips o_proj under GQA)
      AwqResult r = awq_quantize(al, grp[0].cols, st.sample().data(), st.sample_rows(), cfg);
      if (foldable) {
        fold_inverse_scales(g, grp[0].input, r.scales);
        fold_into_state(g, grp[0].input, r.scales, states);
      }
      const double secs = since(t0) / grp.size();
      for (size_t i = 0; i < grp.size(); ++i) {
        LinearState& s = states[grp[i].name];
        if (foldable) s.in_scale = r.scales;
        s.method = join_method(s.method, label + (foldable ? "" : " (no scale: producer cannot absorb it)"));
        s.seconds += secs;
        done[grp[i].name] = std::move(r.weights[i]);
      }
    }
    for (auto& l : lins) replace_with_quantized(g, l, std::move(done.at(l.name)), states[l.name], "none", 0);
    return;
  }

  if (q.int8_activations) {
    // SmoothQuant migrates outliers of the inputs that a norm produces (q/k/v and gate/up, as
    // the reference smooth_lm does); the other linears are plain W8A8.
    if (q.method == "smoothquant") {
      for (auto& grp : by_input(lins)) {
        const Node* p = producer(g, grp[0].input);
        if (!p || (p->op != "RMSNorm" && p->op != "LayerNorm")) continue;
        const auto t0 = Clock::now();
        std::vector<Tensor> ws;
        std::vector<SmoothLinear> sl;
        for (auto& l : grp) ws.push_back(weight_f32(g, l.weight).clone());
        for (size_t i = 0; i < grp.size(); ++i) sl.push_back({ws[i].data<float>(), grp[i].rows, grp[i].name});
        const auto& st = stats_of(stats, grp[0], "smoothquant");
        auto s = smoothquant_scales(st.abs_max().data(), grp[0].cols, sl, q.alpha);
        fold_inverse_scales(g, grp[0].input, s);
        for (size_t i = 0; i < grp.size(); ++i) {
          apply_smoothing(ws[i].mutable_data<float>(), grp[i].rows, grp[i].cols, s);
          g.weights[grp[i].weight] = ws[i];
          states[grp[i].name].in_scale = s;
          states[grp[i].name].seconds += since(t0) / grp.size();
        }
      }
    }
    std::map<std::string, double> act_scale;  // by input value
    if (q.act == "static") {
      if (!runner || !session) throw Error("static activation scales need calibration data", ErrorKind::Usage);
      std::map<std::string, calibrate::AbsHistogram> hist;
      std::map<size_t, std::string> watched;
      for (auto& l : lins) watched[l.node] = l.input;
      runner->run_block(block, [&](size_t k, const Node&, const std::vector<const Tensor*>& in) {
        auto it = watched.find(k);
        if (it == watched.end()) return;
        const Tensor& x = *in[0];
        hist[it->second].add(x.data<float>(), x.numel());
      }, false);
      const auto kind = calibrate::observer_from_name(q.observer);
      for (auto& [input, h] : hist) act_scale[input] = static_activation_scale(static_cast<float>(h.threshold(kind, q.percentile)), input);
    }
    for (auto& l : lins) {
      const auto t0 = Clock::now();
      Tensor w = weight_f32(g, l.weight);
      QuantizedWeight qw;
      if (q.method == "gptq") {
        GptqConfig gc;
        gc.quant = qc;
        gc.percdamp = q.percdamp;
        gc.act_order = false;  // a per-channel INT8 grid has no groups to reorder
        gc.mask = mask_of(states[l.name], l);
        auto r = gptq_quantize(w.data<float>(), l.rows, l.cols, stats_of(stats, l, "gptq").hessian().hessian(), gc, l.name);
        qw = std::move(r.weight);
        if (!r.warning.empty()) states[l.name].warning = join_method(states[l.name].warning, r.warning);
      } else {
        qw = quantize_w8_per_channel(w.data<float>(), l.rows, l.cols, l.name);
      }
      LinearState& s = states[l.name];
      s.method = join_method(s.method, label);
      s.seconds += since(t0);
      replace_with_quantized(g, l, std::move(qw), s, q.act, q.act == "static" ? act_scale.at(l.input) : 0);
    }
    return;
  }

  for (auto& l : lins) {
    const auto t0 = Clock::now();
    Tensor w = weight_f32(g, l.weight);
    LinearState& s = states[l.name];
    QuantizedWeight qw;
    if (q.method == "gptq") {
      GptqConfig gc;
      gc.quant = qc;
      gc.percdamp = q.percdamp;
      gc.act_order = q.act_order;
      gc.mask = mask_of(s, l);
      auto r = gptq_quantize(w.data<float>(), l.rows, l.cols, stats_of(stats, l, "gptq").hessian().hessian(), gc, l.name);
      qw = std::move(r.weight);
      if (!r.warning.empty()) s.warning = join_method(s.warning, r.warning);
    } else {
      qw = quantize_rtn(w.data<float>(), l.rows, l.cols, qc, l.name);
    }
    s.method = join_method(s.method, label);
    s.seconds += since(t0);
    replace_with_quantized(g, l, std::move(qw), s, "none", 0);
  }
}

LinearReport finish_report(const Graph& g, const LinearTarget& l, const LinearState& s, const LinearInputStats* stats) {
  LinearReport r;
  r.name = l.name;
  r.method = s.method.empty() ? "kept" : s.method;
  r.rows = l.rows;
  r.cols = l.cols;
  r.seconds = s.seconds;
  r.warning = s.warning;
  // the effective weight in the input's original space: dequantized, then ·diag(1/s)
  Tensor eff;
  if (auto it = g.quantized.find(l.weight); it != g.quantized.end()) {
    eff = dequantize(it->second, l.weight);
    r.bits = 8.0 * static_cast<double>(it->second.nbytes()) / static_cast<double>(l.rows * l.cols);
  } else {
    eff = g.weights.at(l.weight).to_f32().clone();
    r.bits = 32;
  }
  float* e = eff.mutable_data<float>();
  if (!s.in_scale.empty())
    for (int64_t i = 0; i < l.rows; ++i)
      for (int64_t j = 0; j < l.cols; ++j) e[i * l.cols + j] /= s.in_scale[j];
  int64_t zeros = 0;
  for (int64_t i = 0; i < eff.numel(); ++i) zeros += e[i] == 0.0f;
  r.sparsity = static_cast<double>(zeros) / eff.numel();
  if (stats && stats->sample_rows() > 0 && s.original.defined()) {
    using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Eigen::Map<const RowMat> X(stats->sample().data(), stats->sample_rows(), l.cols);
    Eigen::Map<const RowMat> W(s.original.data<float>(), l.rows, l.cols), E(e, l.rows, l.cols);
    RowMat ref = X * W.transpose();
    RowMat diff = X * (W - E).transpose();
    const double den = ref.norm();
    r.rel_error = den > 0 ? diff.norm() / den : 0;
  }
  return r;
}

}  // namespace llmc::compress
