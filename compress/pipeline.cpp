#include "compress/pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <regex>

#include "calibrate/block_runner.hpp"
#include "compress/fold.hpp"
#include "compress/linear_passes.hpp"
#include "compress/mixed_precision.hpp"
#include "compress/shrink.hpp"
#include "runtime/session.hpp"

namespace llmc::compress {

using nlohmann::json;

json CompressReport::to_json() const {
  json j = {{"seconds", seconds}, {"calibration_tokens", calib_tokens}, {"layers", json::array()}};
  for (auto& l : layers) {
    json e = {{"name", l.name}, {"method", l.method}, {"shape", {l.rows, l.cols}}, {"bits", l.bits},
              {"sparsity", l.sparsity}, {"seconds", l.seconds}};
    if (l.rel_error >= 0) e["rel_error"] = l.rel_error;
    if (!l.warning.empty()) e["warning"] = l.warning;
    j["layers"].push_back(e);
  }
  if (!embeddings.empty()) {
    j["embeddings"] = json::array();
    for (auto& e : embeddings) j["embeddings"].push_back(e.to_json());
  }
  return j;
}

void round_dense_weights(Model& model, const std::string& dtype) {
  if (dtype == "f32") return;
  const DType dt = dtype == "bf16" ? DType::BF16 : DType::F16;
  for (auto& [name, t] : model.graph.weights)
    if (t.dtype() == DType::F32 && t.rank() >= 1) t = t.to(dt).to(DType::F32);
}

namespace {

bool matches_any(const std::vector<std::string>& res, const std::string& name) {
  for (auto& r : res)
    if (std::regex_search(name, std::regex(r))) return true;
  return false;
}

// The linear nodes a stage applies to among nodes [begin, end).
std::vector<LinearTarget> linears_in(const Graph& g, size_t begin, size_t end) {
  std::vector<LinearTarget> out;
  for (size_t k = begin; k < end; ++k) {
    const Node& n = g.nodes[k];
    if (n.domain != "llmc" || n.op != "Linear" || n.inputs.size() < 2 || !g.weights.count(n.inputs[1])) continue;
    const Tensor& w = g.weights.at(n.inputs[1]);
    out.push_back({k, n.name, n.inputs[1], n.inputs[0], w.dim(0), w.dim(1)});
  }
  return out;
}

StatsNeeds needs_of(const Recipe& r, int64_t nsamples) {
  StatsNeeds s;
  for (auto& st : r.stages) {
    if (st.kind == Stage::Kind::Prune) {
      s.hessian |= st.prune.method == "sparsegpt";
      s.sq_norm |= st.prune.method == "wanda";  // also the activation-aware structured scores
    } else {
      s.hessian |= st.quant.method == "gptq";
      s.abs_max |= st.quant.method == "smoothquant";
    }
  }
  // 2048 tokens in all: AWQ's search sample and the per-layer error report
  s.sample_rows_per_window = std::max<int64_t>(1, (2048 + nsamples - 1) / nsamples);
  return s;
}

}  // namespace

CompressReport compress_model(Model& model, const Recipe& recipe, const std::vector<int64_t>& calib_tokens,
                              const CompressOptions& opt) {
  validate(recipe);
  const auto t0 = std::chrono::steady_clock::now();
  Graph& g = model.graph;
  CompressReport report;
  std::map<std::string, LinearState> states;  // by linear name

  auto selected = [&](const Stage& st, const LinearTarget& l) { return !matches_any(st.ignore, l.name); };

  std::vector<calibrate::Block> blocks = calibrate::find_blocks(g);
  if (blocks.empty()) throw Error(model.source + ": no decoder blocks with linear layers to compress", ErrorKind::BadInput);

  // Global magnitude thresholds need every layer's weights up front.
  std::vector<double> global_threshold(recipe.stages.size(), -1);
  for (size_t si = 0; si < recipe.stages.size(); ++si) {
    const Stage& st = recipe.stages[si];
    if (st.kind != Stage::Kind::Prune || st.prune.scope != "global") continue;
    std::vector<LinearTarget> all;
    for (auto& b : blocks)
      for (auto& l : linears_in(g, b.begin, b.end))
        if (selected(st, l)) all.push_back(l);
    global_threshold[si] = global_magnitude_threshold(g, all, st.prune.sparsity);
  }

  // Mixed precision: layer sensitivities are measured on the model as it came, before any stage.
  std::map<std::string, int> mixed_bits;
  for (auto& st : recipe.stages)
    if (st.kind == Stage::Kind::Quantize && st.quant.target_bits > 0)
      mixed_bits = plan_mixed_precision(model, recipe, st, calib_tokens, [&](int64_t d, int64_t t) {
        if (opt.progress) opt.progress("sensitivity", d, t);
      });

  // The token embedding goes first, so that calibration sees the model as it will run: block 0's
  // inputs come from the quantized table, as block i + 1's come from the compressed block i.
  for (auto& st : recipe.stages)
    if (st.kind == Stage::Kind::Quantize && st.quant.embedding_bits > 0)
      report.embeddings.push_back(quantize_embedding(g, st.quant, recipe.dense_dtype));

  std::unique_ptr<runtime::Session> session;
  std::unique_ptr<calibrate::BlockRunner> runner;
  StatsNeeds needs;
  // With calibration data at hand, even methods that do not need it get per-layer error reports.
  if (recipe.needs_calibration() || !calib_tokens.empty()) {
    auto samples = calibrate::sample_windows(calib_tokens, recipe.calib, recipe.calib_file);
    needs = needs_of(recipe, recipe.calib.nsamples);
    report.calib_tokens = recipe.calib.nsamples * recipe.calib.seqlen;
    session = std::make_unique<runtime::Session>(model);
    runner = std::make_unique<calibrate::BlockRunner>(*session, std::move(samples));
    runner->start();
  }

  for (size_t b = 0; b < blocks.size(); ++b) {
    const auto& blk = blocks[b];
    if (opt.progress) opt.progress("compress", static_cast<int64_t>(b), static_cast<int64_t>(blocks.size()));
    std::vector<LinearTarget> lins = linears_in(g, blk.begin, blk.end);
    std::map<std::string, LinearInputStats> stats;  // by input value name
    auto gather = [&] {
      stats.clear();
      if (!runner) return;
      for (auto& l : lins)
        if (!stats.count(l.input)) stats.emplace(l.input, LinearInputStats(l.cols, needs, l.name + " input"));
      std::map<size_t, std::string> watched;
      for (auto& l : lins) watched[l.node] = l.input;
      runner->run_block(b, [&](size_t k, const Node&, const std::vector<const Tensor*>& in) {
        auto it = watched.find(k);
        if (it != watched.end()) stats.at(it->second).add(*in[0]);
      }, false);
    };
    gather();
    for (auto& l : lins) states[l.name].original = g.weights.at(l.weight).to_f32();

    for (size_t si = 0; si < recipe.stages.size(); ++si) {
      const Stage& st = recipe.stages[si];
      if (st.kind == Stage::Kind::Prune && !st.prune.structure.empty()) {
        const bool aware = st.prune.method == "wanda";
        auto stats_for = [&](const std::string& suffix) -> const LinearInputStats* {
          for (auto& l : lins)
            if (aware && l.name == blk.name + suffix && stats.count(l.input)) return &stats.at(l.input);
          return nullptr;
        };
        const std::string label = st.prune.method + " " + st.prune.structure + " " +
                                  std::to_string(static_cast<int>(std::lround(st.prune.sparsity * 100))) + "%";
        if (st.prune.structure == "channels")
          shrink_ffn(g, blk.name, st.prune.sparsity, stats_for(".mlp.down_proj"));
        else
          shrink_heads(g, blk.name, st.prune.sparsity, stats_for(".self_attn.o_proj"));
        // shapes changed: errors are measured against the shrunk layers from here on
        lins = linears_in(g, blk.begin, blk.end);
        for (auto& l : lins) {
          LinearState& s = states[l.name];
          s.original = g.weights.at(l.weight).to_f32();
          if (!s.mask.empty() && s.mask.size() != static_cast<size_t>(l.rows * l.cols)) {
            // an earlier unstructured prune: its zeros moved with the kept rows and columns
            s.mask.assign(l.rows * l.cols, 1);
            for (int64_t i = 0; i < l.rows * l.cols; ++i) s.mask[i] = s.original.data<float>()[i] != 0.0f;
          }
          const bool touched = st.prune.structure == "channels" ? l.name.find(".mlp.") != std::string::npos
                                                                : l.name.find(".self_attn.") != std::string::npos;
          if (touched) s.method = s.method.empty() ? label : s.method + " + " + label;
        }
        gather();
        continue;
      }
      std::vector<LinearTarget> sel;
      for (auto& l : lins)
        if (selected(st, l)) sel.push_back(l);
      if (sel.empty()) continue;
      if (st.kind == Stage::Kind::Prune)
        prune_linears(g, sel, st.prune, stats, states, global_threshold[si]);
      else if (st.quant.target_bits > 0)
        quantize_mixed(g, sel, st.quant, mixed_bits, stats, states, runner.get(), session.get(), b);
      else
        quantize_linears(g, sel, st.quant, stats, states, runner.get(), session.get(), b);
    }
    for (auto& l : lins) {
      LinearState& s = states[l.name];
      LinearReport r = finish_report(g, l, s, stats.count(l.input) ? &stats.at(l.input) : nullptr);
      report.layers.push_back(r);
    }
    if (runner) {
      session->refresh();
      runner->run_block(b, {}, true);
    }
  }
  if (opt.progress) opt.progress("compress", static_cast<int64_t>(blocks.size()), static_cast<int64_t>(blocks.size()));

  // An untied head (outside the blocks): round-to-nearest only. A tied head shares the embedding
  // table: it is quantized with it (embedding_bits, above) or stays as it is.
  for (size_t si = 0; si < recipe.stages.size(); ++si) {
    const Stage& st = recipe.stages[si];
    if (st.kind != Stage::Kind::Quantize || !st.include_head) continue;
    auto tail = linears_in(g, blocks.back().end, g.nodes.size());
    for (auto& l : tail) {
      bool shared = false;
      for (auto& n : g.nodes)
        if (&n != &g.nodes[l.node] && std::find(n.inputs.begin(), n.inputs.end(), l.weight) != n.inputs.end()) shared = true;
      if (shared) continue;
      QuantStage q = st.quant;
      q.method = "rtn";
      std::map<std::string, LinearInputStats> none;
      states[l.name].original = g.weights.at(l.weight).to_f32();
      quantize_linears(g, {l}, q, none, states, nullptr, nullptr, 0);
      report.layers.push_back(finish_report(g, l, states[l.name], nullptr));
    }
  }

  for (auto& st : recipe.stages)
    if (st.kind == Stage::Kind::Prune && !st.prune.structure.empty()) update_config_after_shrink(model);
  // GPTQ act-order on a down projection: its permutation moves into gate's and up's rows (exact)
  absorb_act_order(g);
  round_dense_weights(model, recipe.dense_dtype);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  model.metadata["llmc.recipe"] = recipe.to_json().dump();
  // Stored without timings, so that the same inputs give a byte-identical file.
  json stored = report.to_json();
  stored.erase("seconds");
  for (auto& l : stored["layers"]) l.erase("seconds");
  model.metadata["llmc.report"] = stored.dump();
  return report;
}

}  // namespace llmc::compress
