#include "compress/recipe.hpp"

#include <cmath>
#include <regex>

#ifdef LLMC_HAVE_YAML
#include <yaml-cpp/yaml.h>
#endif

#include "runtime/ir/error.hpp"

namespace llmc::compress {

using nlohmann::json;

bool Recipe::needs_calibration() const {
  for (auto& s : stages) {
    if (s.kind == Stage::Kind::Prune && s.prune.method != "magnitude") return true;
    if (s.kind == Stage::Kind::Quantize && (s.quant.method != "rtn" || (s.quant.int8_activations && s.quant.act == "static")))
      return true;
    if (s.kind == Stage::Kind::Quantize && s.quant.target_bits > 0) return true;  // sensitivity windows
  }
  return false;
}

json Recipe::to_json() const {
  json j = {{"dense_dtype", dense_dtype}, {"stages", json::array()}};
  if (!calib_file.empty())
    j["calibration"] = {{"data", calib_file}, {"nsamples", calib.nsamples}, {"seqlen", calib.seqlen}, {"seed", calib.seed}};
  for (auto& s : stages) {
    json st = {{"ignore", s.ignore}, {"include_head", s.include_head}};
    if (s.kind == Stage::Kind::Prune) {
      st["prune"] = {{"method", s.prune.method}, {"scope", s.prune.scope}};
      if (s.prune.m) st["prune"]["pattern"] = std::to_string(s.prune.n) + ":" + std::to_string(s.prune.m);
      else st["prune"]["sparsity"] = s.prune.sparsity;
      if (!s.prune.structure.empty()) st["prune"]["pattern"] = s.prune.structure;
    } else {
      const auto& q = s.quant;
      st["quantize"] = {{"method", q.method}, {"bits", q.bits}, {"group_size", q.group_size}, {"symmetric", q.symmetric}};
      if (q.method == "gptq") st["quantize"].update({{"act_order", q.act_order}, {"percdamp", q.percdamp}});
      if (q.method == "rtn") st["quantize"]["clip_search"] = q.clip_search;
      if (q.method == "smoothquant") st["quantize"]["alpha"] = q.alpha;
      if (q.target_bits > 0) st["quantize"]["target_bits"] = q.target_bits;
      if (q.embedding_bits > 0) st["quantize"]["embedding_bits"] = q.embedding_bits;
      if (q.int8_activations) {
        st["quantize"]["activations"] = {{"bits", 8}, {"mode", q.act}};
        if (q.act == "static") st["quantize"]["activations"].update({{"observer", q.observer}, {"percentile", q.percentile}});
      }
    }
    j["stages"].push_back(st);
  }
  return j;
}

void apply_scheme(QuantStage& q, const std::string& scheme) {
  if (scheme == "w4a16") {
    q.bits = 4;
    q.int8_activations = false;
  } else if (scheme == "w8a16") {
    q.bits = 8;
    q.int8_activations = false;
  } else if (scheme == "w8a8") {
    q.bits = 8;
    q.int8_activations = true;
    q.group_size = 0;
    q.symmetric = true;
  } else {
    throw Error("unknown scheme '" + scheme + "' (expected w4a16, w8a16 or w8a8)", ErrorKind::Usage);
  }
}

void apply_pattern(PruneStage& p, const std::string& pattern) {
  p.structure.clear();
  p.n = p.m = 0;
  if (pattern == "unstructured") return;
  if (pattern == "channels" || pattern == "heads") {
    p.structure = pattern;
    return;
  }
  std::smatch m;
  static const std::regex nm(R"((\d+):(\d+))");
  if (!std::regex_match(pattern, m, nm))
    throw Error("unknown pattern '" + pattern + "' (expected unstructured, N:M such as 2:4, channels or heads)",
                ErrorKind::Usage);
  p.n = std::stoi(m[1]);
  p.m = std::stoi(m[2]);
}

void validate(const Recipe& r) {
  if (r.stages.empty()) throw Error("recipe: no stages", ErrorKind::Usage);
  if (r.dense_dtype != "f32" && r.dense_dtype != "f16" && r.dense_dtype != "bf16")
    throw Error("recipe: dense_dtype must be f32, f16 or bf16, got '" + r.dense_dtype + "'", ErrorKind::Usage);
  int quant_stages = 0;
  bool structured = false;
  for (size_t i = 0; i < r.stages.size(); ++i) {
    const Stage& s = r.stages[i];
    const std::string where = "recipe stage " + std::to_string(i + 1) + ": ";
    for (auto& re : s.ignore) {
      try {
        std::regex x(re);
      } catch (const std::regex_error&) {
        throw Error(where + "ignore pattern '" + re + "' is not a valid regular expression", ErrorKind::Usage);
      }
    }
    if (s.kind == Stage::Kind::Prune) {
      const auto& p = s.prune;
      if (p.method != "magnitude" && p.method != "wanda" && p.method != "sparsegpt")
        throw Error(where + "prune method must be magnitude, wanda or sparsegpt, got '" + p.method + "'", ErrorKind::Usage);
      if (p.m == 0 && !(p.sparsity >= 0 && p.sparsity < 1))
        throw Error(where + "sparsity must be in [0, 1), got " + std::to_string(p.sparsity), ErrorKind::Usage);
      if (p.m != 0 && !(p.n >= 1 && p.n < p.m))
        throw Error(where + "N:M pattern needs 1 <= N < M, got " + std::to_string(p.n) + ":" + std::to_string(p.m),
                    ErrorKind::Usage);
      if (p.scope != "layer" && p.scope != "global")
        throw Error(where + "scope must be layer or global", ErrorKind::Usage);
      if (p.scope == "global" && (p.method != "magnitude" || p.m != 0))
        throw Error(where + "a global threshold applies to unstructured magnitude pruning only", ErrorKind::Usage);
      if (!p.structure.empty() && p.method == "sparsegpt")
        throw Error(where + "structured pruning scores by magnitude or wanda, not sparsegpt", ErrorKind::Usage);
      if (quant_stages) throw Error(where + "pruning must come before quantization", ErrorKind::Usage);
      structured |= !p.structure.empty();
    } else {
      const auto& q = s.quant;
      ++quant_stages;
      if (quant_stages > 1) throw Error(where + "only one quantization stage is allowed", ErrorKind::Usage);
      if (q.method != "rtn" && q.method != "gptq" && q.method != "awq" && q.method != "smoothquant")
        throw Error(where + "quantization method must be rtn, gptq, awq or smoothquant, got '" + q.method + "'",
                    ErrorKind::Usage);
      if (q.bits != 4 && q.bits != 8) throw Error(where + "bits must be 4 or 8", ErrorKind::Usage);
      if (q.group_size < 0) throw Error(where + "group size must be >= 0", ErrorKind::Usage);
      if (q.method == "smoothquant" && !q.int8_activations)
        throw Error(where + "smoothquant is a W8A8 method: use scheme w8a8", ErrorKind::Usage);
      if (q.int8_activations && (q.bits != 8 || !q.symmetric || q.group_size != 0))
        throw Error(where + "W8A8 needs 8-bit symmetric per-channel weights", ErrorKind::Usage);
      if (q.act != "dynamic" && q.act != "static")
        throw Error(where + "activation mode must be dynamic or static", ErrorKind::Usage);
      if (!(q.alpha >= 0 && q.alpha <= 1)) throw Error(where + "alpha must be in [0, 1]", ErrorKind::Usage);
      if (!(q.percdamp > 0)) throw Error(where + "percdamp must be positive", ErrorKind::Usage);
      if (q.embedding_bits != 0 && q.embedding_bits != 4 && q.embedding_bits != 8)
        throw Error(where + "embedding bits must be 4 or 8 (0: keep the embeddings), got " +
                        std::to_string(q.embedding_bits),
                    ErrorKind::Usage);
      if (q.target_bits != 0) {
        if (!(q.target_bits > 0) || !std::isfinite(q.target_bits))
          throw Error(where + "target_bits must be a positive number", ErrorKind::Usage);
        if (q.method != "rtn" && q.method != "gptq")
          throw Error(where + "target_bits (mixed precision) works with method rtn or gptq, not " + q.method,
                      ErrorKind::Usage);
        if (q.bits != 4 || q.int8_activations)
          throw Error(where + "target_bits (mixed precision) needs scheme w4a16 (layers go to INT4 or INT8)",
                      ErrorKind::Usage);
        if (structured)
          throw Error(where + "target_bits cannot follow structured pruning (sizes are measured before it)",
                      ErrorKind::Usage);
      }
    }
  }
  if (r.needs_calibration() && r.calib_file.empty())
    throw Error("recipe: a stage needs calibration data: give --calib FILE (or calibration.data in the recipe)",
                ErrorKind::Usage);
}

#ifdef LLMC_HAVE_YAML
namespace {

template <class T>
T get(const YAML::Node& n, const char* key, T dflt, const std::string& where) {
  if (!n[key]) return dflt;
  try {
    return n[key].as<T>();
  } catch (const YAML::Exception&) {
    throw Error(where + ": key '" + key + "' has the wrong type", ErrorKind::Usage);
  }
}

void check_keys(const YAML::Node& n, const std::vector<std::string>& allowed, const std::string& where) {
  for (auto it = n.begin(); it != n.end(); ++it) {
    std::string k = it->first.as<std::string>();
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
      throw Error(where + ": unknown key '" + k + "'", ErrorKind::Usage);
  }
}

}  // namespace

Recipe read_recipe_yaml(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw Error(path + ": cannot open recipe", ErrorKind::BadInput);
  } catch (const YAML::Exception& e) {
    throw Error(path + ": invalid YAML: " + e.what(), ErrorKind::BadInput);
  }
  if (!root.IsMap()) throw Error(path + ": a recipe is a mapping with 'stages'", ErrorKind::BadInput);
  check_keys(root, {"calibration", "stages", "dense_dtype"}, path);
  Recipe r;
  r.dense_dtype = get<std::string>(root, "dense_dtype", r.dense_dtype, path);
  if (auto c = root["calibration"]) {
    const std::string w = path + ": calibration";
    check_keys(c, {"data", "nsamples", "seqlen", "seed"}, w);
    r.calib_file = get<std::string>(c, "data", "", w);
    r.calib.nsamples = get<int64_t>(c, "nsamples", r.calib.nsamples, w);
    r.calib.seqlen = get<int64_t>(c, "seqlen", r.calib.seqlen, w);
    r.calib.seed = get<uint64_t>(c, "seed", r.calib.seed, w);
  }
  if (!root["stages"] || !root["stages"].IsSequence()) throw Error(path + ": 'stages' must be a list", ErrorKind::BadInput);
  int i = 0;
  for (const auto& sn : root["stages"]) {
    const std::string w = path + ": stage " + std::to_string(++i);
    if (!sn.IsMap() || sn.size() != 1) throw Error(w + ": each stage is one of 'prune:' or 'quantize:'", ErrorKind::BadInput);
    Stage s;
    const std::string kind = sn.begin()->first.as<std::string>();
    const YAML::Node b = sn.begin()->second;
    if (kind == "prune") {
      s.kind = Stage::Kind::Prune;
      check_keys(b, {"method", "sparsity", "pattern", "scope", "ignore"}, w);
      s.prune.method = get<std::string>(b, "method", s.prune.method, w);
      s.prune.sparsity = get<double>(b, "sparsity", s.prune.sparsity, w);
      s.prune.scope = get<std::string>(b, "scope", s.prune.scope, w);
      apply_pattern(s.prune, get<std::string>(b, "pattern", "unstructured", w));
    } else if (kind == "quantize") {
      s.kind = Stage::Kind::Quantize;
      check_keys(b, {"method", "scheme", "group_size", "symmetric", "act_order", "clip_search", "percdamp", "activations",
                     "observer", "percentile", "alpha", "ignore", "include_head", "target_bits", "quantize_embeddings"},
                 w);
      auto& q = s.quant;
      q.method = get<std::string>(b, "method", q.method, w);
      apply_scheme(q, get<std::string>(b, "scheme", "w4a16", w));
      q.group_size = get<int64_t>(b, "group_size", q.group_size, w);
      q.symmetric = get<bool>(b, "symmetric", q.symmetric, w);
      q.act_order = get<bool>(b, "act_order", q.act_order, w);
      q.clip_search = get<bool>(b, "clip_search", q.clip_search, w);
      q.percdamp = get<double>(b, "percdamp", q.percdamp, w);
      q.act = get<std::string>(b, "activations", q.act, w);
      q.observer = get<std::string>(b, "observer", q.observer, w);
      q.percentile = get<double>(b, "percentile", q.percentile, w);
      q.alpha = get<double>(b, "alpha", q.alpha, w);
      q.target_bits = get<double>(b, "target_bits", q.target_bits, w);
      q.embedding_bits = get<int>(b, "quantize_embeddings", q.embedding_bits, w);
      s.include_head = get<bool>(b, "include_head", false, w);
    } else {
      throw Error(w + ": unknown stage '" + kind + "' (expected prune or quantize)", ErrorKind::BadInput);
    }
    if (b["ignore"]) {
      if (!b["ignore"].IsSequence()) throw Error(w + ": 'ignore' must be a list of regexes", ErrorKind::BadInput);
      for (const auto& x : b["ignore"]) s.ignore.push_back(x.as<std::string>());
    }
    r.stages.push_back(s);
  }
  return r;
}
#else
Recipe read_recipe_yaml(const std::string& path) {
  throw Error(path + ": this build has no YAML support (yaml-cpp was not found)", ErrorKind::Usage);
}
#endif

}  // namespace llmc::compress
