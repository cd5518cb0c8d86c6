// 2:4 sparse f16 linear through cuSPARSELt (sparse_gemm.hpp): the pattern check, the upload and
// compression, and the multiply with a ready plan (plans and their search: sparse_gemm_search.cpp).
// In every SparseLayout, x and y are used in place (y row-major [m, n] is D column-major [n, m]
// when W is the A operand, D row-major when W is B); only the weight is stored transposed, once,
// for the _T layouts.
#include "kernels/cuda/sparse_gemm.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/cuda/sparse_gemm_plan.hpp"  // cuSPARSELt's side, with LLMC_HAVE_CUSPARSELT
#include "runtime/ir/dtype.hpp"

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

using namespace detail;

namespace {

// Zeroed bytes after the compressed weight: cuSPARSELt 0.8.0's sm90 kernels (e.g.
// sm90_xmma_sparse_gemm_f16f16_f16f32_f32_tn_n_tilesize64x256x128) read whole 1 KiB chunks past
// the end of the compressed matrix when its rows do not fill the last tile (compute-sanitizer
// memcheck on n = 144: 768 bytes past a 46,080-byte buffer); the rows read there are masked out
// of the result. 64 KiB covers a full 256-row tile's over-read.
constexpr size_t kCompressedSlack = 64u << 10;

bool stores_transposed(SparseLayout l) { return l == SparseLayout::kSparseAT || l == SparseLayout::kSparseBT; }

}  // namespace

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
