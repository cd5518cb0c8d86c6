// End-to-end speed of a model on the CPU backend: load, prefill and decode throughput, time to
// first token, resident memory, and decode bandwidth next to the machine's measured copy bandwidth.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace llmc::runtime {

struct BenchOptions {
  int64_t prompt_len = 128, gen_len = 64, repeats = 3;
  uint64_t seed = 0;
};

struct BenchResult {
  double load_s = 0, ttft_s = 0, prefill_tok_s = 0, decode_tok_s = 0;
  int64_t rss_after_load = 0, peak_rss = 0, model_file_bytes = 0;
  int64_t weight_bytes = 0;      // bytes of weights read per decoded token (all linear + embedding-free weights)
  double decode_gb_s = 0;        // weight_bytes × decode tokens/s
  double copy_gb_s = 0;          // memcpy bandwidth of this machine, bytes read + written
  int threads = 1;
  nlohmann::json to_json() const;
};

// Resident set size of this process now, in bytes (from /proc/self/statm).
int64_t resident_bytes();
// Peak resident set size so far, in bytes.
int64_t peak_resident_bytes();
// The median of samples (the upper of the two middle values for an even count; 0 for none): what
// every benchmark here reports of its repeated runs.
double median(std::vector<double> v);
// Large memcpy bandwidth in GB/s (bytes read + written), best of several runs.
double measure_copy_bandwidth();

BenchResult bench_model(const std::string& path, const BenchOptions& opt);

}  // namespace llmc::runtime
