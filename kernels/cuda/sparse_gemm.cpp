// 2:4 sparse f16 linear through cuSPARSELt (sparse_gemm.hpp). In every SparseLayout, x and y are
// used in place (y row-major [m, n] is D column-major [n, m] when W is the A operand, D row-major
// when W is B); only the weight is stored transposed, once, for the _T layouts.
#include "kernels/cuda/sparse_gemm.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "runtime/ir/dtype.hpp"

#if defined(LLMC_HAVE_CUSPARSELT)
#include <cusparseLt.h>
#endif

namespace llmc::kernels::cuda {

namespace {

template <class IsNonZero>
void check_pattern(int64_t rows, int64_t cols, const std::string& name, IsNonZero nz) {
  check(rows > 0 && cols > 0 && cols % 4 == 0,
        name + ": a 2:4 sparse weight needs in_features divisible by 4, got [" + std::to_string(rows) + ", " +
            std::to_string(cols) + "]");
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols / 4; ++g) {
      int count = 0;
      for (int64_t c = 4 * g; c < 4 * g + 4; ++c) count += nz(r * cols + c) ? 1 : 0;
      if (count > 2)
        throw Error(name + ": not 2:4 sparse along the input dimension: row " + std::to_string(r) + ", group " +
                    std::to_string(g) + " (columns " + std::to_string(4 * g) + ".." + std::to_string(4 * g + 3) +
                    ") has " + std::to_string(count) + " non-zeros");
    }
}

}  // namespace

void check_2to4(const float* w, int64_t rows, int64_t cols, const std::string& name) {
  check_pattern(rows, cols, name, [w](int64_t i) { return w[i] != 0.0f; });
}

void check_2to4_f16(const uint16_t* w, int64_t rows, int64_t cols, const std::string& name) {
  check_pattern(rows, cols, name, [w](int64_t i) { return (w[i] & 0x7fff) != 0; });
}

const char* sparse_layout_name(SparseLayout l) {
  switch (l) {
    case SparseLayout::kSparseA: return "sparse_a";
    case SparseLayout::kSparseAT: return "sparse_a_t";
    case SparseLayout::kSparseB: return "sparse_b";
    case SparseLayout::kSparseBT: return "sparse_b_t";
  }
  return "?";
}

Sparse24Weight Sparse24Weight::upload(SparseContext& ctx, const Tensor& w, const std::string& name) {
  check(w.rank() == 2 && (w.dtype() == DType::F16 || w.dtype() == DType::F32),
        name + ": a 2:4 sparse weight must be a 2-D F16 or F32 tensor, got " + dtype_name(w.dtype()) + " " +
            shape_str(w.shape()));
  const int64_t n = w.shape()[0], k = w.shape()[1];
  if (w.dtype() == DType::F16) return upload_f16(ctx, w.data<uint16_t>(), n, k, name);
  check_2to4(w.data<float>(), n, k, name);  // before rounding: report the pattern the caller gave
  std::vector<uint16_t> h(static_cast<size_t>(n * k));
  const float* src = w.data<float>();
  for (size_t i = 0; i < h.size(); ++i) h[i] = f32_to_f16(src[i]);
  return upload_f16(ctx, h.data(), n, k, name);
}

#if defined(LLMC_HAVE_CUSPARSELT)

namespace {

// The opaque cuSPARSELt structs changed size across releases (1024 bytes in older headers, 512
// in 0.10); the library found at run time may be older than the header, so each lives in
// storage large enough for either.
template <class T>
struct Opaque {
  alignas(16) unsigned char bytes[4096] = {};
  T* get() { return reinterpret_cast<T*>(bytes); }
  const T* get() const { return reinterpret_cast<const T*>(bytes); }
};

void lt_check(cusparseStatus_t st, const char* what) {
  if (st != CUSPARSE_STATUS_SUCCESS)
    throw Error(std::string("cuSPARSELt: ") + what + " failed: " + cusparseLtGetErrorString(st) + " (" +
                    cusparseLtGetErrorName(st) + ")",
                ErrorKind::Runtime);
}

int64_t round_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

constexpr size_t kInitialWorkspace = 32u << 20;
// Zeroed bytes after the compressed weight: cuSPARSELt 0.8.0's sm90 kernels (e.g.
// sm90_xmma_sparse_gemm_f16f16_f16f32_f32_tn_n_tilesize64x256x128) read whole 1 KiB chunks past
// the end of the compressed matrix when its rows do not fill the last tile (compute-sanitizer
// memcheck on n = 144: 768 bytes past a 46,080-byte buffer); the rows read there are masked out
// of the result. 64 KiB covers a full 256-row tile's over-read.
constexpr size_t kCompressedSlack = 64u << 10;
constexpr unsigned kAlign = 16;
// cusparseLtGetVersion's 0.10.0: the first release whose search ran (docs/perf/cuda.md).
constexpr int kSearchMinVersion = 1000;
constexpr int kSearchReps = 10;      // calls per timing graph
constexpr double kVerifyTol = 1e-2;  // accumulation order (split-K) moves results by ~1e-3 of the largest

bool sparse_is_a(SparseLayout l) { return l == SparseLayout::kSparseA || l == SparseLayout::kSparseAT; }
bool stores_transposed(SparseLayout l) { return l == SparseLayout::kSparseAT || l == SparseLayout::kSparseBT; }

// The structured operand holding W [n, k] (op N in every layout): as A it is op(A) = W [n, k],
// as B it is op(B) = Wᵀ [k, n]; the 2:4 groups run along k either way.
void sparse_descr(const cusparseLtHandle_t* h, cusparseLtMatDescriptor_t* d, int64_t n, int64_t k, SparseLayout l) {
  int64_t rows = n, cols = k, ld = k;
  cusparseOrder_t order = CUSPARSE_ORDER_ROW;
  switch (l) {
    case SparseLayout::kSparseA: break;  // W row-major [n, k]
    case SparseLayout::kSparseAT: ld = n, order = CUSPARSE_ORDER_COL; break;  // Wᵀ in memory
    case SparseLayout::kSparseB: rows = k, cols = n, ld = k, order = CUSPARSE_ORDER_COL; break;  // W in memory
    case SparseLayout::kSparseBT: rows = k, cols = n, ld = n; break;  // Wᵀ row-major [k, n]
  }
  lt_check(cusparseLtStructuredDescriptorInit(h, d, rows, cols, ld, kAlign, CUDA_R_16F, order,
                                              CUSPARSELT_SPARSITY_50_PERCENT),
           "cusparseLtStructuredDescriptorInit");
}

// A configuration: id < 0 is cuSPARSELt's default; split_k 0 leaves split-K to the library.
struct Config {
  int id = -1, split_k = 0, split_k_mode = 0, split_k_buffers = 0;
  std::string str() const {
    if (id < 0) return "default";
    std::string s = "id=" + std::to_string(id);
    if (split_k > 0) s += " split_k=" + std::to_string(split_k);
    if (split_k > 1) s += " mode=" + std::to_string(split_k_mode) + " buffers=" + std::to_string(split_k_buffers);
    return s;
  }
};

// Descriptors, algorithm selection and (once made) the plan for one (layout, n, k, m).
struct Plan {
  Opaque<cusparseLtMatDescriptor_t> a, b, c;
  Opaque<cusparseLtMatmulDescriptor_t> mm;
  Opaque<cusparseLtMatmulAlgSelection_t> alg;
  Opaque<cusparseLtMatmulPlan_t> plan;
  const cusparseLtHandle_t* h = nullptr;
  bool ready = false;

  Plan(const cusparseLtHandle_t* handle, SparseLayout l, int64_t n, int64_t k, int64_t m) : h(handle) {
    const bool sa = sparse_is_a(l);
    sparse_descr(h, sa ? a.get() : b.get(), n, k, l);
    lt_check(cusparseLtDenseDescriptorInit(h, sa ? b.get() : a.get(), m, k, k, kAlign, CUDA_R_16F, CUSPARSE_ORDER_ROW),
             "cusparseLtDenseDescriptorInit (x)");
    // y row-major [m, n]: D column-major [n, m] when W is A, row-major [m, n] when W is B
    lt_check(sa ? cusparseLtDenseDescriptorInit(h, c.get(), n, m, n, kAlign, CUDA_R_16F, CUSPARSE_ORDER_COL)
                : cusparseLtDenseDescriptorInit(h, c.get(), m, n, n, kAlign, CUDA_R_16F, CUSPARSE_ORDER_ROW),
             "cusparseLtDenseDescriptorInit (y)");
    lt_check(cusparseLtMatmulDescriptorInit(h, mm.get(), CUSPARSE_OPERATION_NON_TRANSPOSE,
                                            sa ? CUSPARSE_OPERATION_TRANSPOSE : CUSPARSE_OPERATION_NON_TRANSPOSE,
                                            a.get(), b.get(), c.get(), c.get(), CUSPARSE_COMPUTE_32F),
             "cusparseLtMatmulDescriptorInit");
    lt_check(cusparseLtMatmulAlgSelectionInit(h, alg.get(), mm.get(), CUSPARSELT_MATMUL_ALG_DEFAULT),
             "cusparseLtMatmulAlgSelectionInit");
  }
  ~Plan() {
    if (ready) cusparseLtMatmulPlanDestroy(plan.get());
    cusparseLtMatmulAlgSelectionDestroy(alg.get());
    cusparseLtMatDescriptorDestroy(a.get());
    cusparseLtMatDescriptorDestroy(b.get());
    cusparseLtMatDescriptorDestroy(c.get());
  }
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;

  template <class T>
  cusparseStatus_t set(cusparseLtMatmulAlgAttribute_t at, T v) {
    return cusparseLtMatmulAlgSetAttribute(h, alg.get(), at, &v, sizeof(v));
  }
  template <class T>
  T get(cusparseLtMatmulAlgAttribute_t at) const {
    T v{};
    lt_check(cusparseLtMatmulAlgGetAttribute(h, alg.get(), at, &v, sizeof(v)), "cusparseLtMatmulAlgGetAttribute");
    return v;
  }
  // Applies cfg and makes the plan; false where cuSPARSELt rejects the configuration.
  bool make(const Config& cfg) {
    if (cfg.id >= 0 && set(CUSPARSELT_MATMUL_ALG_CONFIG_ID, cfg.id) != CUSPARSE_STATUS_SUCCESS) return false;
    if (cfg.split_k > 0 && set(CUSPARSELT_MATMUL_SPLIT_K, cfg.split_k) != CUSPARSE_STATUS_SUCCESS) return false;
    if (cfg.split_k > 1) {
      if (set(CUSPARSELT_MATMUL_SPLIT_K_MODE, static_cast<cusparseLtSplitKMode_t>(cfg.split_k_mode)) !=
          CUSPARSE_STATUS_SUCCESS)
        return false;
      if (cfg.split_k_buffers > 0 && set(CUSPARSELT_MATMUL_SPLIT_K_BUFFERS, cfg.split_k_buffers) != CUSPARSE_STATUS_SUCCESS)
        return false;
    }
    ready = cusparseLtMatmulPlanInit(h, plan.get(), mm.get(), alg.get()) == CUSPARSE_STATUS_SUCCESS;
    return ready;
  }
  // The configuration the selection holds (after cusparseLtMatmulSearch: the one it chose).
  Config config() const {
    Config c;
    c.id = get<int>(CUSPARSELT_MATMUL_ALG_CONFIG_ID);
    c.split_k = get<int>(CUSPARSELT_MATMUL_SPLIT_K);
    if (c.split_k > 1) {
      c.split_k_mode = static_cast<int>(get<cusparseLtSplitKMode_t>(CUSPARSELT_MATMUL_SPLIT_K_MODE));
      c.split_k_buffers = get<int>(CUSPARSELT_MATMUL_SPLIT_K_BUFFERS);
    }
    return c;
  }
};

std::string fmt_us(double us) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.1fus", us);
  return b;
}

}  // namespace

struct SparseContext::Impl {
  Opaque<cusparseLtHandle_t> handle;
  SparseLayout layout;
  int64_t max_m, max_n, max_k, max_m_pad;
  bool search;
  DeviceBuffer<uint8_t> workspace;
  DeviceBuffer<uint16_t> x_pad, y_pad;
  cudaStream_t search_stream = nullptr;
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::unique_ptr<Plan>> plans;  // (n, k, m_pad)
  std::map<std::tuple<int64_t, int64_t, int64_t>, Config> choices;               // (n, k, bucket)
  std::string search_log;

  Impl(int64_t mm_, int64_t mn, int64_t mk, bool search_, SparseLayout l)
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
  ~Impl() {
    plans.clear();
    if (search_stream) cudaStreamDestroy(search_stream);
    cusparseLtDestroy(handle.get());
  }

  // cuSPARSELt's (d_A, d_B) for weight data w and activations x.
  std::pair<const void*, const void*> operands(const void* w, const void* x) const {
    return sparse_is_a(layout) ? std::make_pair(w, x) : std::make_pair(x, w);
  }

  void fit_workspace(const Plan& p) {
    size_t ws = 0;
    lt_check(cusparseLtMatmulGetWorkspace(handle.get(), p.plan.get(), &ws), "cusparseLtMatmulGetWorkspace");
    if (ws > workspace.bytes()) workspace = DeviceBuffer<uint8_t>(ws);
  }

  static int64_t bucket(int64_t m_pad) {
    int64_t b = 16;
    while (b < m_pad) b *= 2;
    return b;
  }

  // µs per call of a ready plan over the padded buffers and w's data, from a CUDA graph of
  // kSearchReps back-to-back calls (launch gaps excluded, as bench_kernels times); < 0 where
  // cuSPARSELt rejects the call. A configuration whose single warm call takes over
  // 3 × `skip_over_us` is not timed further.
  double time_plan(Plan& p, const void* wdata, double skip_over_us) {
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

  // The configuration for (n, k) at ms padded tokens: the fastest, by time_plan, of cuSPARSELt's
  // default, cusparseLtMatmulSearch's pick and every configuration id with the library's split-K,
  // among those whose output matches the default's (f16_relative_max_diff ≤ kVerifyTol; y_pad is
  // filled with NaN before each, so rows a configuration leaves unwritten count as wrong).
  Config search_bucket(const Sparse24Weight& w, int64_t ms) {
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

  // The plan for (n, k, m_pad): searched on the bucket's first use, otherwise built from the
  // bucket's choice (or cuSPARSELt's default without search).
  Plan& get(const Sparse24Weight& w, int64_t m_pad, cudaStream_t stream) {
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
};

SparseContext::SparseContext(int64_t max_m, int64_t max_n, int64_t max_k, bool search, SparseLayout layout)
    : layout_(layout) {
  check(max_m > 0 && max_n > 0 && max_k > 0, "SparseContext: sizes must be positive, got m=" + std::to_string(max_m) +
                                                  " n=" + std::to_string(max_n) + " k=" + std::to_string(max_k));
  impl_ = std::make_unique<Impl>(max_m, max_n, max_k, search, layout);
}

SparseContext::~SparseContext() = default;

bool sparse24_available() { return true; }

int sparse24_library_version() {
  int v = 0;
  Opaque<cusparseLtHandle_t> h;
  if (cusparseLtInit(h.get()) != CUSPARSE_STATUS_SUCCESS) return 0;
  cusparseLtGetVersion(h.get(), &v);
  cusparseLtDestroy(h.get());
  return v;
}

bool sparse24_layout_supported(SparseLayout layout) {
  Opaque<cusparseLtHandle_t> h;
  if (cusparseLtInit(h.get()) != CUSPARSE_STATUS_SUCCESS) return false;
  bool ok = false;
  try {
    Plan p(h.get(), layout, 64, 64, 64);
    ok = p.make(Config{});
  } catch (const Error&) {
    ok = false;
  }
  cusparseLtDestroy(h.get());
  return ok;
}

Sparse24Weight Sparse24Weight::upload_f16(SparseContext& ctx, const uint16_t* w, int64_t rows, int64_t cols,
                                          const std::string& name) {
  check_2to4_f16(w, rows, cols, name);
  check(rows % 16 == 0 && cols % 16 == 0, name + ": cuSPARSELt needs out and in features divisible by 16, got [" +
                                              std::to_string(rows) + ", " + std::to_string(cols) + "]");
  SparseContext::Impl& im = ctx.impl();
  const SparseLayout l = ctx.layout();
  Opaque<cusparseLtMatDescriptor_t> a;
  sparse_descr(im.handle.get(), a.get(), rows, cols, l);
  size_t size = 0, buf = 0;
  lt_check(cusparseLtSpMMACompressedSize2(im.handle.get(), a.get(), &size, &buf), "cusparseLtSpMMACompressedSize2");
  std::vector<uint16_t> h(w, w + rows * cols);
  if (stores_transposed(l))
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) h[c * rows + r] = w[r * cols + c];
  DeviceBuffer<uint16_t> dense(h);
  DeviceBuffer<uint8_t> scratch(std::max<size_t>(buf, 1));
  Sparse24Weight out;
  out.rows_ = rows;
  out.cols_ = cols;
  out.layout_ = l;
  out.data_ = DeviceBuffer<uint8_t>(size + kCompressedSlack);
  LLMC_CUDA_CHECK(cudaMemset(out.data_.data(), 0, out.data_.bytes()));
  lt_check(cusparseLtSpMMACompress2(im.handle.get(), a.get(), sparse_is_a(l) ? 1 : 0, CUSPARSE_OPERATION_NON_TRANSPOSE,
                                    dense.data(), out.data_.data(), scratch.data(), nullptr),
           "cusparseLtSpMMACompress2");
  LLMC_CUDA_CHECK(cudaDeviceSynchronize());  // before dense and scratch are freed
  cusparseLtMatDescriptorDestroy(a.get());
  return out;
}

std::string sparse24_search_report(SparseContext& ctx) { return ctx.impl().search_log; }

namespace {
void check_fits(SparseContext::Impl& im, SparseLayout ctx_layout, const Sparse24Weight& w, int64_t m, const char* fn) {
  check(m > 0 && m <= im.max_m && w.rows() <= im.max_n && w.cols() <= im.max_k,
        std::string(fn) + ": m=" + std::to_string(m) + " n=" + std::to_string(w.rows()) + " k=" +
            std::to_string(w.cols()) + " exceed the context (max m=" + std::to_string(im.max_m) + " n=" +
            std::to_string(im.max_n) + " k=" + std::to_string(im.max_k) + ")");
  check(w.layout() == ctx_layout, std::string(fn) + ": the weight was compressed for layout " +
                                      sparse_layout_name(w.layout()) + ", the context uses " +
                                      sparse_layout_name(ctx_layout));
}
}  // namespace

void sparse24_prepare(SparseContext& ctx, const Sparse24Weight& w, int64_t m, cudaStream_t stream) {
  SparseContext::Impl& im = ctx.impl();
  check_fits(im, ctx.layout(), w, m, "sparse24_prepare");
  im.get(w, round_up(m, 16), stream);
}

void linear_sparse24(SparseContext& ctx, const Sparse24Weight& w, const uint16_t* x, uint16_t* y, int64_t m,
                     cudaStream_t stream) {
  SparseContext::Impl& im = ctx.impl();
  check_fits(im, ctx.layout(), w, m, "linear_sparse24");
  const int64_t n = w.rows(), k = w.cols(), m_pad = round_up(m, 16);
  Plan& p = im.get(w, m_pad, stream);
  const bool pad = m_pad != m || reinterpret_cast<uintptr_t>(x) % kAlign != 0 || reinterpret_cast<uintptr_t>(y) % kAlign != 0;
  const uint16_t* xb = x;
  uint16_t* yb = y;
  if (pad) {
    LLMC_CUDA_CHECK(cudaMemcpyAsync(im.x_pad.data(), x, static_cast<size_t>(m * k) * 2, cudaMemcpyDeviceToDevice, stream));
    xb = im.x_pad.data();
    yb = im.y_pad.data();
  }
  const float alpha = 1.0f, beta = 0.0f;
  cudaStream_t st = stream;
  const auto [da, db] = im.operands(w.compressed(), xb);
  lt_check(cusparseLtMatmul(im.handle.get(), p.plan.get(), &alpha, da, db, &beta, yb, yb, im.workspace.data(), &st, 1),
           "cusparseLtMatmul");
  // y row-major [m, n] is the first m·n elements of D in every layout
  if (pad)
    LLMC_CUDA_CHECK(cudaMemcpyAsync(y, yb, static_cast<size_t>(m * n) * 2, cudaMemcpyDeviceToDevice, stream));
}

#else  // built without cuSPARSELt

struct SparseContext::Impl {};

namespace {
[[noreturn]] void missing(const char* what) {
  throw Error(std::string(what) +
                  ": built without cuSPARSELt (install nvidia-cusparselt-cu13 from PyPI and configure with "
                  "LLMC_CUSPARSELT_ROOT pointing at its folder)",
              ErrorKind::Runtime);
}
}  // namespace

SparseContext::SparseContext(int64_t, int64_t, int64_t, bool, SparseLayout layout) : layout_(layout) {
  missing("SparseContext");
}
SparseContext::~SparseContext() = default;
bool sparse24_available() { return false; }
std::string sparse24_search_report(SparseContext&) { return ""; }
int sparse24_library_version() { return 0; }
bool sparse24_layout_supported(SparseLayout) { return false; }
Sparse24Weight Sparse24Weight::upload_f16(SparseContext&, const uint16_t* w, int64_t rows, int64_t cols,
                                          const std::string& name) {
  check_2to4_f16(w, rows, cols, name);
  missing("Sparse24Weight::upload");
}
void sparse24_prepare(SparseContext&, const Sparse24Weight&, int64_t, cudaStream_t) { missing("sparse24_prepare"); }
void linear_sparse24(SparseContext&, const Sparse24Weight&, const uint16_t*, uint16_t*, int64_t, cudaStream_t) {
  missing("linear_sparse24");
}

#endif

Sparse24Weight Sparse24Weight::clone() const {
  Sparse24Weight c;
  c.rows_ = rows_;
  c.cols_ = cols_;
  c.layout_ = layout_;
  c.data_ = data_.clone();
  return c;
}

}  // namespace llmc::kernels::cuda
