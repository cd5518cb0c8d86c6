// llmcompress bench: time to first token, prefill and decode throughput, memory, and decode
// bandwidth against the machine's copy bandwidth, on the CPU or the CUDA backend; --synthetic
// benchmarks a known architecture's shape with random weights (no checkpoint needed).
#include <chrono>
#include <cstdio>

#include "cli/common.hpp"
#include "runtime/bench.hpp"
#include "runtime/loader.hpp"
#ifdef LLMC_HAVE_CUDA
#include "runtime/cuda/cuda_bench.hpp"
#include "runtime/cuda/synthetic.hpp"
#endif

namespace llmc::cli {

namespace {

#ifdef LLMC_HAVE_CUDA
int bench_cuda(const cxxopts::ParseResult& a) {
  runtime::CudaBenchOptions opt;
  opt.batch = a["batch"].as<int64_t>();
  opt.prompt_len = a["prompt-len"].as<int64_t>();
  opt.gen_len = a["gen-len"].as<int64_t>();
  opt.repeats = a["repeats"].as<int64_t>();
  opt.seed = a["seed"].as<uint64_t>();
  opt.profile = a.count("profile") > 0;
  opt.trace = a.count("trace") > 0;
  if (opt.trace) runtime::require_kernel_trace();  // before minutes of loading
  opt.fused_gemv = a.count("no-fused-gemv") == 0;
  opt.sparse_gemv = a.count("no-sparse-gemv") == 0;
  runtime::require_cuda_device(opt.device);  // before minutes of loading or synthesizing
  const bool synth = a.count("synthetic") > 0;
  const std::string what = synth ? "synthetic " + a["synthetic"].as<std::string>() + " " + a["scheme"].as<std::string>()
                                 : a["model"].as<std::string>();
  auto t0 = std::chrono::steady_clock::now();
  const Model m = synth ? runtime::synthetic_model(a["synthetic"].as<std::string>(), a["scheme"].as<std::string>(),
                                                   a["seed"].as<uint64_t>())
                        : runtime::load_model(what);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto r = runtime::bench_cuda(m, load_s, opt);
  if (a.count("json")) {
    auto j = r.to_json();
    j.update({{"model", what}, {"backend", "cuda"}, {"batch", opt.batch}, {"prompt_len", opt.prompt_len},
              {"gen_len", opt.gen_len}, {"repeats", opt.repeats},
              {"fused_gemv", opt.fused_gemv}, {"sparse_gemv", opt.sparse_gemv}});
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  const double mib = 1048576.0;
  std::printf("model:            %s\n", what.c_str());
  std::printf("backend:          cuda, %s, batch %lld\n", r.device.c_str(), static_cast<long long>(opt.batch));
  std::printf("load:             %.2f s, upload %.2f s; device memory %.1f MiB planned, %.1f MiB peak in use\n",
              r.load_s, r.upload_s, r.planned_bytes / mib, r.peak_device_bytes / mib);
  if (!r.sparse.empty()) std::printf("2:4 linears:      cuSPARSELt, layout %s\n", r.sparse.c_str());
  std::printf("prefill:          %lld x %lld tokens, %.1f tokens/s (time to first token %.2f ms)\n",
              static_cast<long long>(opt.batch), static_cast<long long>(opt.prompt_len), r.prefill_tok_s,
              1e3 * r.ttft_s);
  std::printf("decode:           %lld x %lld tokens, %.1f tokens/s (%.3f ms per step)\n",
              static_cast<long long>(opt.batch), static_cast<long long>(opt.gen_len), r.decode_tok_s, r.decode_step_ms);
  std::printf("decode bytes:     %.1f MiB weights + %.1f MiB KV per step, %.1f MiB per token\n", r.weight_bytes / mib,
              r.kv_bytes / mib, r.batch_bytes_per_token() / mib);
  std::printf("decode bandwidth: %.0f GB/s; device copy %.0f GB/s (%.0f%%); bandwidth bound %.0f tokens/s\n",
              r.decode_gb_s, r.copy_gb_s, 100 * r.decode_gb_s / r.copy_gb_s, r.bound_tok_s);
  if (!r.step_profile_us.empty()) {
    std::printf("decode step, kernels timed one by one (us):\n");
    for (auto& [k, us] : r.step_profile_us) std::printf("  %-28s %9.1f\n", k.c_str(), us);
  }
  if (r.step_trace.steps > 0) {
    std::printf("decode step as the device ran it (%lld steps traced, median %.1f us per step):\n",
                static_cast<long long>(r.step_trace.steps), r.step_trace.step_us);
    std::printf("  %-48s %5s %12s %12s\n", "kernel", "count", "device us", "exposed us");
    for (const auto& k : r.step_trace.kinds)
      std::printf("  %-48.48s %5lld %12.1f %12.1f\n", k.kernel.c_str(), static_cast<long long>(k.per_step), k.device_us,
                  k.exposed_us);
  }
  return 0;
}
#endif

}  // namespace

int cmd_bench(int argc, char** argv) {
  cxxopts::Options o("llmcompress bench", "Measure prefill and decode speed");
  o.add_options()("model", "model path", cxxopts::value<std::string>())(
      "backend", "cpu or cuda", cxxopts::value<std::string>()->default_value("cpu"))(
      "synthetic", "benchmark a known shape with random weights instead of MODEL (tinyllama, smollm2; cuda only)",
      cxxopts::value<std::string>())("scheme", "weights of --synthetic: f16, sparse24, w4a16, sparse24-w4a16, w4a16-head, w4a16-act-order, w8a16",
                                     cxxopts::value<std::string>()->default_value("f16"))(
      "batch", "sequences per step (cuda: equal-length independent sequences)",
      cxxopts::value<int64_t>()->default_value("1"))(
      "prompt-len", "prompt tokens", cxxopts::value<int64_t>()->default_value("128"))(
      "gen-len", "generated tokens", cxxopts::value<int64_t>()->default_value("64"))(
      "repeats", "runs; the median is reported", cxxopts::value<int64_t>()->default_value("3"))(
      "seed", "seed of the random prompt (and of --synthetic weights)", cxxopts::value<uint64_t>()->default_value("0"))(
      "profile", "cuda: also time one decode step kernel by kernel, by kind")(
      "trace", "cuda: also record 16 decode steps' kernels as the device runs them (CUPTI): per kernel kind, its "
               "time on the device and its time on the step's path (end minus the previous kernel's end)")(
      "no-fused-gemv", "cuda: decode quantized linears with the split-K GEMV and separate norm/SwiGLU/add kernels")(
      "no-sparse-gemv", "cuda: 2:4 linears without the sparse GEMVs: INT4 ones as plain W4, f16 ones through cuSPARSELt")(
      "json", "print JSON")(
      "h,help", "show help");
  o.parse_positional({"model"});
  o.positional_help("MODEL");
  auto a = parse(o, argc, argv);
  const std::string backend = a["backend"].as<std::string>();
  if (!a.count("model") && !a.count("synthetic")) throw Error("missing MODEL or --synthetic NAME (see --help)", ErrorKind::Usage);
  if (a.count("model") && a.count("synthetic")) throw Error("give MODEL or --synthetic, not both", ErrorKind::Usage);
  if (backend == "cuda") {
#ifdef LLMC_HAVE_CUDA
    return bench_cuda(a);
#else
    throw Error("--backend cuda: this llmcompress was built without CUDA (configure with -DLLMC_CUDA=ON)",
                ErrorKind::Usage);
#endif
  }
  if (backend != "cpu") throw Error("unknown --backend '" + backend + "' (cpu or cuda)", ErrorKind::Usage);
  if (a.count("synthetic")) throw Error("--synthetic runs on --backend cuda only", ErrorKind::Usage);
  if (a.count("trace") || a.count("profile"))
    throw Error(std::string("--") + (a.count("trace") ? "trace" : "profile") + " runs on --backend cuda only",
                ErrorKind::Usage);
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
