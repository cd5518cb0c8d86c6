// llmcompress quantize | prune | compress: build a Recipe from flags or a YAML file, compress the
// model block by block, write the .llmc file atomically and print a summary (or JSON).
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli/common.hpp"
#include "compress/pipeline.hpp"
#include "formats/llmc.hpp"
#include "formats/mapped_file.hpp"
#include "runtime/loader.hpp"
#include "runtime/tokenizer/tokenizer.hpp"

namespace llmc::cli {

namespace {

void add_common(cxxopts::Options& o) {
  o.add_options()("model", "input model", cxxopts::value<std::string>())(
      "o,output", "output .llmc file", cxxopts::value<std::string>())(
      "calib", "calibration text file", cxxopts::value<std::string>())(
      "calib-tokens", "calibration as pre-tokenized ids (whitespace-separated)", cxxopts::value<std::string>())(
      "nsamples", "calibration windows", cxxopts::value<int64_t>()->default_value("128"))(
      "seqlen", "tokens per calibration window", cxxopts::value<int64_t>()->default_value("512"))(
      "seed", "calibration sampling seed", cxxopts::value<uint64_t>()->default_value("0"))(
      "ignore", "regex of linear layers to leave alone (repeatable)", cxxopts::value<std::vector<std::string>>())(
      "dense-dtype", "storage of the remaining float weights: f32, f16, bf16", cxxopts::value<std::string>()->default_value("f16"))(
      "json", "print the summary as JSON")("h,help", "show help");
  o.parse_positional({"model"});
  o.positional_help("MODEL -o OUT.llmc");
}

int64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

int run_recipe(const cxxopts::ParseResult& a, compress::Recipe recipe, const std::string& command) {
  if (!a.count("model") || !a.count("output")) throw Error("need MODEL and -o OUT.llmc (see --help)", ErrorKind::Usage);
  const std::string in = a["model"].as<std::string>(), out = a["output"].as<std::string>();
  if (std::filesystem::exists(out) && std::filesystem::exists(in) && std::filesystem::equivalent(in, out))
    throw Error(out + ": the output path is the input path; choose another", ErrorKind::Usage);
  if (a.count("calib")) recipe.calib_file = a["calib"].as<std::string>();
  if (a.count("calib-tokens")) recipe.calib_file = a["calib-tokens"].as<std::string>();
  if (a.count("nsamples")) recipe.calib.nsamples = a["nsamples"].as<int64_t>();
  if (a.count("seqlen")) recipe.calib.seqlen = a["seqlen"].as<int64_t>();
  if (a.count("seed")) recipe.calib.seed = a["seed"].as<uint64_t>();
  if (a.count("dense-dtype") || command != "compress") recipe.dense_dtype = a["dense-dtype"].as<std::string>();
  if (a.count("ignore"))
    for (auto& s : recipe.stages)
      for (auto& re : a["ignore"].as<std::vector<std::string>>()) s.ignore.push_back(re);
  compress::validate(recipe);
  {  // fail before hours of work if the output cannot be written
    auto dir = std::filesystem::path(out).parent_path();
    if (!dir.empty() && !std::filesystem::is_directory(dir))
      throw Error(out + ": output directory does not exist", ErrorKind::BadInput);
  }

  Model model = runtime::load_model(in);
  std::vector<int64_t> calib;
  if (!recipe.calib_file.empty()) {  // methods that need no calibration still report per-layer error with it
    if (a.count("calib-tokens")) {
      calib = read_token_file(recipe.calib_file);
    } else {
      const std::string text = formats::read_text_file(recipe.calib_file);
      if (text.empty()) throw Error(recipe.calib_file + ": calibration file is empty");
      calib = runtime::load_tokenizer(model)->encode(text, false);
    }
  }
  Progress bar(command);
  compress::CompressOptions opt;
  opt.progress = [&](const std::string&, int64_t d, int64_t t) { bar.update(d, t); };
  auto report = compress::compress_model(model, recipe, calib, opt);
  bar.finish();
  formats::write_llmc(model, out, {recipe.dense_dtype});

  const auto in_bytes = runtime::model_file_bytes(in), out_bytes = static_cast<int64_t>(std::filesystem::file_size(out));
  int64_t params = 0, zeros = 0;
  double bits = 0;
  // A layer left in floating point (pruned only) is stored in the file's dense dtype.
  const double dense_bits = recipe.dense_dtype == "f32" ? 32 : 16;
  for (auto& l : report.layers) {
    params += l.rows * l.cols;
    bits += static_cast<double>(l.rows * l.cols) * std::min<double>(l.bits, dense_bits);
    zeros += static_cast<int64_t>(l.sparsity * l.rows * l.cols);
  }
  if (a.count("json")) {
    nlohmann::json j = report.to_json();
    j.update({{"input", in}, {"output", out}, {"input_bytes", in_bytes}, {"output_bytes", out_bytes},
              {"linear_parameters", params}, {"linear_bits_per_weight", params ? bits / params : 0},
              {"peak_rss_bytes", peak_rss_bytes()}, {"recipe", recipe.to_json()}});
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("%-44s %-36s %5s %8s %10s\n", "layer", "method", "bits", "zeros", "rel.error");
  for (auto& l : report.layers) {
    char err[32] = "-";
    if (l.rel_error >= 0) std::snprintf(err, sizeof err, "%.5f", l.rel_error);
    std::printf("%-44s %-36s %5.2f %7.1f%% %10s%s\n", l.name.c_str(), l.method.c_str(), l.bits, 100 * l.sparsity, err,
                l.warning.empty() ? "" : ("  ! " + l.warning).c_str());
  }
  for (auto& e : report.embeddings)
    std::printf("embedding %s [%lld, %lld]: %d bits g%lld%s, %.2f MiB -> %.2f MiB, rel.error %.5f\n", e.name.c_str(),
                static_cast<long long>(e.rows), static_cast<long long>(e.cols), e.bits,
                static_cast<long long>(e.group_size), e.tied_head ? " (tied lm_head reads it)" : "",
                e.dense_bytes / 1048576.0, e.bytes / 1048576.0, e.rel_error);
  std::printf("\n%s -> %s\n", in.c_str(), out.c_str());
  std::printf("size: %.2f MiB -> %.2f MiB; linear layers: %.2f bits per weight, %.1f%% zeros\n", in_bytes / 1048576.0,
              out_bytes / 1048576.0, params ? bits / params : 0, params ? 100.0 * zeros / params : 0);
  std::printf("time: %.1f s (%lld calibration tokens); peak memory %.0f MiB\n", report.seconds,
              static_cast<long long>(report.calib_tokens), peak_rss_bytes() / 1048576.0);
  return 0;
}

}  // namespace

int cmd_quantize(int argc, char** argv) {
  cxxopts::Options o("llmcompress quantize", "Quantize the linear layers of a model");
  add_common(o);
  o.add_options()("scheme", "w4a16, w8a16 or w8a8", cxxopts::value<std::string>()->default_value("w4a16"))(
      "method", "rtn, gptq, awq or smoothquant", cxxopts::value<std::string>()->default_value("rtn"))(
      "group-size", "weights per scale along the input (0: per channel)", cxxopts::value<int64_t>())(
      "sym", "symmetric grid (default)")("asym", "asymmetric grid with zero points")(
      "act-order", "GPTQ: quantize columns by descending Hessian diagonal")(
      "clip-search", "RTN: MSE clip search per group")(
      "percdamp", "GPTQ damping", cxxopts::value<double>()->default_value("0.01"))(
      "alpha", "SmoothQuant migration strength", cxxopts::value<double>()->default_value("0.5"))(
      "activations", "W8A8 activation scales: dynamic or static", cxxopts::value<std::string>()->default_value("dynamic"))(
      "observer", "static scales: minmax, percentile, entropy, mse", cxxopts::value<std::string>()->default_value("minmax"))(
      "percentile", "percentile observer", cxxopts::value<double>()->default_value("99.99"))(
      "include-head", "also quantize an untied lm_head (round to nearest at --scheme's bits and --group-size); "
      "a head tied to the embeddings follows --quantize-embeddings instead")(
      "quantize-embeddings", "also quantize the token embedding table to BITS (4 or 8; round to nearest per row "
      "with --group-size and --sym/--asym); a head tied to it becomes a quantized linear over the same stored table",
      cxxopts::value<int>(), "BITS")(
      "target-bits", "w4a16 mixed precision: INT4 or INT8 per layer by measured sensitivity, average bits <= this",
      cxxopts::value<double>());
  auto a = parse(o, argc, argv);
  compress::Stage s;
  s.kind = compress::Stage::Kind::Quantize;
  auto& q = s.quant;
  q.method = a["method"].as<std::string>();
  compress::apply_scheme(q, a["scheme"].as<std::string>());
  if (a.count("group-size")) q.group_size = a["group-size"].as<int64_t>();
  if (a.count("sym") && a.count("asym")) throw Error("give --sym or --asym, not both", ErrorKind::Usage);
  if (a.count("asym")) q.symmetric = false;
  q.act_order = a.count("act-order") > 0;
  q.clip_search = a.count("clip-search") > 0;
  q.percdamp = a["percdamp"].as<double>();
  q.alpha = a["alpha"].as<double>();
  q.act = a["activations"].as<std::string>();
  q.observer = a["observer"].as<std::string>();
  q.percentile = a["percentile"].as<double>();
  s.include_head = a.count("include-head") > 0;
  if (a.count("quantize-embeddings")) q.embedding_bits = a["quantize-embeddings"].as<int>();
  if (a.count("target-bits")) q.target_bits = a["target-bits"].as<double>();
  compress::Recipe r;
  r.stages.push_back(s);
  return run_recipe(a, r, "quantize");
}

int cmd_prune(int argc, char** argv) {
  cxxopts::Options o("llmcompress prune", "Prune the linear layers of a model");
  add_common(o);
  o.add_options()("sparsity", "fraction of weights set to zero (unstructured)", cxxopts::value<double>()->default_value("0.5"))(
      "pattern", "unstructured, 2:4, 4:8 (N:M), channels (FFN) or heads (KV groups)", cxxopts::value<std::string>()->default_value("unstructured"))(
      "method", "magnitude, wanda or sparsegpt", cxxopts::value<std::string>()->default_value("magnitude"))(
      "scope", "magnitude threshold per layer or global", cxxopts::value<std::string>()->default_value("layer"));
  auto a = parse(o, argc, argv);
  compress::Stage s;
  s.kind = compress::Stage::Kind::Prune;
  s.prune.method = a["method"].as<std::string>();
  s.prune.sparsity = a["sparsity"].as<double>();
  s.prune.scope = a["scope"].as<std::string>();
  compress::apply_pattern(s.prune, a["pattern"].as<std::string>());
  compress::Recipe r;
  r.stages.push_back(s);
  return run_recipe(a, r, "prune");
}

int cmd_compress(int argc, char** argv) {
  cxxopts::Options o("llmcompress compress", "Apply a YAML recipe of prune and quantize stages");
  add_common(o);
  o.add_options()("recipe", "recipe file (YAML)", cxxopts::value<std::string>());
  auto a = parse(o, argc, argv);
  if (!a.count("recipe")) throw Error("need --recipe R.yaml (see --help)", ErrorKind::Usage);
  return run_recipe(a, compress::read_recipe_yaml(a["recipe"].as<std::string>()), "compress");
}

}  // namespace llmc::cli
