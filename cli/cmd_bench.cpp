// llmcompress bench: time to first token, prefill and decode throughput, memory, and decode
// bandwidth against the machine's copy bandwidth.
#include <cstdio>

#include "cli/common.hpp"
#include "runtime/bench.hpp"

namespace llmc::cli {

int cmd_bench(int argc, char** argv) {
  cxxopts::Options o("llmcompress bench", "Measure prefill and decode speed");
  o.add_options()("model", "model path", cxxopts::value<std::string>())(
      "backend", "cpu (cuda: see docs/perf/cuda.md)", cxxopts::value<std::string>()->default_value("cpu"))(
      "batch", "sequences per step", cxxopts::value<int64_t>()->default_value("1"))(
      "prompt-len", "prompt tokens", cxxopts::value<int64_t>()->default_value("128"))(
      "gen-len", "generated tokens", cxxopts::value<int64_t>()->default_value("64"))(
      "repeats", "runs; the median is reported", cxxopts::value<int64_t>()->default_value("3"))(
      "seed", "seed of the random prompt", cxxopts::value<uint64_t>()->default_value("0"))(
      "json", "print JSON")("h,help", "show help");
  o.parse_positional({"model"});
  o.positional_help("MODEL");
  auto a = parse(o, argc, argv);
  if (!a.count("model")) throw Error("missing MODEL (see --help)", ErrorKind::Usage);
  if (a["backend"].as<std::string>() != "cpu")
    throw Error("backend '" + a["backend"].as<std::string>() + "' is not available in this build (cpu only)", ErrorKind::Usage);
  if (a["batch"].as<int64_t>() != 1) throw Error("the CPU backend runs batch 1 only", ErrorKind::Usage);
  runtime::BenchOptions opt{a["prompt-len"].as<int64_t>(), a["gen-len"].as<int64_t>(), a["repeats"].as<int64_t>(),
                            a["seed"].as<uint64_t>()};
  const std::string path = a["model"].as<std::string>();
  auto r = runtime::bench_model(path, opt);
  if (a.count("json")) {
    auto j = r.to_json();
    j.update({{"model", path}, {"backend", "cpu"}, {"batch", 1}, {"prompt_len", opt.prompt_len}, {"gen_len", opt.gen_len}});
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model:            %s (%.1f MiB on disk)\n", path.c_str(), r.model_file_bytes / 1048576.0);
  std::printf("backend:          cpu, %d threads, batch 1\n", r.threads);
  std::printf("load:             %.2f s, resident after load %.1f MiB, peak %.1f MiB\n", r.load_s,
              r.rss_after_load / 1048576.0, r.peak_rss / 1048576.0);
  std::printf("prefill:          %lld tokens, %.1f tokens/s (time to first token %.3f s)\n",
              static_cast<long long>(opt.prompt_len), r.prefill_tok_s, r.ttft_s);
  std::printf("decode:           %lld tokens, %.2f tokens/s\n", static_cast<long long>(opt.gen_len), r.decode_tok_s);
  std::printf("decode bandwidth: %.2f GB/s over %.1f MiB of weights per token; memcpy bandwidth %.2f GB/s (%.0f%%)\n",
              r.decode_gb_s, r.weight_bytes / 1048576.0, r.copy_gb_s, 100 * r.decode_gb_s / r.copy_gb_s);
  return 0;
}

}  // namespace llmc::cli
