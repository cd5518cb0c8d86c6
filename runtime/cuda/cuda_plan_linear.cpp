// CudaSession planning of linears: the kernel each takes (cuBLAS f16, quantized GEMV, W8A8, 2:4
// sparse), sibling linears over one input stacked into one GEMM, and the decode fusions around
// the quantized GEMV (the norm or SwiGLU before it, the residual add after it: gemv_fused).
#include <algorithm>

#include "runtime/cuda/cuda_planner.hpp"

namespace llmc::runtime::cuda_detail {

namespace {

// Device bytes of a quantized weight of this geometry after repack_for_gpu (quant_gemv.hpp).
int64_t repacked_bytes(int bits, bool sym, int64_t rows, int64_t cols, int64_t n_groups, bool act_order) {
  const int64_t tiles = (rows + 15) / 16, ck = bits == 4 ? 64 : 32, chunks = (cols + ck - 1) / ck;
  return tiles * chunks * 512 + n_groups * tiles * 16 * (sym ? 2 : 3) + (act_order ? cols * 8 : 0);
}

// A quantized linear as one gemv_fused launch: its prologue (RMSNorm / SwiGLU staged from their
// inputs), its bias, and the residual Add after it (writing the Add's output) when planned.
void fused_linear(CudaSession::Impl& I, const LinearPlan& L, const kcu::Act& x, const kcu::Act& y, const Exec& e) {
  kcu::GemvPrologue pro;
  pro.in = x;
  if (L.pro) {
    pro.in = I.act(L.pro->in);
    if (L.pro->norm) {
      pro.kind = kcu::GemvPrologue::Kind::RmsNorm;
      pro.norm_weight = I.vectors.at(L.pro->weight).data();
      pro.eps = L.pro->eps;
    } else {
      pro.kind = kcu::GemvPrologue::Kind::SwiGLU;
      pro.up_col = L.pro->up_col;
    }
  }
  kcu::GemvEpilogue epi;
  epi.y = y;
  epi.bias = L.bias.size() ? L.bias.data() : nullptr;
  if (L.epi_out >= 0) {
    epi.y = I.act(L.epi_out);
    epi.residual = I.act(L.epi_res);
  }
  if (L.wsq)
    kcu::gemv_sparse24_w4(*L.wsq, pro, epi, e.rows, e.stream);
  else if (L.wsf)
    kcu::gemv_sparse24_f16(*L.wsf, pro, epi, e.rows, e.stream);
  else
    kcu::gemv_fused(*L.wq, pro, epi, e.rows, e.stream);
}

}  // namespace

const QuantizedWeight& Planner::quantized(const Node& n) {
  const std::string w = n.s("weight", "");
  auto it = g.quantized.find(w);
  if (it == g.quantized.end()) fail(n, "quantized weight '" + w + "' is missing");
  const QuantizedWeight& q = it->second;
  const std::string act = n.s("act", "none");
  const std::string fmt = "W" + std::to_string(q.bits) + (act == "none" ? "A16" : "A8") +
                          (q.group_size ? " g" + std::to_string(q.group_size) : " per-channel") +
                          (q.symmetric ? " sym" : " asym");
  if (act != "none" && act != "dynamic" && act != "static") fail(n, "unknown act mode '" + act + "'");
  if (q.bits != 4 && q.bits != 8) fail(n, "quantized weight '" + w + "' has " + std::to_string(q.bits) + " bits");
  const int64_t gl = q.group_len();
  if (act != "none") {
    if (q.bits != 8 || !q.symmetric || q.n_groups() != 1 || !q.g_idx.empty())
      fail(n, "format " + fmt + (q.g_idx.empty() ? "" : " act-order") + " act=" + act +
                  ": int8 activations need an INT8 symmetric per-channel weight without g_idx");
    if (act == "static" && !(n.f("act_scale", 0) > 0)) fail(n, "static activation quantization needs act_scale > 0");
    return q;
  }
  if (gl <= 0) fail(n, "quantized weight '" + w + "' has group size " + std::to_string(gl));
  if (!q.g_idx.empty()) {  // act-order: the groups must sort into the contiguous ones the kernels read
    try {
      (void)act_order_columns(q, "quantized weight '" + w + "' (" + fmt + "): ");
    } catch (const Error& e) {
      fail(n, e.what());
    }
  }
  if (q.n_groups() != 1 && gl % 32 != 0)
    fail(n, "quantized weight '" + w + "' (" + fmt + "): group size " + std::to_string(gl) +
                " is not a multiple of 32, which the GPU kernels need");
  return q;
}

bool Planner::sparse_24(const std::string& name) {
  auto it = sparse_cache.find(name);
  if (it != sparse_cache.end()) return it->second;
  bool ok = false;
  auto w = g.weights.find(name);
  if ((I.sparse_own || kcu::sparse24_available()) && w != g.weights.end() && w->second.rank() == 2 && w->second.dim(0) % 16 == 0 &&
      w->second.dim(1) % 16 == 0 && (w->second.dtype() == DType::F32 || w->second.dtype() == DType::F16)) {
    try {
      if (w->second.dtype() == DType::F32)
        kcu::check_2to4(w->second.data<float>(), w->second.dim(0), w->second.dim(1), name);
      else
        kcu::check_2to4_f16(w->second.data<uint16_t>(), w->second.dim(0), w->second.dim(1), name);
      ok = true;
    } catch (const Error&) {
      ok = false;  // not 2:4: the dense path
    }
  }
  return sparse_cache[name] = ok;
}

bool Planner::sparse_q(const Node& n) {
  if (!I.opt.sparse_gemv || I.compute_major < 8 || n.op != "LinearQ" || n.s("act", "none") != "none") return false;
  const std::string w = n.s("weight", "");
  auto c = sparse_q_cache.find(w);
  if (c != sparse_q_cache.end()) return c->second;
  auto it = g.quantized.find(w);
  return sparse_q_cache[w] = it != g.quantized.end() && kcu::is_sparse24_w4(it->second);
}

LinearKind Planner::kind_of(const Node& m) {
  if (m.op == "LinearQ") return m.s("act", "none") == "none" ? LinearKind::Quant : LinearKind::W8A8;
  return m.inputs.size() > 1 && sparse_24(m.inputs[1]) ? LinearKind::Sparse24 : LinearKind::Dense;
}

bool Planner::compatible(const Node& a, const Node& b) {
  if (kind_of(a) != kind_of(b)) return false;
  if (a.op == "Linear") {
    if (a.inputs.size() < 2 || b.inputs.size() < 2) return false;
    auto wa = g.weights.find(a.inputs[1]), wb = g.weights.find(b.inputs[1]);
    return wa != g.weights.end() && wb != g.weights.end() && wa->second.rank() == 2 && wb->second.rank() == 2 &&
           wa->second.dim(1) == wb->second.dim(1) && a.inputs[1] != b.inputs[1];
  }
  auto qa = g.quantized.find(a.s("weight", "")), qb = g.quantized.find(b.s("weight", ""));
  if (qa == g.quantized.end() || qb == g.quantized.end() || qa == qb) return false;
  const QuantizedWeight &x = qa->second, &y = qb->second;
  return x.bits == y.bits && x.symmetric == y.symmetric && x.group_len() == y.group_len() && x.cols == y.cols &&
         x.g_idx == y.g_idx && a.s("act", "none") == b.s("act", "none") &&
         a.f("act_scale", 0) == b.f("act_scale", 0) && sparse_q(a) == sparse_q(b);
}

void Planner::linear(size_t k) {
  const Node& n = g.nodes[k];
  const bool quant = n.op == "LinearQ";
  std::vector<size_t> sib{k};
  if (I.opt.fuse && !n.outputs.empty() && !is_output(n.outputs[0]))
    for (size_t j = k + 1; j < g.nodes.size(); ++j) {
      const Node& m = g.nodes[j];
      if (done[j] || m.domain != "llmc" || m.op != n.op || m.inputs.empty() || m.inputs[0] != n.inputs[0] ||
          m.outputs.empty() || is_output(m.outputs[0]))
        continue;
      if (compatible(n, m)) sib.push_back(j);
    }
  const int x = val(n, 0);
  const int64_t K = width(x);
  auto lp = std::make_unique<LinearPlan>();
  lp->quantized = quant;
  lp->kind = kind_of(n);
  lp->act_scale = static_cast<float>(n.s("act", "none") == "static" ? n.f("act_scale", 0) : 0.0);
  lp->k = K;
  const QuantizedWeight* q0 = nullptr;
  for (size_t j : sib) {
    const Node& m = g.nodes[j];
    int64_t rows;
    std::string bias;
    if (!quant) {
      const Tensor& w = weight(m, 1);
      if (w.rank() != 2 || w.dim(1) != K)
        fail(m, "weight '" + m.inputs[1] + "' has shape " + shape_str(w.shape()) + ", the input has " +
                    std::to_string(K) + " features");
      rows = w.dim(0);
      lp->weights.push_back(m.inputs[1]);
      if (m.inputs.size() > 2 && !m.inputs[2].empty()) bias = m.inputs[2];
    } else {
      const QuantizedWeight& w = quantized(m);
      if (w.cols != K)
        fail(m, "quantized weight expects " + std::to_string(w.cols) + " features, the input has " + std::to_string(K));
      if (!q0) q0 = &w;
      rows = w.rows;
      lp->weights.push_back(m.s("weight", ""));
      if (m.inputs.size() > 1 && !m.inputs[1].empty()) bias = m.inputs[1];
    }
    if (!bias.empty()) {
      const Tensor& b = weight(m, quant ? 1 : 2);
      if (b.numel() != rows) fail(m, "bias '" + bias + "' has " + std::to_string(b.numel()) + " values, expected " + std::to_string(rows));
    }
    lp->nodes.push_back(m.name);
    lp->widths.push_back(rows);
    lp->biases.push_back(bias);
    lp->n += rows;
    done[j] = true;
  }
  const int64_t N = lp->n;
  const LinearKind kind = lp->kind;
  if (kind == LinearKind::Quant) {
    lp->sparse_q = sparse_q(n);  // the siblings agree (compatible)
    if (lp->sparse_q) {
      lp->device_bytes = kcu::sparse24_w4_bytes(N, K, q0->n_groups(), q0->symmetric);
      // rows ≤ 16 that gemv_sparse24_w4 cannot stage go through the dequantize + cuBLAS path
      if (!kcu::gemv_sparse24_fits(kcu::sparse24_layout(N, K), std::min(I.max_rows, kGemvMaxRows)))
        I.sparse_scratch = true;
    } else {
      lp->device_bytes = repacked_bytes(q0->bits, q0->symmetric, N, K, q0->n_groups(), !q0->g_idx.empty());
    }
    I.any_quantized = true;
    I.max_quant_rows = std::max(I.max_quant_rows, (N + 15) / 16 * 16);
    // with act-order the prefill also permutes its input into the scratch
    I.max_dequant_nk = std::max(I.max_dequant_nk, kcu::quantized_prefill_scratch(N, K, !q0->g_idx.empty(), I.max_rows));
  } else if (kind == LinearKind::W8A8) {
    lp->device_bytes = N * ((K + 15) / 16 * 16) + N * 4;
    I.w8_max_n = std::max(I.w8_max_n, N);
    I.w8_max_k = std::max(I.w8_max_k, (K + 15) / 16 * 16);
  } else if (kind == LinearKind::Sparse24 && I.sparse_own) {
    lp->device_bytes = kcu::sparse24_f16_bytes(N, K);  // kept values + metadata: 9/16 of dense f16
    I.max_dequant_nk = std::max(I.max_dequant_nk, N * K);  // the decompress + cuBLAS path's scratch
    if (!kcu::gemv_sparse24_fits(kcu::sparse24_layout(N, K), std::min(I.max_rows, kGemvMaxRows)))
      I.sparse_scratch = true;
  } else if (kind == LinearKind::Sparse24) {
    lp->device_bytes = N * K * 9 / 8 + (64 << 10);  // values + metadata, ~9/16 of dense f16
    I.sp_max_n = std::max(I.sp_max_n, N);
    I.sp_max_k = std::max(I.sp_max_k, K);
  } else if (sib.size() == 1) {
    I.table_names.insert(lp->weights[0]);  // shared with an Embedding of the same table (tied head)
  } else {
    lp->device_bytes = N * K * 2;
  }
  if (lp->has_bias()) lp->device_bytes += N * 4;
  lp->gemv_fusable = kind == LinearKind::Quant || (kind == LinearKind::Sparse24 && I.sparse_own);
  const int xin = as_f16(x, true);
  std::vector<int> reads{xin};
  auto pf = pending_pro.find(x);
  if (lp->gemv_fusable && pf != pending_pro.end() && !pf->second->consumer) {
    bool only_these = true;  // the folded step's output feeds these siblings alone
    for (size_t c : consumers.at(n.inputs[0])) only_these &= std::find(sib.begin(), sib.end(), c) != sib.end();
    if (only_these) {
      lp->pro = pf->second;
      pf->second->consumer = lp.get();
      reads.push_back(pf->second->in);
    }
  }
  const bool f32_out = sib.size() == 1 && is_output(n.outputs[0]) && kind == LinearKind::Dense;
  int out;
  if (sib.size() == 1) {
    out = new_value(n.outputs[0], f32_out ? VType::F32 : VType::F16, N, f32_out);
    define(n.outputs[0], out);
  } else {
    out = new_value(n.name + "#stacked", VType::F16, N);
    int64_t off = 0;
    for (size_t i = 0; i < sib.size(); ++i) {
      define(g.nodes[sib[i]].outputs[0], view(g.nodes[sib[i]].outputs[0], out, off, lp->widths[i]));
      off += lp->widths[i];
    }
  }
  std::string label = "linear";
  for (auto& nm : lp->nodes) label += " '" + nm + "'";
  if (kind == LinearKind::Quant && lp->sparse_q)
    label += " (W4 g" + std::to_string(q0->group_len()) + (q0->symmetric ? " sym" : " asym") +
             " 2:4: sparse tensor-core GEMV for <= 16 rows, dequantize + cuBLAS above)";
  else if (kind == LinearKind::Quant)
    label += " (W" + std::to_string(q0->bits) + " g" + std::to_string(q0->group_len()) +
             (q0->symmetric ? " sym" : " asym") + (q0->g_idx.empty() ? "" : " act-order, input permuted") +
             ": tensor-core GEMV for <= 16 rows, dequantize + cuBLAS above)";
  else if (kind == LinearKind::W8A8)
    label += std::string(" (W8A8, int8 activations ") + (lp->act_scale > 0 ? "static" : "per token") + ")";
  else if (kind == LinearKind::Sparse24 && I.sparse_own)
    label += " (2:4 sparse f16: sparse tensor-core GEMV for <= 16 rows, decompress + cuBLAS above)";
  else if (kind == LinearKind::Sparse24)
    label += " (2:4 sparse f16, cuSPARSELt)";
  else
    label += " (cuBLAS f16)";
  if (lp->pro) label += lp->pro->norm ? " [decode: RMSNorm folded in]" : " [decode: SwiGLU folded in]";
  auto* ip = &I;
  auto* L = lp.get();
  I.linears.push_back(std::move(lp));
  if (L->gemv_fusable && sib.size() == 1) quant_out[out] = {L, I.steps.size()};
  step(label, reads, {out}, [ip, L, xin, out](const Exec& e) {
    const kcu::Act xa = ip->act(xin), ya = ip->act(out);
    const auto* xp = static_cast<const uint16_t*>(xa.ptr);
    auto* yp = static_cast<uint16_t*>(ya.ptr);
    switch (L->kind) {
      case LinearKind::Quant:
        if (ip->fused_decode(*L, e.rows)) {
          fused_linear(*ip, *L, xa, ya, e);
          return;  // bias applied in the epilogue
        }
        if (L->wsq) {
          if (e.rows <= kGemvMaxRows && kcu::gemv_sparse24_fits(L->wsq->layout(), e.rows))
            kcu::gemv_sparse24_w4(*L->wsq, xp, yp, e.rows, e.stream);
          else
            kcu::linear_sparse24_w4_prefill(*L->wsq, *ip->cublas, xp, yp, e.rows, ip->prefill_scratch.data(), e.stream);
        } else if (e.rows <= kGemvMaxRows)
          kcu::gemv_quantized(*L->wq, xp, yp, e.rows, *ip->gemv_ws, e.stream);
        else
          kcu::linear_quantized_prefill(*L->wq, *ip->cublas, xp, yp, e.rows, ip->prefill_scratch.data(), e.stream);
        break;
      case LinearKind::W8A8:
        kcu::linear_w8a8(*ip->w8_ctx, xp, *L->w8, nullptr, L->act_scale, nullptr, yp, e.rows, e.stream);
        break;
      case LinearKind::Sparse24:
        if (ip->fused_decode(*L, e.rows)) {
          fused_linear(*ip, *L, xa, ya, e);
          return;  // bias applied in the epilogue
        }
        if (!L->wsf)
          kcu::linear_sparse24(*ip->sp_ctx, *L->sp, xp, yp, e.rows, e.stream);
        else if (e.rows <= kGemvMaxRows && kcu::gemv_sparse24_fits(L->wsf->layout(), e.rows))
          kcu::gemv_sparse24_f16(*L->wsf, xp, yp, e.rows, e.stream);
        else
          kcu::linear_sparse24_f16_prefill(*L->wsf, *ip->cublas, xp, yp, e.rows, ip->prefill_scratch.data(), e.stream);
        break;
      case LinearKind::Dense: {
        const uint16_t* w = L->w16.size() ? L->w16.data() : ip->tables.at(L->weights[0]).data();
        kcu::linear_f16_ex(*ip->cublas, xa, w, ya, e.rows, L->n, L->k, e.stream);
        break;
      }
    }
    if (L->bias.size()) kcu::bias_add(ya, L->bias.data(), e.rows, L->n, e.stream);
  });
}

}  // namespace llmc::runtime::cuda_detail
