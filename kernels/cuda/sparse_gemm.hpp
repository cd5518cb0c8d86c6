// 2:4 semi-structured sparse f16 linear layers through cuSPARSELt (sparse tensor cores): the
// 2:4 pattern check, one-time compression at upload, and y = x·Wᵀ with plans cached per M.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>

#include "kernels/cuda/device_buffer.hpp"
#include "runtime/ir/tensor.hpp"

namespace llmc::kernels::cuda {

// Throws Error naming `name`, the row and the group when some group of 4 consecutive inputs
// (columns 4g .. 4g+3 of row r of w [rows, cols]) holds more than 2 non-zeros, or cols % 4 != 0.
// Host-only: usable without a GPU or cuSPARSELt. The _f16 form reads f16 bits (±0 are zeros).
void check_2to4(const float* w, int64_t rows, int64_t cols, const std::string& name);
void check_2to4_f16(const uint16_t* w, int64_t rows, int64_t cols, const std::string& name);

// Whether this build has cuSPARSELt (LLMC_HAVE_CUSPARSELT). Without it the calls below throw
// "built without cuSPARSELt".
bool sparse24_available();

// How y[m, n] = x[m, k]·Wᵀ maps onto cuSPARSELt's D = op(A)·op(B) (which operand is the
// structured one, and whether the weight is stored as W or as Wᵀ). The weight is compressed for
// its context's layout at upload.
enum class SparseLayout {
  kSparseA,   // A = W row-major [n, k] (op N), B = x row-major [m, k] (op T), D column-major [n, m];
              // PyTorch's _cslt_sparse_mm layout
  kSparseAT,  // A = Wᵀ in memory (column-major [n, k], op N), B and D as kSparseA
  kSparseB,   // A = x row-major [m, k] (op N), B = W in memory (column-major [k, n], op N), D row-major [m, n]
  kSparseBT,  // A and D as kSparseB, B = Wᵀ in memory (row-major [k, n], op N)
};
const char* sparse_layout_name(SparseLayout l);

// A cuSPARSELt handle, a workspace and padded activation/output buffers for up to max_m tokens,
// max_n outputs, max_k inputs; caches a matmul plan per (n, k, m). Plans use cuSPARSELt's
// default configuration unless `search`: then, per (n, k, M bucket) — buckets are powers of two
// from 16 up — cusparseLtMatmulSearch's pick (configuration id and split-K) and every
// configuration id on its own are timed once (CUDA graphs of back-to-back calls), each output
// checked against the default's, and the fastest right one is kept for every m in the bucket
// (1.37-1.49x dense cuBLAS at M = 2048 on H100, against 0.5x for the default; docs/perf/cuda.md).
// Search needs cuSPARSELt ≥ 0.10 (0.8.0's search failed and one configuration faulted on H100).
class SparseContext {
 public:
  SparseContext(int64_t max_m, int64_t max_n, int64_t max_k, bool search = false,
                SparseLayout layout = SparseLayout::kSparseA);
  ~SparseContext();
  SparseContext(const SparseContext&) = delete;
  SparseContext& operator=(const SparseContext&) = delete;
  SparseLayout layout() const { return layout_; }
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  SparseLayout layout_;
  std::unique_ptr<Impl> impl_;
};

// A 2:4 sparse weight [rows = n, cols = k] compressed for cuSPARSELt (values + metadata, about
// 9/16 of the dense f16 bytes, + 64 KiB of zeroed slack) in its context's layout. n and k must be
// multiples of 16.
class Sparse24Weight {
 public:
  // w: F16 or F32, 2-D [n, k], 2:4 sparse along k (check_2to4; errors name `name`).
  static Sparse24Weight upload(SparseContext& ctx, const Tensor& w, const std::string& name);
  static Sparse24Weight upload_f16(SparseContext& ctx, const uint16_t* w, int64_t rows, int64_t cols,
                                   const std::string& name);
  Sparse24Weight clone() const;

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  SparseLayout layout() const { return layout_; }
  const void* compressed() const { return data_.data(); }
  size_t compressed_bytes() const { return data_.bytes(); }

 private:
  int64_t rows_ = 0, cols_ = 0;
  SparseLayout layout_ = SparseLayout::kSparseA;
  DeviceBuffer<uint8_t> data_;
};

// Builds (and with search on, the first time for its M bucket, searches) the plan for w's shape at m tokens.
// Call before capturing linear_sparse24 in a CUDA graph: the search and plan creation are not
// capturable, the multiplication with a ready plan is.
void sparse24_prepare(SparseContext& ctx, const Sparse24Weight& w, int64_t m, cudaStream_t stream);

// y[m, n] = x[m, k] · Wᵀ, f16 in and out, f32 accumulation. w must have been uploaded through a
// context of the same layout. m not a multiple of 16 goes through
// the context's padded buffers (two extra device copies). Moves ~(9/16)·2·n·k + 2·(m·k + m·n)
// bytes and does 2·m·n·k flops, half of them skipped by the sparse tensor cores: at m = 2048
// the compute floor is half the dense GEMM's.
void linear_sparse24(SparseContext& ctx, const Sparse24Weight& w, const uint16_t* x, uint16_t* y, int64_t m,
                     cudaStream_t stream);

// The cuSPARSELt version (major·1000 + minor·100 + patch) the library reports, 0 without it.
int sparse24_library_version();

// max |a[i] − ref[i]| / max |ref[i]| over n f16 device values (+inf where a value is not finite);
// synchronizes s. SparseContext's search rejects configurations whose output differs from the
// default configuration's by more than 1e-2 of this: under compute-sanitizer, cuSPARSELt 0.10.0's
// configurations 36-51 on H100 returned wrong outputs (docs/perf/cuda.md), and a search must not
// keep a fast wrong kernel.
double f16_relative_max_diff(const uint16_t* a, const uint16_t* ref, size_t n, cudaStream_t s);

// Whether cuSPARSELt makes a plan for `layout` at a small f16 shape on this device (false
// without cuSPARSELt).
bool sparse24_layout_supported(SparseLayout layout);

// One line per searched bucket: cusparseLtMatmulSearch's pick and its time, each configuration
// id's time, and the one kept (empty without search).
std::string sparse24_search_report(SparseContext& ctx);

}  // namespace llmc::kernels::cuda
