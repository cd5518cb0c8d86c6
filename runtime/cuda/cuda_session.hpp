// CudaSession: runs a decoder Model's graph on the GPU. Weights are uploaded once (dense as f16,
// QuantizedWeight repacked for the tensor-core GEMV), the KV cache lives on the device
// (preallocated to max_context), activations are f16 with the residual stream in f32, prefill
// runs M = prompt tokens (cuBLAS / dequantize + cuBLAS), decode M = sequences (quantized GEMV),
// and a single-token decode step is captured once as a CUDA graph and replayed (the position is
// read from device memory). The same graphs and .llmc files as the CPU Session.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/decoder.hpp"
#include "runtime/ir/model.hpp"

namespace llmc::runtime {

// The operand layout 2:4 sparse f16 linears are compressed in when they run through cuSPARSELt
// (kernels/cuda/sparse_gemm.hpp, kcu::SparseLayout). Auto: with CudaOptions::sparse_gemv on an
// sm_80+ device they do not (gemv_sparse24_f16 at decode, decompress + cuBLAS above); otherwise
// SparseAT (the weight stored transposed: 3-5x faster with cuSPARSELt's default configuration at
// M <= 128, 1.16x at 2048; docs/perf/cuda.md) where cuSPARSELt makes a plan for it on the device,
// else SparseA. An explicit layout (cuSPARSELt for every row count) the library cannot plan is an
// error. cuSPARSELt runs in its default configuration; SparseContext's search (1.2-1.6x dense at
// M = 1-2048) is not wired in: it hung a test_gpu_runtime case on the H200 (docs/perf/cuda.md,
// section "2:4 in the runtime").
enum class CudaSparseLayout : uint8_t { Auto, SparseA, SparseAT, SparseB, SparseBT };
const char* cuda_sparse_layout_name(CudaSparseLayout l);  // "auto", "sparse_a", "sparse_a_t", ...
// Whether this build's cuSPARSELt makes a plan for layout l (not Auto) on the current device.
bool cuda_sparse_layout_supported(CudaSparseLayout l);

struct CudaOptions {
  int64_t max_context = 0;  // KV positions per sequence; 0: config max_position_embeddings, at most 4096 (else 2048)
  int64_t max_batch = 1;    // sequences per call
  int64_t max_tokens = 0;   // tokens per sequence per device pass (longer calls run in chunks); 0: min(max_context, 1024)
  bool cuda_graph = true;   // replay single-token steps from a captured CUDA graph
  bool fuse = true;         // sibling linears as one GEMM, residual add + norm, rotary + cache append
  // Decode (≤ 16 rows): quantized linears through gemv_fused, with the RMSNorm or SwiGLU before
  // them folded into their activation staging and the residual add after them into their output.
  bool fused_gemv = true;
  // 2:4 linears through our sparse tensor-core GEMVs (sm_80+), with the same decode fusions:
  // INT4 ones whose codes keep the pattern (at most two non-zero in every four inputs of a row:
  // --pattern 2:4 pruning, then quantization) stored in 3 bits a weight (gemv_sparse24_w4); f16
  // ones at 9/16 of their bytes (gemv_sparse24_f16) when sparse_layout is Auto, decompressed for
  // cuBLAS above 16 rows. false: INT4 as any W4 weight, f16 through cuSPARSELt.
  bool sparse_gemv = true;
  // 2:4 linears; the session's options() holds the resolved layout (never Auto) when the model
  // has 2:4 linears the build runs through cuSPARSELt, the given one otherwise.
  CudaSparseLayout sparse_layout = CudaSparseLayout::Auto;
  int device = 0;
};

// Device memory the session allocates, by purpose (bytes).
struct CudaMemoryPlan {
  int64_t weights = 0, kv_cache = 0, activations = 0, workspace = 0;
  int64_t total() const { return weights + kv_cache + activations + workspace; }
};

// Throws a runtime Error saying why when no usable CUDA device `device` exists (no device, driver
// too old, bad index), so that callers can fail before loading a model.
void require_cuda_device(int device = 0);

class CudaSession final : public Decoder {
 public:
  // Plans the graph, checks every op and weight format (errors name the node and the format) and
  // the device memory it needs against what is free (error with both numbers), then uploads.
  explicit CudaSession(const Model& model, const CudaOptions& opt = {});
  ~CudaSession() override;
  CudaSession(const CudaSession&) = delete;
  CudaSession& operator=(const CudaSession&) = delete;

  Tensor forward(const std::vector<int64_t>& ids) override;  // logits [T, vocab] f32
  void reset() override;
  int64_t past() const override;

  // B sequences of equal length T, each continuing at past(); returns the output [B, T, vocab].
  // With last_only, only each sequence's last row comes back ([B, 1, vocab]).
  Tensor forward_batch(const std::vector<std::vector<int64_t>>& ids, bool last_only = false);

  // Greedy decoding without host round trips: sequence b is fed first[b], then the argmax of each
  // step, `steps` times (a captured graph holding the step, the argmax and the position update,
  // replayed back to back). Returns the argmax ids [B][steps]; past() advances by steps.
  std::vector<std::vector<int64_t>> decode_greedy(const std::vector<int64_t>& first, int64_t steps);

  const CudaMemoryPlan& memory() const;
  // Bytes of weights one decode step reads (all linears, the norms, one embedding row).
  int64_t decode_weight_bytes() const;
  // KV cache bytes per position per sequence (keys and values of every layer).
  int64_t kv_bytes_per_position() const;
  const CudaOptions& options() const;
  // One line per planned step (kernel choice, fusions), for logs; with 2:4 linears, first a line
  // naming their cuSPARSELt version and operand layout.
  std::string describe() const;

  // Device time of one decode step (one token for each of `batch` sequences at position past(),
  // which does not advance), its kernels launched one by one with events between them (no graph,
  // no launch overlap), summed by kind of step ("linear", "attention", ...): the median of `runs`
  // in microseconds, largest first. For finding where a decode step's time goes.
  std::vector<std::pair<std::string, double>> profile_step(int64_t batch, int runs);

  struct Impl;  // runtime/cuda/cuda_impl.hpp (internal)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace llmc::runtime
