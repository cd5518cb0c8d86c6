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

// A cuSPARSELt handle, a workspace and padded activation/output buffers for up to max_m tokens,
// max_n outputs, max_k inputs; caches a matmul plan per (n, k, m). Plans use cuSPARSELt's
// default configuration unless `search`: then every configuration id is timed once per
// (n, k, M bucket) — buckets are powers of two from 16 up — and the bucket's fastest is used for
// every m in it (our loop: cusparseLtMatmulSearch failed with cuSPARSELt 0.8.0 on H100; see
// docs/perf/cuda.md for what each choice measured).
class SparseContext {
 public:
  SparseContext(int64_t max_m, int64_t max_n, int64_t max_k, bool search = false);
  ~SparseContext();
  SparseContext(const SparseContext&) = delete;
  SparseContext& operator=(const SparseContext&) = delete;
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// A 2:4 sparse weight [rows = n, cols = k] compressed for cuSPARSELt (values + metadata, about
// 9/16 of the dense f16 bytes, + 64 KiB of zeroed slack). n and k must be multiples of 16.
class Sparse24Weight {
 public:
  // w: F16 or F32, 2-D [n, k], 2:4 sparse along k (check_2to4; errors name `name`).
  static Sparse24Weight upload(SparseContext& ctx, const Tensor& w, const std::string& name);
  static Sparse24Weight upload_f16(SparseContext& ctx, const uint16_t* w, int64_t rows, int64_t cols,
                                   const std::string& name);
  Sparse24Weight clone() const;

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  const void* compressed() const { return data_.data(); }
  size_t compressed_bytes() const { return data_.bytes(); }

 private:
  int64_t rows_ = 0, cols_ = 0;
  DeviceBuffer<uint8_t> data_;
};

// Builds (and with search on, the first time for its M bucket, searches) the plan for w's shape at m tokens.
// Call before capturing linear_sparse24 in a CUDA graph: the search and plan creation are not
// capturable, the multiplication with a ready plan is.
void sparse24_prepare(SparseContext& ctx, const Sparse24Weight& w, int64_t m, cudaStream_t stream);

// y[m, n] = x[m, k] · Wᵀ, f16 in and out, f32 accumulation. m not a multiple of 16 goes through
// the context's padded buffers (two extra device copies). Moves ~(9/16)·2·n·k + 2·(m·k + m·n)
// bytes and does 2·m·n·k flops, half of them skipped by the sparse tensor cores: at m = 2048
// the compute floor is half the dense GEMM's.
void linear_sparse24(SparseContext& ctx, const Sparse24Weight& w, const uint16_t* x, uint16_t* y, int64_t m,
                     cudaStream_t stream);

// The cuSPARSELt version (major·1000 + minor·100 + patch) the library reports, 0 without it.
int sparse24_library_version();

// One line per searched bucket: "n=.. k=.. m=..: id=time_us ... -> chosen id" (empty without search).
std::string sparse24_search_report(SparseContext& ctx);

}  // namespace llmc::kernels::cuda
