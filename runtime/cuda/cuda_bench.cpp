// CUDA end-to-end benchmark (cuda_bench.hpp).
#include "runtime/cuda/cuda_bench.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "kernels/cuda/device_buffer.hpp"
#include "runtime/bench.hpp"

namespace llmc::runtime {

namespace {

using Clock = std::chrono::steady_clock;
double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
int64_t used_device_bytes() {
  size_t free_b = 0, total_b = 0;
  LLMC_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return static_cast<int64_t>(total_b - free_b);
}

nlohmann::json trace_json(const StepTrace& t) {
  if (t.steps == 0) return nullptr;
  nlohmann::json kinds = nlohmann::json::array();
  for (const StepShare& k : t.kinds)
    kinds.push_back({{"kernel", k.kernel}, {"per_step", k.per_step}, {"device_us", k.device_us},
                     {"exposed_us", k.exposed_us}});
  return {{"steps", t.steps}, {"step_us", t.step_us}, {"kernels", kinds}};
}

}  // namespace

nlohmann::json CudaBenchResult::to_json() const {
  return {{"device", device},
          {"load_s", load_s},
          {"upload_s", upload_s},
          {"ttft_s", ttft_s},
          {"prefill_tokens_per_s", prefill_tok_s},
          {"decode_tokens_per_s", decode_tok_s},
          {"decode_step_ms", decode_step_ms},
          {"peak_device_bytes", peak_device_bytes},
          {"planned_device_bytes", planned_bytes},
          {"decode_weight_bytes_per_step", weight_bytes},
          {"decode_kv_bytes_per_step", kv_bytes},
          {"decode_bytes_per_token", batch_bytes_per_token()},
          {"copy_gb_per_s", copy_gb_s},
          {"decode_gb_per_s", decode_gb_s},
          {"decode_pct_of_copy_bw", copy_gb_s > 0 ? 100 * decode_gb_s / copy_gb_s : 0},
          {"bandwidth_bound_tokens_per_s", bound_tok_s},
          {"sparse_24", sparse},
          {"decode_step_profile_us", step_profile_us},
          {"decode_step_trace", trace_json(step_trace)}};
}

double measure_device_copy_bandwidth(int device) {
  LLMC_CUDA_CHECK(cudaSetDevice(device));
  const size_t n = size_t{1} << 30;
  kernels::cuda::DeviceBuffer<uint8_t> a(n), b(n);
  LLMC_CUDA_CHECK(cudaMemset(a.data(), 0x5A, n));
  cudaEvent_t e0, e1;
  LLMC_CUDA_CHECK(cudaEventCreate(&e0));
  LLMC_CUDA_CHECK(cudaEventCreate(&e1));
  double best = 0;
  for (int r = 0; r < 6; ++r) {
    LLMC_CUDA_CHECK(cudaEventRecord(e0));
    LLMC_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), n, cudaMemcpyDeviceToDevice));
    LLMC_CUDA_CHECK(cudaEventRecord(e1));
    LLMC_CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    LLMC_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    if (r > 0) best = std::max(best, 2.0 * n / (ms * 1e-3) / 1e9);  // the first copy warms up
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return best;
}

CudaBenchResult bench_cuda(const Model& m, double load_s, const CudaBenchOptions& o) {
  if (o.batch < 1 || o.prompt_len < 1 || o.gen_len < 1 || o.repeats < 1)
    throw Error("bench: --batch, --prompt-len, --gen-len and --repeats must be positive", ErrorKind::Usage);
  CudaBenchResult r;
  r.load_s = load_s;
  r.copy_gb_s = measure_device_copy_bandwidth(o.device);
  const int64_t before = used_device_bytes();
  int64_t peak = before;

  CudaOptions co;
  co.max_context = o.prompt_len + o.gen_len + 1;
  co.max_batch = o.batch;
  co.max_tokens = o.prompt_len;
  co.device = o.device;
  co.fused_gemv = o.fused_gemv;
  co.sparse_gemv = o.sparse_gemv;
  auto t0 = Clock::now();
  CudaSession s(m, co);
  r.upload_s = secs(t0, Clock::now());
  r.planned_bytes = s.memory().total();
  const CudaOptions& used = s.options();
  if (used.sparse_layout != CudaSparseLayout::Auto)  // resolved: the model has 2:4 linears
    r.sparse = cuda_sparse_layout_name(used.sparse_layout);
  cudaDeviceProp prop{};
  LLMC_CUDA_CHECK(cudaGetDeviceProperties(&prop, o.device));
  r.device = prop.name;

  const int64_t V = m.config.value("vocab_size", int64_t{2});
  std::mt19937_64 rng(o.seed);
  std::vector<std::vector<int64_t>> prompts(static_cast<size_t>(o.batch), std::vector<int64_t>(o.prompt_len));
  for (auto& p : prompts)
    for (auto& t : p) t = static_cast<int64_t>(rng() % static_cast<uint64_t>(std::max<int64_t>(V, 2)));
  auto first_ids = [&](const Tensor& logits) {
    std::vector<int64_t> f(static_cast<size_t>(o.batch));
    const int64_t W = logits.dim(-1);
    for (int64_t b = 0; b < o.batch; ++b) {
      const float* row = logits.data<float>() + b * W;
      f[b] = std::max_element(row, row + W) - row;
    }
    return f;
  };
  // Warm-up: cuBLAS heuristics, 2:4 plans (the same row counts as the timed runs:
  // batch × prompt_len in one chunk, then batch), the captured graphs, clocks.
  s.reset();
  s.decode_greedy(first_ids(s.forward_batch(prompts, true)), std::min<int64_t>(o.gen_len, 8));
  peak = std::max(peak, used_device_bytes());

  std::vector<double> prefill, decode;
  for (int64_t rep = 0; rep < o.repeats; ++rep) {
    s.reset();
    auto a = Clock::now();
    const Tensor logits = s.forward_batch(prompts, true);
    auto b = Clock::now();
    s.decode_greedy(first_ids(logits), o.gen_len);
    auto c = Clock::now();
    prefill.push_back(secs(a, b));
    decode.push_back(secs(b, c));
    peak = std::max(peak, used_device_bytes());
  }
  r.ttft_s = median(prefill);
  const double d = median(decode);
  r.prefill_tok_s = o.batch * o.prompt_len / r.ttft_s;
  r.decode_tok_s = o.batch * o.gen_len / d;
  r.decode_step_ms = 1e3 * d / o.gen_len;
  r.peak_device_bytes = peak - before;
  r.weight_bytes = s.decode_weight_bytes();
  // step i of the decode attends over prompt_len + i + 1 positions per sequence
  r.kv_bytes = static_cast<int64_t>(s.kv_bytes_per_position() * o.batch * (o.prompt_len + (o.gen_len + 1) / 2.0));
  const double step_bytes = static_cast<double>(r.weight_bytes + r.kv_bytes);
  r.decode_gb_s = step_bytes * (o.gen_len / d) / 1e9;
  r.bound_tok_s = o.batch * r.copy_gb_s * 1e9 / step_bytes;
  r.batch = o.batch;
  if (o.profile) {
    s.reset();
    s.forward_batch(prompts, true);
    r.step_profile_us = s.profile_step(o.batch, 20);
  }
  if (o.trace) {  // after the timed runs: tracing may slow the launches it records
    s.reset();
    const std::vector<int64_t> first = first_ids(s.forward_batch(prompts, true));
    r.step_trace = split_steps(trace_kernels([&] { s.decode_greedy(first, std::min<int64_t>(o.gen_len, 16)); }));
  }
  return r;
}

}  // namespace llmc::runtime
