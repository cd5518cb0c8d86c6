// On real weights (SmolLM2-135M-Instruct): the per-layer output error ‖X·(W − Ŵ)ᵀ‖/‖X·Wᵀ‖ on
// calibration activations orders the methods as the papers say: GPTQ below RTN at W4, Wanda and
// SparseGPT below magnitude at 50% and at 2:4.
#include <doctest/doctest.h>

#include <filesystem>

#include "compress/pipeline.hpp"
#include "formats/mapped_file.hpp"
#include "runtime/loader.hpp"
#include "runtime/tokenizer/tokenizer.hpp"
#include "tests/test_util.hpp"

using namespace llmc;

namespace {

std::map<std::string, double> layer_errors(const Model& base, compress::Stage stage, const std::vector<int64_t>& calib) {
  Model m = base;  // tensors are shared; the passes write new ones
  compress::Recipe r;
  r.stages.push_back(stage);
  r.calib_file = "wiki.valid.raw";
  r.calib.nsamples = 4;  // 512 tokens: enough to rank methods, cheap enough for CI
  r.calib.seqlen = 128;
  auto rep = compress::compress_model(m, r, calib);
  std::map<std::string, double> e;
  for (auto& l : rep.layers) e[l.name] = l.rel_error;
  return e;
}

compress::Stage quant(const std::string& method) {
  compress::Stage s;
  s.quant.method = method;
  compress::apply_scheme(s.quant, "w4a16");
  s.quant.group_size = 128;  // 576 = 4·128 + 64: the last group of each row is short
  return s;
}

compress::Stage prune(const std::string& method, const std::string& pattern) {
  compress::Stage s;
  s.kind = compress::Stage::Kind::Prune;
  s.prune.method = method;
  s.prune.sparsity = 0.5;
  compress::apply_pattern(s.prune, pattern);
  return s;
}

// How many layers of `better` beat `worse`, and the mean errors.
void compare(const std::map<std::string, double>& better, const std::map<std::string, double>& worse,
             const std::string& what, double min_fraction) {
  int wins = 0;
  double sb = 0, sw = 0;
  for (auto& [name, e] : better) {
    REQUIRE(worse.count(name));
    wins += e < worse.at(name);
    sb += e;
    sw += worse.at(name);
  }
  MESSAGE(what << ": better on " << wins << " of " << better.size() << " layers; mean relative error "
                << sb / better.size() << " vs " << sw / better.size());
  CHECK(wins >= min_fraction * better.size());
  CHECK(sb < sw);
}

}  // namespace

TEST_CASE("e2e: per-layer error ordering of compression methods on SmolLM2") {
  const auto path = test::models_dir() / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) {
    MESSAGE("skipped: " << path.string() << " is absent (scripts/fetch_models.sh fetches it)");
    return;
  }
  Model base = runtime::load_model(path.string());
  const std::string text =
      formats::read_text_file((test::shared_dir() / "data" / "wikitext-2-raw" / "wiki.valid.raw").string());
  auto calib = runtime::load_tokenizer(base)->encode(text.substr(0, 100000), false);

  // GPTQ minimises exactly this error given the Hessian, so it must win on every layer.
  compare(layer_errors(base, quant("gptq"), calib), layer_errors(base, quant("rtn"), calib), "GPTQ vs RTN, W4 g128", 1.0);
  for (std::string pattern : {"unstructured", "2:4"}) {
    auto mag = layer_errors(base, prune("magnitude", pattern), calib);
    compare(layer_errors(base, prune("wanda", pattern), calib), mag, "Wanda vs magnitude, " + pattern, 0.9);
    compare(layer_errors(base, prune("sparsegpt", pattern), calib), mag, "SparseGPT vs magnitude, " + pattern, 1.0);
  }
}
