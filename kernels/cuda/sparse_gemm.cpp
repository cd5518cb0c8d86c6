// 2:4 sparse f16 linear through cuSPARSELt (sparse_gemm.hpp). Layout, as PyTorch's _cslt_sparse_mm:
// A = W row-major [n, k] (structured, op N), B = x row-major [m, k] (op T), C = D column-major
// [n, m] — which is y row-major [m, n] — so no transposes are materialized.
#include "kernels/cuda/sparse_gemm.hpp"

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
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

}  // namespace

struct SparseContext::Impl {
  struct Plan {
    Opaque<cusparseLtMatDescriptor_t> a, b, c;
    Opaque<cusparseLtMatmulDescriptor_t> mm;
    Opaque<cusparseLtMatmulAlgSelection_t> alg;
    Opaque<cusparseLtMatmulPlan_t> plan;
    bool ready = false;
  };
  struct Choice {  // the configuration that ran fastest for a bucket
    int alg_id = 0;
  };
  Opaque<cusparseLtHandle_t> handle;
  int64_t max_m, max_n, max_k, max_m_pad;
  bool search;
  DeviceBuffer<uint8_t> workspace;
  DeviceBuffer<uint16_t> x_pad, y_pad;
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::unique_ptr<Plan>> plans;  // (n, k, m_pad)
  std::map<std::tuple<int64_t, int64_t, int64_t>, Choice> choices;                // (n, k, bucket)
  std::string search_log;

  Impl(int64_t mm_, int64_t mn, int64_t mk, bool search_)
      : max_m(mm_),
        max_n(mn),
        max_k(mk),
        max_m_pad(round_up(mm_, 16)),
        search(search_),
        workspace(kInitialWorkspace),
        // 256 spare rows: configurations tried by the search may read whole tiles past m
        x_pad(static_cast<size_t>((round_up(mm_, 16) + 256) * mk)),
        y_pad(static_cast<size_t>((round_up(mm_, 16) + 256) * mn)) {
    lt_check(cusparseLtInit(handle.get()), "cusparseLtInit");
    // the padding rows of x are read by the padded multiply: zeros keep them finite
    LLMC_CUDA_CHECK(cudaMemset(x_pad.data(), 0, x_pad.bytes()));
  }
  ~Impl() {
    for (auto& [key, p] : plans) destroy(*p);
    cusparseLtDestroy(handle.get());
  }
  static void destroy(Plan& p) {
    if (p.ready) cusparseLtMatmulPlanDestroy(p.plan.get());
    cusparseLtMatmulAlgSelectionDestroy(p.alg.get());
    cusparseLtMatDescriptorDestroy(p.a.get());
    cusparseLtMatDescriptorDestroy(p.b.get());
    cusparseLtMatDescriptorDestroy(p.c.get());
  }

  void sparse_descr(cusparseLtMatDescriptor_t* d, int64_t n, int64_t k) {
    lt_check(cusparseLtStructuredDescriptorInit(handle.get(), d, n, k, k, kAlign, CUDA_R_16F, CUSPARSE_ORDER_ROW,
                                                CUSPARSELT_SPARSITY_50_PERCENT),
             "cusparseLtStructuredDescriptorInit");
  }

  // Descriptors and algorithm selection for (n, k, m_pad), without the plan.
  std::unique_ptr<Plan> describe(int64_t n, int64_t k, int64_t m) {
    auto p = std::make_unique<Plan>();
    sparse_descr(p->a.get(), n, k);
    lt_check(cusparseLtDenseDescriptorInit(handle.get(), p->b.get(), m, k, k, kAlign, CUDA_R_16F, CUSPARSE_ORDER_ROW),
             "cusparseLtDenseDescriptorInit (x)");
    lt_check(cusparseLtDenseDescriptorInit(handle.get(), p->c.get(), n, m, n, kAlign, CUDA_R_16F, CUSPARSE_ORDER_COL),
             "cusparseLtDenseDescriptorInit (y)");
    lt_check(cusparseLtMatmulDescriptorInit(handle.get(), p->mm.get(), CUSPARSE_OPERATION_NON_TRANSPOSE,
                                            CUSPARSE_OPERATION_TRANSPOSE, p->a.get(), p->b.get(), p->c.get(),
                                            p->c.get(), CUSPARSE_COMPUTE_32F),
             "cusparseLtMatmulDescriptorInit");
    lt_check(cusparseLtMatmulAlgSelectionInit(handle.get(), p->alg.get(), p->mm.get(), CUSPARSELT_MATMUL_ALG_DEFAULT),
             "cusparseLtMatmulAlgSelectionInit");
    return p;
  }

  void make_plan(Plan& p) {
    lt_check(cusparseLtMatmulPlanInit(handle.get(), p.plan.get(), p.mm.get(), p.alg.get()), "cusparseLtMatmulPlanInit");
    p.ready = true;
    size_t ws = 0;
    lt_check(cusparseLtMatmulGetWorkspace(handle.get(), p.plan.get(), &ws), "cusparseLtMatmulGetWorkspace");
    if (ws > workspace.bytes()) workspace = DeviceBuffer<uint8_t>(ws);
  }

  template <class T>
  void set_alg(Plan& p, cusparseLtMatmulAlgAttribute_t a, T v) {
    lt_check(cusparseLtMatmulAlgSetAttribute(handle.get(), p.alg.get(), a, &v, sizeof(v)), "cusparseLtMatmulAlgSetAttribute");
  }
  template <class T>
  T get_alg(Plan& p, cusparseLtMatmulAlgAttribute_t a) {
    T v{};
    lt_check(cusparseLtMatmulAlgGetAttribute(handle.get(), p.alg.get(), a, &v, sizeof(v)), "cusparseLtMatmulAlgGetAttribute");
    return v;
  }

  static int64_t bucket(int64_t m_pad) {
    int64_t b = 16;
    while (b < m_pad) b *= 2;
    return b;
  }

  // Times every configuration id (cusparseLtMatmulSearch does the same, but with cuSPARSELt
  // 0.8.0 on H100 it ended in CUSPARSE_STATUS_INTERNAL_ERROR) at ms tokens over the padded
  // buffers: 2 warm-up and 5 timed calls each; ids whose plan cannot be made are skipped.
  Choice search_bucket(const Sparse24Weight& w, int64_t ms, cudaStream_t stream) {
    const int64_t n = w.rows(), k = w.cols();
    int max_id = 0;
    {
      auto probe = describe(n, k, ms);
      max_id = get_alg<int>(*probe, CUSPARSELT_MATMUL_ALG_CONFIG_MAX_ID);
      destroy(*probe);
    }
    cudaEvent_t a, b;
    LLMC_CUDA_CHECK(cudaEventCreate(&a));
    LLMC_CUDA_CHECK(cudaEventCreate(&b));
    Choice best;
    float best_ms = 1e30f;
    search_log += "n=" + std::to_string(n) + " k=" + std::to_string(k) + " m=" + std::to_string(ms) + ":";
    const float alpha = 1.0f, beta = 0.0f;
    cudaStream_t st = stream;
    for (int id = 0; id <= max_id; ++id) {
      auto p = describe(n, k, ms);
      set_alg(*p, CUSPARSELT_MATMUL_ALG_CONFIG_ID, id);
      if (cusparseLtMatmulPlanInit(handle.get(), p->plan.get(), p->mm.get(), p->alg.get()) != CUSPARSE_STATUS_SUCCESS) {
        destroy(*p);
        continue;
      }
      p->ready = true;
      size_t ws = 0;
      lt_check(cusparseLtMatmulGetWorkspace(handle.get(), p->plan.get(), &ws), "cusparseLtMatmulGetWorkspace");
      if (ws > workspace.bytes()) workspace = DeviceBuffer<uint8_t>(ws);
      auto run = [&] {
        lt_check(cusparseLtMatmul(handle.get(), p->plan.get(), &alpha, w.compressed(), x_pad.data(), &beta,
                                  y_pad.data(), y_pad.data(), workspace.data(), &st, 1),
                 "cusparseLtMatmul (search)");
      };
      run();
      run();
      LLMC_CUDA_CHECK(cudaEventRecord(a, stream));
      for (int r = 0; r < 5; ++r) run();
      LLMC_CUDA_CHECK(cudaEventRecord(b, stream));
      LLMC_CUDA_CHECK(cudaEventSynchronize(b));
      float t = 0;
      LLMC_CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
      search_log += " " + std::to_string(id) + "=" + std::to_string(static_cast<int>(t * 200.0f)) + "us";
      if (t < best_ms) best_ms = t, best.alg_id = id;
      destroy(*p);
    }
    search_log += " -> " + std::to_string(best.alg_id) + "\n";
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return best;
  }

  // The plan for (n, k, m_pad): searched on the bucket's first use (timing runs over the padded
  // buffers and w's data), otherwise built from the bucket's choice.
  Plan& get(const Sparse24Weight& w, int64_t m_pad, cudaStream_t stream) {
    const int64_t n = w.rows(), k = w.cols();
    const auto key = std::make_tuple(n, k, m_pad);
    if (auto it = plans.find(key); it != plans.end()) return *it->second;
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    LLMC_CUDA_CHECK(cudaStreamIsCapturing(stream, &cap));
    check(cap == cudaStreamCaptureStatusNone,
          "linear_sparse24: no plan for n=" + std::to_string(n) + " k=" + std::to_string(k) + " m=" +
              std::to_string(m_pad) + " while the stream is being captured; call sparse24_prepare first");
    auto p = describe(n, k, m_pad);
    if (!search) {  // cuSPARSELt's default (heuristic) configuration
      make_plan(*p);
      return *plans.emplace(key, std::move(p)).first->second;
    }
    const auto bkey = std::make_tuple(n, k, bucket(m_pad));
    auto ch = choices.find(bkey);
    if (ch == choices.end()) ch = choices.emplace(bkey, search_bucket(w, std::min(bucket(m_pad), max_m_pad), stream)).first;
    set_alg(*p, CUSPARSELT_MATMUL_ALG_CONFIG_ID, ch->second.alg_id);
    make_plan(*p);
    return *plans.emplace(key, std::move(p)).first->second;
  }
};

SparseContext::SparseContext(int64_t max_m, int64_t max_n, int64_t max_k, bool search) {
  check(max_m > 0 && max_n > 0 && max_k > 0, "SparseContext: sizes must be positive, got m=" + std::to_string(max_m) +
                                                  " n=" + std::to_string(max_n) + " k=" + std::to_string(max_k));
  impl_ = std::make_unique<Impl>(max_m, max_n, max_k, search);
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

Sparse24Weight Sparse24Weight::upload_f16(SparseContext& ctx, const uint16_t* w, int64_t rows, int64_t cols,
                                          const std::string& name) {
  check_2to4_f16(w, rows, cols, name);
  check(rows % 16 == 0 && cols % 16 == 0, name + ": cuSPARSELt needs out and in features divisible by 16, got [" +
                                              std::to_string(rows) + ", " + std::to_string(cols) + "]");
  SparseContext::Impl& im = ctx.impl();
  Opaque<cusparseLtMatDescriptor_t> a;
  im.sparse_descr(a.get(), rows, cols);
  size_t size = 0, buf = 0;
  lt_check(cusparseLtSpMMACompressedSize2(im.handle.get(), a.get(), &size, &buf), "cusparseLtSpMMACompressedSize2");
  DeviceBuffer<uint16_t> dense(std::vector<uint16_t>(w, w + rows * cols));
  DeviceBuffer<uint8_t> scratch(std::max<size_t>(buf, 1));
  Sparse24Weight out;
  out.rows_ = rows;
  out.cols_ = cols;
  out.data_ = DeviceBuffer<uint8_t>(size + kCompressedSlack);
  LLMC_CUDA_CHECK(cudaMemset(out.data_.data(), 0, out.data_.bytes()));
  lt_check(cusparseLtSpMMACompress2(im.handle.get(), a.get(), 1, CUSPARSE_OPERATION_NON_TRANSPOSE, dense.data(),
                                    out.data_.data(), scratch.data(), nullptr),
           "cusparseLtSpMMACompress2");
  LLMC_CUDA_CHECK(cudaDeviceSynchronize());  // before dense and scratch are freed
  cusparseLtMatDescriptorDestroy(a.get());
  return out;
}

std::string sparse24_search_report(SparseContext& ctx) { return ctx.impl().search_log; }

void sparse24_prepare(SparseContext& ctx, const Sparse24Weight& w, int64_t m, cudaStream_t stream) {
  SparseContext::Impl& im = ctx.impl();
  check(m > 0 && m <= im.max_m && w.rows() <= im.max_n && w.cols() <= im.max_k,
        "sparse24_prepare: m=" + std::to_string(m) + " n=" + std::to_string(w.rows()) + " k=" +
            std::to_string(w.cols()) + " exceed the context");
  im.get(w, round_up(m, 16), stream);
}

void linear_sparse24(SparseContext& ctx, const Sparse24Weight& w, const uint16_t* x, uint16_t* y, int64_t m,
                     cudaStream_t stream) {
  SparseContext::Impl& im = ctx.impl();
  const int64_t n = w.rows(), k = w.cols(), m_pad = round_up(m, 16);
  check(m > 0 && m <= im.max_m && n <= im.max_n && k <= im.max_k,
        "linear_sparse24: m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
            " exceed the context (max m=" + std::to_string(im.max_m) + " n=" + std::to_string(im.max_n) +
            " k=" + std::to_string(im.max_k) + ")");
  SparseContext::Impl::Plan& p = im.get(w, m_pad, stream);
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
  lt_check(cusparseLtMatmul(im.handle.get(), p.plan.get(), &alpha, w.compressed(), xb, &beta, yb, yb,
                            im.workspace.data(), &st, 1),
           "cusparseLtMatmul");
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

SparseContext::SparseContext(int64_t, int64_t, int64_t, bool) { missing("SparseContext"); }
SparseContext::~SparseContext() = default;
bool sparse24_available() { return false; }
std::string sparse24_search_report(SparseContext&) { return ""; }
int sparse24_library_version() { return 0; }
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
  c.data_ = data_.clone();
  return c;
}

}  // namespace llmc::kernels::cuda
