// CudaSession: construction (options, plan, memory check, upload) and execution (host ids in,
// steps or a replayed CUDA graph, logits out; the device-side greedy loop).
#include "runtime/cuda/cuda_session.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "kernels/cuda/sampling.hpp"
#include "runtime/cuda/cuda_impl.hpp"

namespace llmc::runtime {

using namespace cuda_detail;

namespace {

std::string mib(int64_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f MiB", static_cast<double>(b) / 1048576.0);
  return s;
}

kcu::SparseLayout to_kernel_layout(CudaSparseLayout l) {
  switch (l) {
    case CudaSparseLayout::SparseAT: return kcu::SparseLayout::kSparseAT;
    case CudaSparseLayout::SparseB: return kcu::SparseLayout::kSparseB;
    case CudaSparseLayout::SparseBT: return kcu::SparseLayout::kSparseBT;
    default: return kcu::SparseLayout::kSparseA;
  }
}

std::string cslt_version(int v) {
  return "cuSPARSELt version " + std::to_string(v) + " (cusparseLtGetVersion; 0.10.0 reports 1000, 0.8.0 800)";
}

// Fixes opt.sparse_layout (Auto resolved) and I.sp_layout for a plan with 2:4 linears; an error
// for an explicit layout the loaded library cannot plan.
void resolve_sparse(CudaSession::Impl& I) {
  CudaOptions& op = I.opt;
  const int v = kcu::sparse24_library_version();
  if (op.sparse_layout == CudaSparseLayout::Auto) {
    op.sparse_layout = kcu::sparse24_layout_supported(kcu::SparseLayout::kSparseAT) ? CudaSparseLayout::SparseAT
                                                                                    : CudaSparseLayout::SparseA;
  } else if (!cuda_sparse_layout_supported(op.sparse_layout)) {
    throw Error(I.where() + ": cuSPARSELt makes no plan for 2:4 operand layout " +
                    cuda_sparse_layout_name(op.sparse_layout) + " on " + I.device_name + " (" + cslt_version(v) +
                    "); use auto",
                ErrorKind::Usage);
  }
  I.sp_layout = to_kernel_layout(op.sparse_layout);
}

}  // namespace

bool cuda_sparse_layout_supported(CudaSparseLayout l) {
  return l != CudaSparseLayout::Auto && kcu::sparse24_layout_supported(to_kernel_layout(l));
}

const char* cuda_sparse_layout_name(CudaSparseLayout l) {
  return l == CudaSparseLayout::Auto ? "auto" : kcu::sparse_layout_name(to_kernel_layout(l));
}

// cuSPARSELt's plan creation cannot be captured, so every row count gets its plans here, before a
// prefill chunk of it runs or graph_for captures a step of it — never inside a capture. A new
// plan may also grow the context's workspace (SparseContext reallocates it to the largest any
// plan asked for, sparse_gemm_plan.hpp), freeing the buffer that graphs captured earlier hold:
// those graphs are dropped and captured again on their next use.
void CudaSession::Impl::prepare_sparse(int64_t rows) {
  const int64_t m_pad = (rows + 15) / 16 * 16;  // SparseContext plans per padded M (sparse_gemm_search.cpp)
  if (!sp_ctx || sp_prepared.count(m_pad)) return;
  for (auto& l : linears) {
    if (l->kind != LinearKind::Sparse24 || !l->sp) continue;
    try {
      kcu::sparse24_prepare(*sp_ctx, *l->sp, rows, stream);
    } catch (const Error& err) {
      throw Error(where() + ": 2:4 linear '" + l->nodes[0] + "' at " + std::to_string(rows) + " rows: " + err.what(),
                  err.kind());
    }
  }
  sp_prepared.insert(m_pad);
  for (auto& [k, g] : graphs) cudaGraphExecDestroy(g);
  graphs.clear();
}

CudaSession::Impl::~Impl() {
  for (auto& [k, g] : graphs) cudaGraphExecDestroy(g);
  if (pinned) cudaFreeHost(pinned);
  if (stream) cudaStreamDestroy(stream);
}

kcu::Act CudaSession::Impl::act(int v) {
  const Value& x = values[v];
  const Value& r = values[x.root];
  char* base = static_cast<char*>(static_cast<void*>(slots[r.slot].data()));
  return kcu::Act{base + x.col0 * static_cast<int64_t>(vsize(r.type)), r.ld,
                  r.type == VType::F32 ? kcu::ActType::F32 : kcu::ActType::F16};
}

void CudaSession::Impl::run_steps(const Exec& e) {
  for (auto& s : steps) {
    try {
      s.run(e);
    } catch (const Error& err) {
      throw Error(where() + ": " + s.label + ": " + err.what(), err.kind());
    }
  }
}

cudaGraphExec_t CudaSession::Impl::graph_for(int64_t batch, bool greedy) {
  const int64_t key = batch * 2 + (greedy ? 1 : 0);
  auto it = graphs.find(key);
  if (it != graphs.end()) return it->second;
  const Exec e{batch, 1, batch, stream, cached ? d_past() : d_zero()};
  // cuBLASLt (W8A8) picks its algorithms on the first call of a shape, which cannot be captured:
  // run the step once first (2:4 plans are made by prepare_sparse, which the callers ran). It
  // computes exactly what the graph's first replay will (same ids, same position), so nothing
  // observable changes.
  if (w8_max_n) {
    run_steps(e);
    LLMC_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  LLMC_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  try {
    run_steps(e);
    if (greedy) {
      const int64_t V = values[output_value].width;
      kcu::argmax(ptr<float>(output_value), batch, V, V, ptr<int32_t>(input_value), history.data(), opt.max_context,
                  d_past(), stream);
      kcu::advance_position(d_past(), 1, stream);
    }
  } catch (...) {
    cudaGraph_t broken = nullptr;
    cudaStreamEndCapture(stream, &broken);
    if (broken) cudaGraphDestroy(broken);
    throw;
  }
  cudaGraph_t g = nullptr;
  LLMC_CUDA_CHECK(cudaStreamEndCapture(stream, &g));
  cudaGraphExec_t ex = nullptr;
  const cudaError_t err = cudaGraphInstantiate(&ex, g, 0);
  cudaGraphDestroy(g);
  LLMC_CUDA_CHECK(err);
  graphs[key] = ex;
  return ex;
}

void require_cuda_device(int device) {
  int count = 0;
  const cudaError_t ce = cudaGetDeviceCount(&count);
  if (ce != cudaSuccess || count == 0)
    throw Error(std::string("CUDA backend: no usable CUDA device (") +
                    (ce != cudaSuccess ? cudaGetErrorString(ce) : "none found") + ")",
                ErrorKind::Runtime);
  if (device < 0 || device >= count)
    throw Error("CUDA backend: device " + std::to_string(device) + " does not exist (" + std::to_string(count) +
                    " found)",
                ErrorKind::Usage);
}

CudaSession::CudaSession(const Model& model, const CudaOptions& o) : impl_(std::make_unique<Impl>(model, o)) {
  Impl& I = *impl_;
  require_cuda_device(o.device);
  LLMC_CUDA_CHECK(cudaSetDevice(o.device));
  cudaDeviceProp prop{};
  LLMC_CUDA_CHECK(cudaGetDeviceProperties(&prop, o.device));
  I.device_name = prop.name;
  I.sm_count = prop.multiProcessorCount;
  I.compute_major = prop.major;

  CudaOptions& op = I.opt;
  if (op.max_context <= 0) {
    const auto& c = model.config;
    op.max_context = c.is_object() && c.contains("max_position_embeddings") && c["max_position_embeddings"].is_number_integer()
                         ? std::min<int64_t>(c["max_position_embeddings"].get<int64_t>(), 4096)
                         : 2048;
  }
  if (op.max_tokens <= 0) op.max_tokens = std::min<int64_t>(op.max_context, 1024);
  if (op.max_batch < 1 || op.max_context < 1 || op.max_tokens < 1)
    throw Error("CUDA backend: max_batch, max_context and max_tokens must be positive", ErrorKind::Usage);
  I.max_rows = op.max_batch * op.max_tokens;
  I.sparse_own = op.sparse_gemv && I.compute_major >= 8 && op.sparse_layout == CudaSparseLayout::Auto;

  I.plan();
  if (I.sp_max_n) resolve_sparse(I);
  I.assign_slots();
  I.plan_memory();
  size_t free_b = 0, total_b = 0;
  LLMC_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  constexpr int64_t kMargin = 128 << 20;  // CUDA graphs, cuBLAS internals, fragmentation
  const CudaMemoryPlan& m = I.mem;
  if (m.total() + kMargin > static_cast<int64_t>(free_b))
    throw Error(I.where() + ": needs " + mib(m.total() + kMargin) + " of device memory (weights " + mib(m.weights) +
                    ", KV cache " + mib(m.kv_cache) + " for " + std::to_string(op.max_batch) + " x " +
                    std::to_string(op.max_context) + " positions, activations " + mib(m.activations) +
                    ", workspaces " + mib(m.workspace) + ", margin " + mib(kMargin) + ") but only " + mib(free_b) +
                    " are free on " + I.device_name + " (" + mib(total_b) + " total)",
                ErrorKind::Runtime);
  I.upload();
  LLMC_CUDA_CHECK(cudaStreamCreateWithFlags(&I.stream, cudaStreamNonBlocking));
  LLMC_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&I.pinned), static_cast<size_t>(I.max_rows + 2) * 4));
  LLMC_CUDA_CHECK(cudaDeviceSynchronize());
}

CudaSession::~CudaSession() = default;

int64_t CudaSession::past() const { return impl_->past; }
void CudaSession::reset() { impl_->past = 0; }
const CudaMemoryPlan& CudaSession::memory() const { return impl_->mem; }
const CudaOptions& CudaSession::options() const { return impl_->opt; }

int64_t CudaSession::decode_weight_bytes() const {
  const Impl& I = *impl_;
  int64_t b = I.emb_row_bytes;
  for (auto& l : I.linears) {
    switch (l->kind) {
      case LinearKind::Quant: b += static_cast<int64_t>(l->wq ? l->wq->weight_bytes() : l->wsq->weight_bytes()); break;
      case LinearKind::W8A8: b += static_cast<int64_t>(l->w8->weight_bytes()); break;
      case LinearKind::Sparse24:
        b += static_cast<int64_t>(l->sp ? l->sp->compressed_bytes() : l->wsf->weight_bytes());
        break;
      case LinearKind::Dense: b += l->n * l->k * 2; break;
    }
  }
  for (auto& [n, v] : I.vectors) b += static_cast<int64_t>(v.bytes());
  return b;
}

int64_t CudaSession::kv_bytes_per_position() const {
  int64_t b = 0;
  for (auto& a : impl_->attns)
    if (a->cached) b += 2 * a->p.kv_heads * a->p.head_dim * 2;
  return b;
}

std::string CudaSession::describe() const {
  std::ostringstream s;
  const Impl& I = *impl_;
  s << "CUDA session on " << I.device_name << ": " << I.steps.size() << " steps\n";
  if (I.sp_max_n)
    s << "  2:4 sparse linears: " << cslt_version(kcu::sparse24_library_version()) << ", operand layout "
      << kcu::sparse_layout_name(I.sp_layout) << ", cuSPARSELt's default configuration\n";
  for (size_t i = 0; i < impl_->steps.size(); ++i) s << "  " << i << ": " << impl_->steps[i].label << "\n";
  return s.str();
}

Tensor CudaSession::forward(const std::vector<int64_t>& ids) {
  Tensor t = forward_batch({ids});
  return t.reshaped({t.dim(1), t.dim(2)});
}

Tensor CudaSession::forward_batch(const std::vector<std::vector<int64_t>>& ids, bool last_only) {
  Impl& I = *impl_;
  const int64_t B = static_cast<int64_t>(ids.size());
  if (B < 1 || B > I.opt.max_batch)
    throw Error("CUDA backend: " + std::to_string(B) + " sequences, the session takes 1 to " +
                    std::to_string(I.opt.max_batch),
                ErrorKind::Usage);
  const int64_t T = static_cast<int64_t>(ids[0].size());
  if (T < 1) throw Error("CUDA backend: no tokens to run", ErrorKind::Usage);
  for (auto& s : ids) {
    if (static_cast<int64_t>(s.size()) != T)
      throw Error("CUDA backend: the sequences of a batch must have equal lengths", ErrorKind::Usage);
    for (int64_t id : s)
      if (id < 0 || (I.input_vocab > 0 && id >= I.input_vocab))
        throw Error(I.where() + ": token id " + std::to_string(id) + " outside the vocabulary of " +
                    std::to_string(I.input_vocab));
  }
  if (I.cached && I.past + T > I.opt.max_context)
    throw Error(I.where() + ": " + std::to_string(I.past + T) + " positions exceed the CUDA session's max_context of " +
                    std::to_string(I.opt.max_context),
                ErrorKind::Usage);
  const int64_t W = I.values[I.output_value].width;
  Tensor out(DType::F32, {B, last_only ? 1 : T, W});
  for (int64_t c0 = 0; c0 < T; c0 += I.opt.max_tokens) {
    const int64_t tc = std::min(I.opt.max_tokens, T - c0), rows = B * tc;
    I.prepare_sparse(rows);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < tc; ++i) I.pinned[b * tc + i] = static_cast<int32_t>(ids[b][c0 + i]);
    I.pinned[I.max_rows] = static_cast<int32_t>(I.cached ? I.past : 0);
    LLMC_CUDA_CHECK(cudaMemcpyAsync(I.ptr<int32_t>(I.input_value), I.pinned, rows * 4, cudaMemcpyHostToDevice, I.stream));
    LLMC_CUDA_CHECK(cudaMemcpyAsync(I.d_past(), I.pinned + I.max_rows, 4, cudaMemcpyHostToDevice, I.stream));
    if (tc == 1 && I.opt.cuda_graph)
      LLMC_CUDA_CHECK(cudaGraphLaunch(I.graph_for(B, false), I.stream));
    else
      I.run_steps(Exec{B, tc, rows, I.stream, I.cached ? I.d_past() : I.d_zero()});
    const float* src = I.ptr<float>(I.output_value);
    float* dst = out.mutable_data<float>();
    for (int64_t b = 0; b < B; ++b) {
      if (!last_only)
        LLMC_CUDA_CHECK(cudaMemcpyAsync(dst + (b * T + c0) * W, src + b * tc * W, tc * W * 4, cudaMemcpyDeviceToHost,
                                        I.stream));
      else if (c0 + tc == T)
        LLMC_CUDA_CHECK(cudaMemcpyAsync(dst + b * W, src + (b * tc + tc - 1) * W, W * 4, cudaMemcpyDeviceToHost, I.stream));
    }
    LLMC_CUDA_CHECK(cudaStreamSynchronize(I.stream));
    if (I.cached) I.past += tc;
  }
  return out;
}

std::vector<std::vector<int64_t>> CudaSession::decode_greedy(const std::vector<int64_t>& first, int64_t steps) {
  Impl& I = *impl_;
  const int64_t B = static_cast<int64_t>(first.size());
  if (!I.cached) throw Error(I.where() + ": greedy decoding needs a graph with a KV cache", ErrorKind::Usage);
  if (B < 1 || B > I.opt.max_batch || steps < 0)
    throw Error("CUDA backend: decode_greedy takes 1 to " + std::to_string(I.opt.max_batch) + " sequences",
                ErrorKind::Usage);
  if (I.past + steps > I.opt.max_context)
    throw Error(I.where() + ": " + std::to_string(I.past + steps) +
                    " positions exceed the CUDA session's max_context of " + std::to_string(I.opt.max_context),
                ErrorKind::Usage);
  for (int64_t id : first)
    if (id < 0 || (I.input_vocab > 0 && id >= I.input_vocab))
      throw Error(I.where() + ": token id " + std::to_string(id) + " outside the vocabulary");
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(B));
  if (steps == 0) return out;
  I.prepare_sparse(B);
  for (int64_t b = 0; b < B; ++b) I.pinned[b] = static_cast<int32_t>(first[b]);
  I.pinned[I.max_rows] = static_cast<int32_t>(I.past);
  LLMC_CUDA_CHECK(cudaMemcpyAsync(I.ptr<int32_t>(I.input_value), I.pinned, B * 4, cudaMemcpyHostToDevice, I.stream));
  LLMC_CUDA_CHECK(cudaMemcpyAsync(I.d_past(), I.pinned + I.max_rows, 4, cudaMemcpyHostToDevice, I.stream));
  cudaGraphExec_t g = I.graph_for(B, true);
  for (int64_t s = 0; s < steps; ++s) LLMC_CUDA_CHECK(cudaGraphLaunch(g, I.stream));
  LLMC_CUDA_CHECK(cudaStreamSynchronize(I.stream));
  std::vector<int32_t> h(static_cast<size_t>(steps));
  for (int64_t b = 0; b < B; ++b) {
    LLMC_CUDA_CHECK(cudaMemcpy(h.data(), I.history.data() + b * I.opt.max_context + I.past, steps * 4,
                               cudaMemcpyDeviceToHost));
    out[b].assign(h.begin(), h.end());
  }
  I.past += steps;
  return out;
}

std::vector<std::pair<std::string, double>> CudaSession::profile_step(int64_t batch, int runs) {
  Impl& I = *impl_;
  if (batch < 1 || batch > I.opt.max_batch || runs < 1 || (I.cached && I.past + 1 > I.opt.max_context))
    throw Error("CUDA backend: profile_step needs 1 to max_batch sequences, runs ≥ 1 and room for one position",
                ErrorKind::Usage);
  for (int64_t b = 0; b < batch; ++b) I.pinned[b] = static_cast<int32_t>(b % std::max<int64_t>(I.input_vocab, 1));
  I.pinned[I.max_rows] = static_cast<int32_t>(I.cached ? I.past : 0);
  I.prepare_sparse(batch);  // plan creation must not land in the timed run
  const size_t n = I.steps.size();
  std::vector<cudaEvent_t> ev(n + 1);
  for (auto& e : ev) LLMC_CUDA_CHECK(cudaEventCreate(&e));
  std::map<std::string, std::vector<double>> kinds;
  const Exec e{batch, 1, batch, I.stream, I.cached ? I.d_past() : I.d_zero()};
  for (int r = 0; r < runs; ++r) {
    LLMC_CUDA_CHECK(cudaMemcpyAsync(I.ptr<int32_t>(I.input_value), I.pinned, batch * 4, cudaMemcpyHostToDevice, I.stream));
    LLMC_CUDA_CHECK(cudaMemcpyAsync(I.d_past(), I.pinned + I.max_rows, 4, cudaMemcpyHostToDevice, I.stream));
    LLMC_CUDA_CHECK(cudaEventRecord(ev[0], I.stream));
    for (size_t i = 0; i < n; ++i) {
      I.steps[i].run(e);
      LLMC_CUDA_CHECK(cudaEventRecord(ev[i + 1], I.stream));
    }
    LLMC_CUDA_CHECK(cudaStreamSynchronize(I.stream));
    std::map<std::string, double> sum;
    for (size_t i = 0; i < n; ++i) {
      float ms = 0;
      LLMC_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[i], ev[i + 1]));
      const std::string& l = I.steps[i].label;
      sum[l.substr(0, std::min(l.find(" '"), l.find(" (")))] += 1e3 * ms;
    }
    for (auto& [k, v] : sum) kinds[k].push_back(v);
  }
  for (auto& x : ev) cudaEventDestroy(x);
  std::vector<std::pair<std::string, double>> out;
  for (auto& [k, v] : kinds) {
    std::sort(v.begin(), v.end());
    out.emplace_back(k, v[v.size() / 2]);
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.second > b.second; });
  return out;
}

}  // namespace llmc::runtime
