// End-to-end speed of a model on the CUDA backend: upload, time to first token, prefill and
// decode throughput (greedy, the decode loop as captured-graph replays on the device), peak
// device memory, and the decode step's bytes against the device's measured copy bandwidth.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/cuda/cuda_session.hpp"
#include "runtime/cuda/cuda_trace.hpp"

namespace llmc::runtime {

struct CudaBenchOptions {
  int64_t batch = 1, prompt_len = 128, gen_len = 64, repeats = 3;
  uint64_t seed = 0;
  int device = 0;
  bool profile = false;  // also time one decode step kernel by kernel (CudaSession::profile_step)
  bool trace = false;    // also record 16 decode steps' kernels as the device runs them (cuda_trace.hpp)
  bool fused_gemv = true;   // CudaOptions::fused_gemv
  bool sparse_gemv = true;  // CudaOptions::sparse_gemv
};

struct CudaBenchResult {
  std::string device;
  double load_s = 0, upload_s = 0;  // model load (or synthesis) and session construction
  double ttft_s = 0;                // prefill of the batch's prompts, last rows' logits on the host
  double prefill_tok_s = 0;         // batch × prompt_len / ttft
  double decode_tok_s = 0;          // batch × gen_len / decode time (all sequences)
  double decode_step_ms = 0;        // one decode step of the whole batch
  int64_t peak_device_bytes = 0;    // device memory in use at the peak, less what was in use before
  int64_t planned_bytes = 0;        // what the session allocated (weights, KV, activations, workspaces)
  int64_t weight_bytes = 0;         // weights one decode step reads
  int64_t kv_bytes = 0;             // KV cache one decode step reads, averaged over the decode
  double copy_gb_s = 0;             // 1 GiB device-to-device copy, bytes read + written over time
  double decode_gb_s = 0;           // (weight_bytes + kv_bytes) × steps/s
  double bound_tok_s = 0;           // batch × copy bandwidth / (weight_bytes + kv_bytes)
  int64_t batch = 1;
  std::string sparse;  // 2:4 linears: the operand layout used ("sparse_a_t"), empty without them
  std::vector<std::pair<std::string, double>> step_profile_us;  // with CudaBenchOptions::profile
  StepTrace step_trace;                                          // with CudaBenchOptions::trace
  // Bytes one generated token costs: the decode step's bytes over the sequences sharing it.
  double batch_bytes_per_token() const { return static_cast<double>(weight_bytes + kv_bytes) / batch; }
  nlohmann::json to_json() const;
};

// Benchmarks an already loaded model (load_s: how long loading or synthesizing it took).
CudaBenchResult bench_cuda(const Model& m, double load_s, const CudaBenchOptions& opt);

// Device-to-device copy bandwidth in GB/s (bytes read + written), best of several 1 GiB copies.
double measure_device_copy_bandwidth(int device);

}  // namespace llmc::runtime
