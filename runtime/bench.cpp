#include "runtime/bench.hpp"

#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <vector>

#include "runtime/loader.hpp"
#include "runtime/session.hpp"

namespace llmc::runtime {

namespace {
using Clock = std::chrono::steady_clock;
double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
}  // namespace

nlohmann::json BenchResult::to_json() const {
  return {{"load_s", load_s},
          {"ttft_s", ttft_s},
          {"prefill_tokens_per_s", prefill_tok_s},
          {"decode_tokens_per_s", decode_tok_s},
          {"rss_after_load_bytes", rss_after_load},
          {"peak_rss_bytes", peak_rss},
          {"model_file_bytes", model_file_bytes},
          {"weight_bytes_per_token", weight_bytes},
          {"decode_gb_per_s", decode_gb_s},
          {"copy_gb_per_s", copy_gb_s},
          {"threads", threads}};
}

int64_t resident_bytes() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

int64_t peak_resident_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

double measure_copy_bandwidth() {
  const size_t n = size_t{256} << 20;  // far beyond any cache
  std::vector<char> a(n), b(n);
  for (size_t i = 0; i < n; i += 4096) a[i] = static_cast<char>(i);
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    auto t0 = Clock::now();
#pragma omp parallel
    {
      // each thread copies its slice, so the measurement uses every core as inference does
      const int nt = omp_get_num_threads(), id = omp_get_thread_num();
      const size_t chunk = n / nt, lo = id * chunk, hi = id == nt - 1 ? n : lo + chunk;
      std::memcpy(b.data() + lo, a.data() + lo, hi - lo);
    }
    best = std::max(best, 2.0 * n / secs(t0, Clock::now()) / 1e9);
  }
  return best;
}

BenchResult bench_model(const std::string& path, const BenchOptions& opt) {
  if (opt.prompt_len < 1 || opt.gen_len < 1 || opt.repeats < 1)
    throw Error("bench: --prompt-len, --gen-len and --repeats must be positive", ErrorKind::Usage);
  BenchResult r;
  r.threads = omp_get_max_threads();
  r.model_file_bytes = model_file_bytes(path);
  auto t0 = Clock::now();
  Model m = load_model(path);
  r.load_s = secs(t0, Clock::now());
  r.rss_after_load = resident_bytes();
  for (auto& [n, t] : m.graph.weights)
    if (t.rank() == 2 && n.find("embed") == std::string::npos && n.find("wte") == std::string::npos &&
        n.find("word_embeddings") == std::string::npos)
      r.weight_bytes += static_cast<int64_t>(t.nbytes());
  for (auto& [n, q] : m.graph.quantized) r.weight_bytes += static_cast<int64_t>(q.nbytes());
  // a tied head reads the embedding table every token
  for (auto& node : m.graph.nodes)
    if (node.op == "Linear" && node.inputs.size() > 1 && node.inputs[1].find("embed") != std::string::npos)
      r.weight_bytes += static_cast<int64_t>(m.graph.weights.at(node.inputs[1]).nbytes());

  Session s(m);
  const int64_t vocab = m.config.value("vocab_size", int64_t{0});
  std::mt19937_64 rng(opt.seed);
  std::vector<int64_t> prompt(opt.prompt_len);
  for (auto& t : prompt) t = static_cast<int64_t>(rng() % static_cast<uint64_t>(std::max<int64_t>(vocab, 2)));
  std::vector<double> prefill, decode;
  for (int64_t rep = 0; rep < opt.repeats; ++rep) {
    s.reset();
    auto a = Clock::now();
    Tensor logits = s.forward(prompt);
    const int64_t V = logits.dim(-1);
    const float* last = logits.data<float>() + (logits.dim(0) - 1) * V;
    int64_t next = std::max_element(last, last + V) - last;
    auto b = Clock::now();
    prefill.push_back(secs(a, b));
    for (int64_t g = 0; g < opt.gen_len; ++g) {
      logits = s.forward({next});
      const float* row = logits.data<float>();
      next = std::max_element(row, row + V) - row;
    }
    decode.push_back(secs(b, Clock::now()));
  }
  const double p = median(prefill), d = median(decode);
  r.ttft_s = p;
  r.prefill_tok_s = opt.prompt_len / p;
  r.decode_tok_s = opt.gen_len / d;
  r.decode_gb_s = r.weight_bytes * r.decode_tok_s / 1e9;
  r.peak_rss = peak_resident_bytes();
  r.copy_gb_s = measure_copy_bandwidth();
  return r;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

}  // namespace llmc::runtime
