// llmcompress eval: perplexity on a text (or token) file, and agreement with a reference model.
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/common.hpp"
#include "formats/mapped_file.hpp"
#include "formats/npy.hpp"
#include "runtime/eval.hpp"
#include "runtime/loader.hpp"
#include "runtime/tokenizer/tokenizer.hpp"

namespace llmc::cli {

int cmd_eval(int argc, char** argv) {
  cxxopts::Options o("llmcompress eval", "Perplexity over non-overlapping windows, and KL / top-1 against a reference");
  o.add_options()("model", "model path", cxxopts::value<std::string>())(
      "data", "text file to score (tokenized with the model's tokenizer)", cxxopts::value<std::string>())(
      "tokens", "pre-tokenized input: whitespace-separated ids", cxxopts::value<std::string>())(
      "ctx", "window length in tokens", cxxopts::value<int64_t>()->default_value("512"))(
      "second-half", "score only the second half of each window (llama.cpp's perplexity protocol)")(
      "bos", "start every window with the BOS token (llama.cpp does)")(
      "max-windows", "evaluate at most this many windows (0: all)", cxxopts::value<int64_t>()->default_value("0"))(
      "reference", "reference model for KL divergence and top-1 agreement", cxxopts::value<std::string>())(
      "dump-logits", "write the logits [windows, ctx, vocab] to this .npy file", cxxopts::value<std::string>())(
      "backend", "cpu or cuda (the reference runs on the same backend)",
      cxxopts::value<std::string>()->default_value("cpu"))("json", "print the result as JSON")("h,help", "show help");
  o.parse_positional({"model"});
  o.positional_help("MODEL");
  auto a = parse(o, argc, argv);
  if (!a.count("model")) throw Error("missing MODEL (see --help)", ErrorKind::Usage);
  if (!a.count("data") == !a.count("tokens")) throw Error("give exactly one of --data FILE or --tokens FILE", ErrorKind::Usage);

  const std::string path = a["model"].as<std::string>();
  Model model = runtime::load_model(path);
  std::vector<int64_t> tokens;
  std::unique_ptr<runtime::Tokenizer> tok;
  if (a.count("data") || a.count("bos")) tok = runtime::load_tokenizer(model);
  if (a.count("data")) {
    const std::string text = formats::read_text_file(a["data"].as<std::string>());
    if (text.empty()) throw Error(a["data"].as<std::string>() + ": data file is empty");
    tokens = tok->encode(text, false);
  } else {
    tokens = read_token_file(a["tokens"].as<std::string>());
  }

  runtime::EvalOptions opt;
  opt.ctx = a["ctx"].as<int64_t>();
  opt.second_half = a.count("second-half") > 0;
  opt.max_windows = a["max-windows"].as<int64_t>();
  if (a.count("bos")) {
    opt.bos_id = tok->bos_id();
    if (!opt.bos_id) throw Error(path + ": --bos given but the tokenizer has no BOS token", ErrorKind::Usage);
  }
  Progress bar("eval");
  opt.progress = [&](int64_t d, int64_t t) { bar.update(d, t); };

  const std::string backend = a["backend"].as<std::string>();
  std::unique_ptr<runtime::Decoder> session = make_decoder(model, backend, opt.ctx);
  std::unique_ptr<Model> ref_model;
  std::unique_ptr<runtime::Decoder> ref;
  if (a.count("reference")) {
    ref_model = std::make_unique<Model>(runtime::load_model(a["reference"].as<std::string>()));
    ref = make_decoder(*ref_model, backend, opt.ctx);
  }
  std::unique_ptr<formats::NpyWriter> dump;
  if (a.count("dump-logits")) {
    const int64_t body = opt.bos_id ? opt.ctx - 1 : opt.ctx;
    int64_t windows = static_cast<int64_t>(tokens.size()) / body;
    if (opt.max_windows > 0) windows = std::min(windows, opt.max_windows);
    opt.on_logits = [&, windows](const Tensor& logits) {
      if (!dump)
        dump = std::make_unique<formats::NpyWriter>(a["dump-logits"].as<std::string>(), DType::F32,
                                                    Shape{windows, logits.dim(0), logits.dim(1)});
      dump->append(logits);
    };
  }
  auto r = runtime::evaluate(*session, tokens, opt, ref.get());
  bar.finish();
  if (dump) dump->commit();

  if (a.count("json")) {
    nlohmann::json j = {{"model", path},
                        {"perplexity", r.perplexity()},
                        {"windows", r.windows},
                        {"scored_tokens", r.scored_tokens},
                        {"ctx", opt.ctx},
                        {"backend", backend},
                        {"protocol", r.protocol}};
    if (a.count("data")) j["data"] = a["data"].as<std::string>();
    if (r.has_reference) {
      j["reference"] = a["reference"].as<std::string>();
      j["reference_perplexity"] = r.ref_perplexity();
      j["mean_kl"] = r.mean_kl();
      j["top1_agreement"] = r.top1();
      j["max_abs_logit_diff"] = r.max_abs_logit_diff;
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("model:       %s\n", path.c_str());
    std::printf("data:        %s (%zu tokens)\n",
                a.count("data") ? a["data"].as<std::string>().c_str() : a["tokens"].as<std::string>().c_str(),
                tokens.size());
    std::printf("protocol:    %s\n", r.protocol.c_str());
    std::printf("perplexity:  %.4f\n", r.perplexity());
    if (r.has_reference) {
      std::printf("reference:   %s (perplexity %.4f)\n", a["reference"].as<std::string>().c_str(), r.ref_perplexity());
      std::printf("mean KL(ref||model): %.6f\n", r.mean_kl());
      std::printf("top-1 agreement:     %.4f\n", r.top1());
      std::printf("max |logit diff|:    %.6g\n", r.max_abs_logit_diff);
    }
  }
  return 0;
}

}  // namespace llmc::cli
