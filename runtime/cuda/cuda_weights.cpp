// CudaSession upload: dense weights to f16 (converted on the host in parallel), sibling linears
// stacked by rows, quantized weights stacked then repacked (GpuQuantWeight::upload, or the 2:4
// INT4 layout), 2:4 f16 weights packed for gemv_sparse24_f16 or compressed by cuSPARSELt, norm
// vectors in f32, and the KV caches, activation slots and workspaces the plan sized.
#include <cstring>

#include "runtime/cuda/cuda_impl.hpp"

namespace llmc::runtime {

using namespace cuda_detail;

namespace {

// A float tensor's values as f16 bits into dst (numel entries).
void to_f16(const Tensor& t, uint16_t* dst) {
  const int64_t n = t.numel();
  if (t.dtype() == DType::F16) {
    std::memcpy(dst, t.raw(), static_cast<size_t>(n) * 2);
    return;
  }
  const Tensor f = t.to_f32();
  const float* src = f.data<float>();
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

std::vector<float> to_f32_vec(const Tensor& t) {
  const Tensor f = t.to_f32();
  return std::vector<float>(f.data<float>(), f.data<float>() + f.numel());
}

// Rows of several quantized weights of one format, one under the other.
QuantizedWeight stack_rows(const std::vector<const QuantizedWeight*>& ws) {
  const QuantizedWeight& f = *ws[0];
  QuantizedWeight out;
  out.bits = f.bits;
  out.cols = f.cols;
  out.group_size = f.group_size;
  out.symmetric = f.symmetric;
  out.g_idx = f.g_idx;  // the same in every part (Planner::compatible)
  for (auto* w : ws) out.rows += w->rows;
  const int64_t ng = f.n_groups();
  auto packed_len = [&](int64_t n) { return static_cast<size_t>(f.bits == 4 ? (n + 1) / 2 : n); };
  // Byte concatenation is exact when every weight's rows end on a byte boundary.
  const bool byte_rows = f.bits == 8 || f.cols % 2 == 0, byte_zeros = f.bits == 8 || ng % 2 == 0;
  out.packed.assign(packed_len(out.rows * out.cols), 0);
  if (!f.symmetric) out.zeros.assign(packed_len(out.rows * ng), 0);
  int64_t r0 = 0;
  size_t pb = 0, zb = 0;
  for (auto* w : ws) {
    if (byte_rows) {
      std::memcpy(out.packed.data() + pb, w->packed.data(), packed_len(w->rows * w->cols));
      pb += packed_len(w->rows * w->cols);
    } else {
      for (int64_t r = 0; r < w->rows; ++r)
        for (int64_t c = 0; c < w->cols; ++c) out.set_q(r0 + r, c, w->q(r, c));
    }
    out.scales.insert(out.scales.end(), w->scales.begin(), w->scales.end());
    if (!f.symmetric) {
      if (byte_zeros) {
        std::memcpy(out.zeros.data() + zb, w->zeros.data(), packed_len(w->rows * ng));
        zb += packed_len(w->rows * ng);
      } else {
        for (int64_t r = 0; r < w->rows; ++r)
          for (int64_t g = 0; g < ng; ++g) out.set_zero(r0 + r, g, w->zero(r, g));
      }
    }
    r0 += w->rows;
  }
  return out;
}

}  // namespace

void CudaSession::Impl::upload() {
  const Graph& g = model.graph;
  for (auto& name : table_names) {
    const Tensor& t = g.weights.at(name);
    std::vector<uint16_t> h(static_cast<size_t>(t.numel()));
    to_f16(t, h.data());
    tables.emplace(name, kcu::DeviceBuffer<uint16_t>(h));
  }
  for (auto& name : vector_names) vectors.emplace(name, kcu::DeviceBuffer<float>(to_f32_vec(g.weights.at(name))));
  for (auto& name : qtable_names) {
    const Tensor t = dequantize(g.quantized.at(name), name);
    std::vector<uint16_t> h(static_cast<size_t>(t.numel()));
    to_f16(t, h.data());
    tables.emplace("#dequantized:" + name, kcu::DeviceBuffer<uint16_t>(h));
  }
  // the layout as resolved from CudaOptions (resolve_sparse, cuda_session.cpp); the weights
  // below are compressed for the context's layout
  if (sp_max_n) sp_ctx = std::make_unique<kcu::SparseContext>(max_rows, sp_max_n, sp_max_k, false, sp_layout);
  if (w8_max_n) w8_ctx = std::make_unique<kcu::W8A8Context>(max_rows, w8_max_n, w8_max_k);
  for (auto& lp : linears) {
    const int64_t N = lp->n, K = lp->k;
    std::string joined;
    for (auto& w : lp->weights) joined += (joined.empty() ? "" : "+") + w;
    if (lp->quantized) {
      std::vector<const QuantizedWeight*> parts;
      for (auto& w : lp->weights) parts.push_back(&g.quantized.at(w));
      const QuantizedWeight stacked = parts.size() == 1 ? QuantizedWeight{} : stack_rows(parts);
      const QuantizedWeight& q = parts.size() == 1 ? *parts[0] : stacked;
      if (lp->kind == LinearKind::W8A8)
        lp->w8 = std::make_unique<kcu::Int8Weight>(kcu::Int8Weight::upload(q, joined));
      else if (lp->sparse_q)
        lp->wsq = std::make_unique<kcu::GpuSparse24QWeight>(kcu::GpuSparse24QWeight::upload(q, joined));
      else
        lp->wq = std::make_unique<kcu::GpuQuantWeight>(kcu::GpuQuantWeight::upload(q, joined));
    } else if (lp->kind == LinearKind::Sparse24 && lp->weights.size() == 1 && !sparse_own) {
      lp->sp = std::make_unique<kcu::Sparse24Weight>(
          kcu::Sparse24Weight::upload(*sp_ctx, g.weights.at(lp->weights[0]), joined));
    } else if (lp->weights.size() > 1 || lp->kind == LinearKind::Sparse24) {
      std::vector<uint16_t> h(static_cast<size_t>(N * K));
      int64_t r0 = 0;
      for (size_t i = 0; i < lp->weights.size(); ++i) {
        to_f16(g.weights.at(lp->weights[i]), h.data() + r0 * K);
        r0 += lp->widths[i];
      }
      if (lp->kind == LinearKind::Sparse24 && sparse_own)
        lp->wsf = std::make_unique<kcu::GpuSparse24F16Weight>(kcu::GpuSparse24F16Weight::upload(h.data(), N, K, joined));
      else if (lp->kind == LinearKind::Sparse24)
        lp->sp = std::make_unique<kcu::Sparse24Weight>(kcu::Sparse24Weight::upload_f16(*sp_ctx, h.data(), N, K, joined));
      else
        lp->w16 = kcu::DeviceBuffer<uint16_t>(h);
    }
    if (lp->has_bias()) {
      std::vector<float> b(static_cast<size_t>(N), 0.0f);
      int64_t r0 = 0;
      for (size_t i = 0; i < lp->biases.size(); ++i) {
        if (!lp->biases[i].empty()) {
          const auto v = to_f32_vec(g.weights.at(lp->biases[i]));
          std::copy(v.begin(), v.end(), b.begin() + r0);
        }
        r0 += lp->widths[i];
      }
      lp->bias = kcu::DeviceBuffer<float>(b);
    }
  }
  for (auto& a : attns) {
    const size_t n = static_cast<size_t>(opt.max_batch * a->capacity * a->p.kv_heads * a->p.head_dim);
    a->k = kcu::DeviceBuffer<uint16_t>(n);
    a->v = kcu::DeviceBuffer<uint16_t>(n);
    if (a->rope) a->inv_freq = kcu::DeviceBuffer<float>(kcu::rope_inv_freq(a->theta, a->rot_dim));
  }
  for (auto& r : ropes) r->inv_freq = kcu::DeviceBuffer<float>(kcu::rope_inv_freq(r->theta, r->rot_dim));
  for (int64_t b : slot_bytes) slots.emplace_back(static_cast<size_t>(b));
  cublas = std::make_unique<kcu::CublasHandle>();
  if (any_quantized) gemv_ws = std::make_unique<kcu::GemvWorkspace>(max_quant_rows, 16);
  if (needs_prefill_scratch())
    prefill_scratch = kcu::DeviceBuffer<uint16_t>(static_cast<size_t>(max_dequant_nk));
  if (!attns.empty())
    attn_ws = std::make_unique<kcu::AttentionWorkspace>(attn_ws_rows, max_heads, max_head_dim, 32);
  state = kcu::DeviceBuffer<int32_t>(std::vector<int32_t>{0, 0});
  history = kcu::DeviceBuffer<int32_t>(static_cast<size_t>(opt.max_batch * opt.max_context));
}

}  // namespace llmc::runtime
