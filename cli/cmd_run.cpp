// llmcompress run: generate text from a prompt with the KV cache, streaming tokens to stdout.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "cli/common.hpp"
#include "runtime/generate.hpp"
#include "runtime/loader.hpp"
#include "runtime/tokenizer/tokenizer.hpp"

namespace llmc::cli {

int cmd_run(int argc, char** argv) {
  cxxopts::Options o("llmcompress run", "Generate text from a prompt");
  o.add_options()("model", "model path", cxxopts::value<std::string>())(
      "p,prompt", "prompt text", cxxopts::value<std::string>())(
      "n,max-tokens", "tokens to generate", cxxopts::value<int64_t>()->default_value("64"))(
      "temperature", "sampling temperature (0: greedy)", cxxopts::value<double>()->default_value("0"))(
      "top-k", "keep the k most likely tokens (0: off)", cxxopts::value<int64_t>()->default_value("0"))(
      "top-p", "nucleus sampling mass (1: off)", cxxopts::value<double>()->default_value("1"))(
      "seed", "random seed", cxxopts::value<uint64_t>()->default_value("0"))(
      "no-bos", "do not prepend the BOS token")("backend", "cpu or cuda",
                                                 cxxopts::value<std::string>()->default_value("cpu"))(
      "h,help", "show help");
  o.parse_positional({"model"});
  o.positional_help("MODEL");
  auto a = parse(o, argc, argv);
  if (!a.count("model") || !a.count("prompt")) throw Error("need MODEL and --prompt TEXT (see --help)", ErrorKind::Usage);
  if (a["temperature"].as<double>() < 0 || a["top-p"].as<double>() <= 0 || a["top-p"].as<double>() > 1)
    throw Error("--temperature must be >= 0 and --top-p in (0, 1]", ErrorKind::Usage);

  Model model = runtime::load_model(a["model"].as<std::string>());
  auto tok = runtime::load_tokenizer(model);
  std::vector<int64_t> prompt = tok->encode(a["prompt"].as<std::string>(), !a.count("no-bos"));

  runtime::GenerateOptions g;
  g.max_new_tokens = a["max-tokens"].as<int64_t>();
  g.eos_id = tok->eos_id();
  g.sampling = {a["temperature"].as<double>(), a["top-k"].as<int64_t>(), a["top-p"].as<double>(),
                a["seed"].as<uint64_t>()};
  auto s = make_decoder(model, a["backend"].as<std::string>(),
                        static_cast<int64_t>(prompt.size()) + std::max<int64_t>(g.max_new_tokens, 0));
  std::vector<int64_t> out;
  std::string shown;
  std::fputs(a["prompt"].as<std::string>().c_str(), stdout);
  auto t0 = std::chrono::steady_clock::now();
  runtime::generate(*s, prompt, g, [&](int64_t id) {
    if (g.eos_id && id == *g.eos_id) return false;
    out.push_back(id);
    // decode everything so far and print what is new, holding back an incomplete UTF-8 tail
    std::string text = tok->decode(out, true);
    if (text.size() > shown.size() && !text.ends_with("\xEF\xBF\xBD")) {
      std::fputs(text.substr(shown.size()).c_str(), stdout);
      std::fflush(stdout);
      shown = text;
    }
    return true;
  });
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string text = tok->decode(out, true);
  if (text.size() > shown.size()) std::fputs(text.substr(shown.size()).c_str(), stdout);
  std::printf("\n");
  std::fprintf(stderr, "[%zu prompt tokens, %zu generated in %.2f s]\n", prompt.size(), out.size(), secs);
  return 0;
}

}  // namespace llmc::cli
