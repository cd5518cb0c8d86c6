// SparseContext's insides (sparse_gemm.hpp), shared by sparse_gemm.cpp (upload, multiply) and
// sparse_gemm_search.cpp (plans and the configuration search): cuSPARSELt's descriptors, one
// matmul plan with its algorithm selection, and the context's handle, buffers and plan cache.
#pragma once
#if defined(LLMC_HAVE_CUSPARSELT)
#include <cusparseLt.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>

#include "kernels/cuda/sparse_gemm.hpp"

namespace llmc::kernels::cuda {

namespace detail {

// The opaque cuSPARSELt structs changed size across releases (1024 bytes in older headers, 512
// in 0.10); the library found at run time may be older than the header, so each lives in
// storage large enough for either.
template <class T>
struct Opaque {
  alignas(16) unsigned char bytes[4096] = {};
  T* get() { return reinterpret_cast<T*>(bytes); }
  const T* get() const { return reinterpret_cast<const T*>(bytes); }
};

inline void lt_check(cusparseStatus_t st, const char* what) {
  if (st != CUSPARSE_STATUS_SUCCESS)
    throw Error(std::string("cuSPARSELt: ") + what + " failed: " + cusparseLtGetErrorString(st) + " (" +
                    cusparseLtGetErrorName(st) + ")",
                ErrorKind::Runtime);
}

inline int64_t round_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

inline constexpr unsigned kAlign = 16;

inline bool sparse_is_a(SparseLayout l) { return l == SparseLayout::kSparseA || l == SparseLayout::kSparseAT; }

// The structured operand holding W [n, k] (op N in every layout): as A it is op(A) = W [n, k],
// as B it is op(B) = Wᵀ [k, n]; the 2:4 groups run along k either way.
inline void sparse_descr(const cusparseLtHandle_t* h, cusparseLtMatDescriptor_t* d, int64_t n, int64_t k, SparseLayout l) {
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

}  // namespace detail

struct SparseContext::Impl {
  using Plan = detail::Plan;
  using Config = detail::Config;

  detail::Opaque<cusparseLtHandle_t> handle;
  SparseLayout layout;
  int64_t max_m, max_n, max_k, max_m_pad;
  bool search;
  DeviceBuffer<uint8_t> workspace;
  DeviceBuffer<uint16_t> x_pad, y_pad;
  cudaStream_t search_stream = nullptr;
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::unique_ptr<Plan>> plans;  // (n, k, m_pad)
  std::map<std::tuple<int64_t, int64_t, int64_t>, Config> choices;               // (n, k, bucket)
  std::string search_log;

  Impl(int64_t max_m, int64_t max_n, int64_t max_k, bool search, SparseLayout layout);
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // cuSPARSELt's (d_A, d_B) for weight data w and activations x.
  std::pair<const void*, const void*> operands(const void* w, const void* x) const {
    return detail::sparse_is_a(layout) ? std::make_pair(w, x) : std::make_pair(x, w);
  }

  void fit_workspace(const Plan& p) {
    size_t ws = 0;
    detail::lt_check(cusparseLtMatmulGetWorkspace(handle.get(), p.plan.get(), &ws), "cusparseLtMatmulGetWorkspace");
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
  double time_plan(Plan& p, const void* wdata, double skip_over_us);
  // The configuration for (n, k) at ms padded tokens: the fastest, by time_plan, of cuSPARSELt's
  // default, cusparseLtMatmulSearch's pick and every configuration id with the library's split-K,
  // among those whose output matches the default's (f16_relative_max_diff ≤ kVerifyTol; y_pad is
  // filled with NaN before each, so rows a configuration leaves unwritten count as wrong).
  Config search_bucket(const Sparse24Weight& w, int64_t ms);
  // The plan for (n, k, m_pad): searched on the bucket's first use, otherwise built from the
  // bucket's choice (or cuSPARSELt's default without search).
  Plan& get(const Sparse24Weight& w, int64_t m_pad, cudaStream_t stream);
};

}  // namespace llmc::kernels::cuda

#endif
