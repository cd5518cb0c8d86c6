// SparseContext's plans (sparse_gemm_plan.hpp): the context's buffers, cuSPARSELt plans made
// and cached per (n, k, padded m), and with search on, the timed configuration search per M
// bucket whose pick every later plan of the bucket reuses.
#if defined(LLMC_HAVE_CUSPARSELT)
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/cuda/sparse_gemm_plan.hpp"
#include "runtime/ir/dtype.hpp"

namespace llmc::kernels::cuda {

using namespace detail;

namespace {

constexpr size_t kInitialWorkspace = 32u << 20;
// cusparseLtGetVersion's 0.10.0: the first release whose search ran (docs/perf/cuda.md).
constexpr int kSearchMinVersion = 1000;
constexpr int kSearchReps = 10;      // calls per timing graph
constexpr double kVerifyTol = 1e-2;  // accumulation order (split-K) moves results by ~1e-3 of the largest

std::string fmt_us(double us) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.1fus", us);
  return b;
}

}  // namespace

SparseContext::Impl::Impl(int64_t mm_, int64_t mn, int64_t mk, bool search_, SparseLayout l)
    : layout(l),
      max_m(mm_),
      max_n(mn),
      max_k(mk),
      max_m_pad(round_up(mm_, 16)),
      search(search_),
      workspace(kInitialWorkspace),
      // 256 spare rows: configurations tried by the search may read whole tiles past m
      x_pad(static_cast<size_t>((round_up(mm_, 16) + 256) * mk)),
      y_pad(static_cast<size_t>((round_up(mm_, 16) + 256) * mn)) {
  lt_check(cusparseLtInit(handle.get()), "cusparseLtInit");
  if (search) {
    int v = 0;
    cusparseLtGetVersion(handle.get(), &v);
    if (v < kSearchMinVersion) {
      cusparseLtDestroy(handle.get());
      throw Error("SparseContext: configuration search needs cuSPARSELt >= 0.10.0, the library loaded is " +
                      std::to_string(v) + " (0.8.0's cusparseLtMatmulSearch failed and one configuration faulted on H100)",
                  ErrorKind::Runtime);
    }
    LLMC_CUDA_CHECK(cudaStreamCreateWithFlags(&search_stream, cudaStreamNonBlocking));
  }
  // x_pad's rows past m are read by the padded multiply (their outputs are dropped) and all of
  // it by the search's timing runs: small finite values, not zeros, so the timed kernels see
  // data like a real activation's
  std::vector<uint16_t> h(x_pad.size());
  uint32_t r = 12345;
  for (auto& v : h) {
    r = r * 1664525u + 1013904223u;
    v = f32_to_f16(static_cast<float>(static_cast<int32_t>(r >> 8) - (1 << 23)) / static_cast<float>(1 << 23));
  }
  x_pad.upload(h);
}

SparseContext::Impl::~Impl() {
  plans.clear();
  if (search_stream) cudaStreamDestroy(search_stream);
  cusparseLtDestroy(handle.get());
}

double SparseContext::Impl::time_plan(Plan& p, const void* wdata, double skip_over_us) {
  fit_workspace(p);
  const float alpha = 1.0f, beta = 0.0f;
  cudaStream_t st = search_stream;
  const auto [da, db] = operands(wdata, x_pad.data());
  auto call = [&] {
    return cusparseLtMatmul(handle.get(), p.plan.get(), &alpha, da, db, &beta, y_pad.data(), y_pad.data(),
                            workspace.data(), &st, 1);
  };
  cudaEvent_t e0, e1;
  LLMC_CUDA_CHECK(cudaEventCreate(&e0));
  LLMC_CUDA_CHECK(cudaEventCreate(&e1));
  double us = -1;
  float ms = 0;
  cudaGraph_t g = nullptr;
  cudaGraphExec_t ge = nullptr;
  bool ok = call() == CUSPARSE_STATUS_SUCCESS;  // first call: module loading, outside the timing
  LLMC_CUDA_CHECK(cudaEventRecord(e0, st));
  ok = ok && call() == CUSPARSE_STATUS_SUCCESS;
  LLMC_CUDA_CHECK(cudaEventRecord(e1, st));
  LLMC_CUDA_CHECK(cudaEventSynchronize(e1));  // a fault here is sticky for the process: nothing to recover
  LLMC_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
  if (ok && 1e3 * ms > 3 * skip_over_us) {
    us = 1e3 * ms;
  } else if (ok) {
    LLMC_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < kSearchReps && ok; ++i) ok = call() == CUSPARSE_STATUS_SUCCESS;
    const cudaError_t end = cudaStreamEndCapture(st, &g);
    if (!ok || end != cudaSuccess) {
      (void)cudaGetLastError();
      ok = false;
    }
    if (ok) {
      LLMC_CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
      LLMC_CUDA_CHECK(cudaGraphLaunch(ge, st));  // warm
      float best = 1e30f;
      for (int r = 0; r < 3; ++r) {
        LLMC_CUDA_CHECK(cudaEventRecord(e0, st));
        LLMC_CUDA_CHECK(cudaGraphLaunch(ge, st));
        LLMC_CUDA_CHECK(cudaEventRecord(e1, st));
        LLMC_CUDA_CHECK(cudaEventSynchronize(e1));
        LLMC_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
        best = std::min(best, ms);
      }
      us = 1e3 * best / kSearchReps;
    }
  }
  if (ge) cudaGraphExecDestroy(ge);
  if (g) cudaGraphDestroy(g);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return us;
}

Config SparseContext::Impl::search_bucket(const Sparse24Weight& w, int64_t ms) {
  const int64_t n = w.rows(), k = w.cols();
  const size_t outs = static_cast<size_t>(ms * n);
  search_log += "n=" + std::to_string(n) + " k=" + std::to_string(k) + " m=" + std::to_string(ms) + " [" +
                sparse_layout_name(layout) + "]:";
  Config best;
  double best_us = 1e30;
  DeviceBuffer<uint16_t> ref(outs);
  // Times a made plan and checks its output: "12.3us", "x" (rejected by cuSPARSELt) or
  // "wrong(0.87)"; considered for best only when right.
  auto try_plan = [&](Plan& p, const Config& c) {
    LLMC_CUDA_CHECK(cudaMemsetAsync(y_pad.data(), 0xFF, y_pad.bytes(), search_stream));  // f16 NaN
    const double us = time_plan(p, w.compressed(), best_us);
    if (us < 0) return std::string("x");
    const double rel = f16_relative_max_diff(y_pad.data(), ref.data(), outs, search_stream);
    if (!(rel <= kVerifyTol)) {
      char b[32];
      std::snprintf(b, sizeof(b), "wrong(%.2g)", rel);
      return std::string(b);
    }
    if (us < best_us) best_us = us, best = c;
    return fmt_us(us);
  };
  {
    Plan p(handle.get(), layout, n, k, ms);
    if (!p.make(Config{}))
      throw Error("cuSPARSELt: no default plan for n=" + std::to_string(n) + " k=" + std::to_string(k) +
                      " m=" + std::to_string(ms) + " (" + sparse_layout_name(layout) + ")",
                  ErrorKind::Runtime);
    best_us = time_plan(p, w.compressed(), 1e30);
    check(best_us >= 0, std::string("cuSPARSELt: the default configuration's multiply failed (") +
                            sparse_layout_name(layout) + ")");
    LLMC_CUDA_CHECK(cudaMemcpyAsync(ref.data(), y_pad.data(), outs * 2, cudaMemcpyDeviceToDevice, search_stream));
    search_log += " default " + fmt_us(best_us) + ";";
  }
  {  // cuSPARSELt's own search (every configuration and split-K), then its pick rebuilt and timed
    Plan p(handle.get(), layout, n, k, ms);
    lt_check(p.set(CUSPARSELT_MATMUL_SEARCH_ITERATIONS, 5), "cusparseLtMatmulAlgSetAttribute (search iterations)");
    if (p.make(Config{})) {
      fit_workspace(p);
      const float alpha = 1.0f, beta = 0.0f;
      cudaStream_t st = search_stream;
      const auto [da, db] = operands(w.compressed(), x_pad.data());
      const cusparseStatus_t s = cusparseLtMatmulSearch(handle.get(), p.plan.get(), &alpha, da, db, &beta,
                                                        y_pad.data(), y_pad.data(), workspace.data(), &st, 1);
      LLMC_CUDA_CHECK(cudaStreamSynchronize(st));
      if (s == CUSPARSE_STATUS_SUCCESS) {
        const Config pick = p.config();
        Plan q(handle.get(), layout, n, k, ms);
        search_log += " cusparseLtMatmulSearch " + pick.str() + " " + (q.make(pick) ? try_plan(q, pick) : "x") + ";";
      } else {
        search_log += std::string(" cusparseLtMatmulSearch failed: ") + cusparseLtGetErrorName(s) + ";";
      }
    }
  }
  int max_id = 0;
  {
    Plan probe(handle.get(), layout, n, k, ms);
    max_id = probe.get<int>(CUSPARSELT_MATMUL_ALG_CONFIG_MAX_ID);
  }
  search_log += " ids 0.." + std::to_string(max_id - 1) + ":";
  for (int id = 0; id < max_id; ++id) {
    Plan p(handle.get(), layout, n, k, ms);
    Config c;
    c.id = id;
    search_log += " " + std::to_string(id) + "=" + (p.make(c) ? try_plan(p, c) : "x");
  }
  search_log += "; kept " + best.str() + " " + fmt_us(best_us) + "\n";
  return best;
}

Plan& SparseContext::Impl::get(const Sparse24Weight& w, int64_t m_pad, cudaStream_t stream) {
  const int64_t n = w.rows(), k = w.cols();
  const auto key = std::make_tuple(n, k, m_pad);
  if (auto it = plans.find(key); it != plans.end()) return *it->second;
  cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
  LLMC_CUDA_CHECK(cudaStreamIsCapturing(stream, &cap));
  check(cap == cudaStreamCaptureStatusNone,
        "linear_sparse24: no plan for n=" + std::to_string(n) + " k=" + std::to_string(k) + " m=" +
            std::to_string(m_pad) + " while the stream is being captured; call sparse24_prepare first");
  Config cfg;
  if (search) {
    const auto bkey = std::make_tuple(n, k, bucket(m_pad));
    auto ch = choices.find(bkey);
    if (ch == choices.end()) {
      LLMC_CUDA_CHECK(cudaStreamSynchronize(stream));  // the timing runs overwrite x_pad / y_pad
      ch = choices.emplace(bkey, search_bucket(w, std::min(bucket(m_pad), max_m_pad))).first;
    }
    cfg = ch->second;
  }
  auto p = std::make_unique<Plan>(handle.get(), layout, n, k, m_pad);
  if (!p->make(cfg))
    throw Error("cuSPARSELt: cusparseLtMatmulPlanInit failed for n=" + std::to_string(n) + " k=" + std::to_string(k) +
                    " m=" + std::to_string(m_pad) + " (" + sparse_layout_name(layout) + ", " + cfg.str() + ")",
                ErrorKind::Runtime);
  fit_workspace(*p);
  return *plans.emplace(key, std::move(p)).first->second;
}

}  // namespace llmc::kernels::cuda

#endif
