// Internals of CudaSession shared by its source files: the plan (device values, the steps that
// compute them, the linear / attention layers with their device weights) and its execution state.
// Planning (cuda_plan.cpp) reads only the graph; uploading (cuda_weights.cpp) and running
// (cuda_session.cpp) come after the memory check.
#pragma once
#include <cuda_runtime_api.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/attention.hpp"
#include "kernels/cuda/dense_gemm.hpp"
#include "kernels/cuda/int8_gemm.hpp"
#include "kernels/cuda/linear_ex.hpp"
#include "kernels/cuda/prefill.hpp"
#include "kernels/cuda/quant_gemv.hpp"
#include "kernels/cuda/quant_gemv_fused.hpp"
#include "kernels/cuda/rotary.hpp"
#include "kernels/cuda/sparse_gemm.hpp"
#include "kernels/cuda/sparse_gemv.hpp"
#include "kernels/cuda/transformer_ops.hpp"
#include "runtime/cuda/cuda_session.hpp"

namespace llmc::runtime {

namespace kcu = llmc::kernels::cuda;

namespace cuda_detail {

constexpr int64_t kGemvMaxRows = 16;  // gemv_quantized takes 1..16 rows

enum class VType : uint8_t { F16, F32, I32 };
inline size_t vsize(VType t) { return t == VType::F16 ? 2 : 4; }

// An activation on the device: rows = sequences × tokens of the current pass, `width` columns.
// Views (fused linear outputs, rotary in place) share their root's storage at column col0.
struct Value {
  std::string name;
  VType type = VType::F16;
  int64_t width = 0;
  int root = -1;
  int64_t col0 = 0;
  int64_t ld = 0;           // roots: row stride in elements
  int def = -1, last = -1;  // roots: first step writing, last step touching any view
  bool persistent = false;  // graph input and outputs keep their storage
  int slot = -1;
};

struct Exec {
  int64_t batch = 1, tokens = 1, rows = 1;
  cudaStream_t stream = nullptr;
  const int32_t* past = nullptr;  // device: positions already cached
};

struct Step {
  std::string label;  // node label(s) and the kernel chosen, for errors and describe()
  std::vector<int> reads, writes;
  std::function<void(const Exec&)> run;
};

// One GEMM over one or more sibling linears that share their input, weights stacked by rows.
enum class LinearKind : uint8_t {
  Dense,     // f16 cuBLAS
  Quant,     // W4/W8 A16: tensor-core GEMV for ≤ 16 rows, dequantize + cuBLAS above (2:4 INT4: sparse_q)
  W8A8,      // INT8 per-channel weight, int8 activations (int8_gemm.hpp)
  Sparse24,  // dense weight with the 2:4 pattern: gemv_sparse24_f16 (wsf) or cuSPARSELt (sp, sparse_gemm.hpp)
};
struct LinearPlan;

// The step before a quantized linear, folded at decode into the GEMV's activation staging
// (gemv_fused): an RMSNorm (its input: the residual stream the Add before it forms, or the norm's
// own input) or a SwiGLU over a stacked gate|up output. The folded step skips its work for the
// row counts where `consumer` runs fused (Impl::fused_decode), and runs as planned otherwise.
struct PrologueFusion {
  bool norm = true;      // RMSNorm, else SwiGLU
  int in = -1;           // value staged from: norm input (f16/f32), or the gate view (f16)
  int64_t up_col = 0;    // SwiGLU: up's column offset from gate's
  std::string weight;    // RMSNorm weight (a vector)
  float eps = 0;
  LinearPlan* consumer = nullptr;
};

struct LinearPlan {
  std::vector<std::string> nodes, weights, biases;  // per sibling; bias "" where none
  std::vector<int64_t> widths;
  LinearKind kind = LinearKind::Dense;
  bool quantized = false;   // weights come from Graph::quantized (Quant, W8A8)
  float act_scale = 0;      // W8A8: 0 per token (act=dynamic), else the static per-tensor scale
  int64_t n = 0, k = 0;
  int64_t device_bytes = 0;  // planned: what the weight occupies on the device
  kcu::DeviceBuffer<uint16_t> w16;  // dense, when stacked (a single dense weight uses Impl::tables)
  bool sparse_q = false;  // Quant with 2:4 INT4 codes: wsq (gemv_sparse24_w4) instead of wq
  std::unique_ptr<kcu::GpuQuantWeight> wq;
  std::unique_ptr<kcu::GpuSparse24QWeight> wsq;
  std::unique_ptr<kcu::Int8Weight> w8;
  std::unique_ptr<kcu::Sparse24Weight> sp;
  std::unique_ptr<kcu::GpuSparse24F16Weight> wsf;
  // Runs at decode as one GEMV launch that can take the norm / SwiGLU before it and the residual
  // add after it (Quant, and Sparse24 through gemv_sparse24_f16).
  bool gemv_fusable = false;
  kcu::DeviceBuffer<float> bias;
  // Decode fusions (gemv_fusable, one GEMV launch): the prologue, and the residual Add after a
  // single linear: the GEMV writes epi_out = epi_res + W·x (the Add's output) instead of its own.
  PrologueFusion* pro = nullptr;
  int epi_res = -1, epi_out = -1;
  bool has_bias() const {
    for (auto& b : biases)
      if (!b.empty()) return true;
    return false;
  }
};

struct AttnPlan {
  std::string node;
  kcu::AttentionParams p;
  bool cached = true;
  bool rope = false;  // rotary of q and k fused into the cache append
  double theta = 10000.0;
  int64_t rot_dim = 0;
  bool neox = true;
  int64_t capacity = 0;
  kcu::DeviceBuffer<float> inv_freq;
  kcu::DeviceBuffer<uint16_t> k, v;
};

struct RopePlan {
  double theta = 10000.0;
  int64_t rot_dim = 0;
  bool neox = true;
  kcu::DeviceBuffer<float> inv_freq;
};

}  // namespace cuda_detail

struct CudaSession::Impl {
  using Value = cuda_detail::Value;
  using VType = cuda_detail::VType;

  const Model& model;
  CudaOptions opt;
  int sm_count = 1;
  int compute_major = 0;
  int64_t max_rows = 0;  // max_batch × max_tokens
  bool cached = false;   // the graph keeps a KV cache (positions advance)
  int64_t past = 0;
  std::string device_name;

  // plan
  std::vector<Value> values;
  std::unordered_map<std::string, int> value_of;  // graph value name -> current value id
  std::map<int, int> converted;                    // value -> its f16 contiguous copy
  std::vector<cuda_detail::Step> steps;
  std::vector<std::unique_ptr<cuda_detail::LinearPlan>> linears;
  std::vector<std::unique_ptr<cuda_detail::AttnPlan>> attns;
  std::vector<std::unique_ptr<cuda_detail::RopePlan>> ropes;
  std::vector<std::unique_ptr<cuda_detail::PrologueFusion>> fusions;
  std::set<std::string> table_names, vector_names;  // weights uploaded as f16 matrices / f32 vectors
  std::set<std::string> qtable_names;               // EmbeddingQ tables, dequantized to f16 at upload
  int input_value = -1, output_value = -1;
  int64_t input_vocab = 0;  // ids fed to an Embedding must lie below this
  int64_t max_quant_rows = 0;
  int64_t max_dequant_nk = 0;  // largest N·K a prefill path dequantizes / decompresses into the scratch
  int64_t max_heads = 0, max_head_dim = 0, attn_ws_rows = 0;
  int64_t emb_row_bytes = 0;  // f16 bytes of the embedding rows one token reads
  bool any_quantized = false;
  bool sparse_scratch = false;  // a 2:4 linear takes the dequantize + cuBLAS path at ≤ 16 rows
  // The f16 scratch of the dequantize / decompress + cuBLAS paths (max_dequant_nk halves): for
  // more rows than the GEMVs take, or a 2:4 linear that needs it at ≤ 16.
  bool needs_prefill_scratch() const {
    return max_dequant_nk > 0 && (max_rows > cuda_detail::kGemvMaxRows || sparse_scratch);
  }
  // 2:4 f16 linears through gemv_sparse24_f16 at decode and decompress + cuBLAS above, not
  // cuSPARSELt (opt.sparse_gemv on, sparse_layout auto, sm_80+)
  bool sparse_own = false;
  std::vector<int64_t> slot_bytes;
  CudaMemoryPlan mem;

  // device state
  std::map<std::string, kcu::DeviceBuffer<uint16_t>> tables;
  std::map<std::string, kcu::DeviceBuffer<float>> vectors;
  std::vector<kcu::DeviceBuffer<uint8_t>> slots;
  std::unique_ptr<kcu::CublasHandle> cublas;
  std::unique_ptr<kcu::GemvWorkspace> gemv_ws;
  std::unique_ptr<kcu::AttentionWorkspace> attn_ws;
  std::unique_ptr<kcu::W8A8Context> w8_ctx;
  std::unique_ptr<kcu::SparseContext> sp_ctx;
  int64_t w8_max_n = 0, w8_max_k = 0, sp_max_n = 0, sp_max_k = 0;
  kcu::SparseLayout sp_layout = kcu::SparseLayout::kSparseA;  // resolved from opt.sparse_layout
  std::set<int64_t> sp_prepared;  // padded row counts (multiples of 16) whose 2:4 plans exist
  kcu::DeviceBuffer<uint16_t> prefill_scratch;
  kcu::DeviceBuffer<int32_t> state;    // [0] past, [1] constant 0 (uncached attention)
  kcu::DeviceBuffer<int32_t> history;  // greedy decode record [max_batch][max_context]
  int32_t* pinned = nullptr;           // host staging: ids (max_rows) then past
  cudaStream_t stream = nullptr;
  std::map<int64_t, cudaGraphExec_t> graphs;  // key: batch·2 + greedy

  Impl(const Model& m, const CudaOptions& o) : model(m), opt(o) {}
  ~Impl();

  // cuda_plan.cpp
  void plan();
  void assign_slots();
  void plan_memory();
  // cuda_weights.cpp
  void upload();
  // cuda_session.cpp
  void run_steps(const cuda_detail::Exec& e);
  cudaGraphExec_t graph_for(int64_t batch, bool greedy);
  // Builds every 2:4 linear's plan for `rows`
  // before the rows run or are captured; see cuda_session.cpp.
  void prepare_sparse(int64_t rows);

  // helpers
  kcu::Act act(int v);
  template <class T>
  T* ptr(int v) {
    return static_cast<T*>(act(v).ptr);
  }
  // Whether linear L runs as one fused GEMV launch (gemv_fused, gemv_sparse24_w4/_f16, with its
  // fusions) for `rows` rows. Every step around a fusion asks this with the same arguments, so
  // they agree on who does the work.
  bool fused_decode(const cuda_detail::LinearPlan& L, int64_t rows) const {
    if (!opt.fuse || !opt.fused_gemv || !L.gemv_fusable) return false;
    if (L.wq) return kcu::gemv_fused_fits(L.wq->layout(), rows);
    if (L.wsq) return kcu::gemv_sparse24_fits(L.wsq->layout(), rows);
    return L.wsf && kcu::gemv_sparse24_fits(L.wsf->layout(), rows);
  }
  int32_t* d_past() { return state.data(); }
  const int32_t* d_zero() { return state.data() + 1; }
  std::string where() const { return model.source.empty() ? std::string("model") : model.source; }
};

}  // namespace llmc::runtime
