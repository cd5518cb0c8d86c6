// CudaSession planning: turns the graph's nodes into device values and steps (kernel launches),
// fusing where the pattern allows (sibling linears over one input → one stacked GEMM; a residual
// Add followed by its norm → one kernel; the rotary of q and k → the KV-cache append), then
// assigns activation storage by liveness. Reads only the graph; nothing touches the device here.
#include <algorithm>
#include <climits>
#include <cmath>

#include "runtime/cuda/cuda_impl.hpp"

namespace llmc::runtime {

using namespace cuda_detail;

namespace {

constexpr int64_t kGemvMaxRows = 16;  // gemv_quantized takes 1..16 rows
constexpr int kAttnMaxSplits = 32;

bool is_llmc(const Node& n, const char* op) { return n.domain == "llmc" && n.op == op; }
bool is_onnx(const Node& n, const char* op) { return (n.domain.empty() || n.domain == "ai.onnx") && n.op == op; }

// Device bytes of a quantized weight of this geometry after repack_for_gpu (quant_gemv.hpp).
int64_t repacked_bytes(int bits, bool sym, int64_t rows, int64_t cols, int64_t n_groups) {
  const int64_t tiles = (rows + 15) / 16, ck = bits == 4 ? 64 : 32, chunks = (cols + ck - 1) / ck;
  return tiles * chunks * 512 + n_groups * tiles * 16 * (sym ? 2 : 3);
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
  kcu::gemv_fused(*L.wq, pro, epi, e.rows, e.stream);
}

struct Planner {
  CudaSession::Impl& I;
  const Graph& g;
  std::unordered_map<std::string, std::vector<size_t>> consumers;
  std::unordered_map<std::string, size_t> producer;
  std::set<std::string> outputs;
  std::vector<bool> done;
  std::map<std::string, std::string> deferred_rope;  // rotary output -> its input (rotated in the append)
  std::map<std::string, bool> sparse_cache;          // dense weight -> has the 2:4 pattern
  std::map<int, std::pair<LinearPlan*, size_t>> quant_out;  // output of a single Quant linear -> it, its step
  std::map<int, PrologueFusion*> pending_pro;                // norm / SwiGLU output -> its fusion, if taken

  Planner(CudaSession::Impl& impl) : I(impl), g(impl.model.graph), done(g.nodes.size(), false) {
    for (size_t k = 0; k < g.nodes.size(); ++k) {
      for (auto& in : g.nodes[k].inputs)
        if (!in.empty()) consumers[in].push_back(k);
      for (auto& o : g.nodes[k].outputs) producer[o] = k;
    }
    for (auto& o : g.outputs) outputs.insert(o.name);
  }

  [[noreturn]] void fail(const Node& n, const std::string& msg) const {
    throw Error(I.where() + ": " + n.label() + ": " + msg + " (CUDA backend)");
  }
  bool is_output(const std::string& name) const { return outputs.count(name) != 0; }

  int new_value(const std::string& name, VType t, int64_t width, bool persistent = false) {
    Value v;
    v.name = name;
    v.type = t;
    v.width = width;
    v.root = static_cast<int>(I.values.size());
    v.ld = width;
    v.persistent = persistent;
    I.values.push_back(v);
    return v.root;
  }
  int view(const std::string& name, int of, int64_t col0, int64_t width) {
    Value v = I.values[of];
    v.name = name;
    v.width = width;
    v.col0 += col0;
    v.ld = 0;
    I.values.push_back(v);
    return static_cast<int>(I.values.size()) - 1;
  }
  void define(const std::string& name, int v) { I.value_of[name] = v; }
  int64_t width(int v) const { return I.values[v].width; }

  int val(const Node& n, size_t i) {
    if (i >= n.inputs.size() || n.inputs[i].empty()) fail(n, "input " + std::to_string(i) + " is missing");
    const std::string& name = n.inputs[i];
    auto it = I.value_of.find(name);
    if (it != I.value_of.end()) return it->second;
    if (g.weights.count(name)) fail(n, "input '" + name + "' is an initializer where an activation is expected");
    fail(n, "input '" + name + "' is not produced by any earlier node");
  }
  const Tensor& weight(const Node& n, size_t i) {
    if (i >= n.inputs.size() || n.inputs[i].empty()) fail(n, "input " + std::to_string(i) + " is missing");
    auto it = g.weights.find(n.inputs[i]);
    if (it == g.weights.end()) fail(n, "input '" + n.inputs[i] + "' must be a weight (initializer)");
    if (!is_float(it->second.dtype()))
      fail(n, "weight '" + n.inputs[i] + "' has non-float dtype " + dtype_name(it->second.dtype()));
    return it->second;
  }

  void step(std::string label, std::vector<int> reads, std::vector<int> writes, std::function<void(const Exec&)> fn) {
    I.steps.push_back(Step{std::move(label), std::move(reads), std::move(writes), std::move(fn)});
  }

  // v as f16, as a view of any stride or contiguous; converted once and shared by later readers.
  int as_f16(int v, bool contiguous) {
    const Value x = I.values[v];  // a copy: new_value may reallocate
    const bool contig = I.values[x.root].ld == x.width;
    if (x.type == VType::F16 && (!contiguous || contig)) return v;
    auto it = I.converted.find(v);
    if (it != I.converted.end()) return it->second;
    const int c = new_value(x.name + "#f16", VType::F16, x.width);
    auto* ip = &I;
    const int64_t w = x.width;
    step("convert '" + x.name + "' to contiguous f16", {v}, {c},
         [ip, v, c, w](const Exec& e) { kcu::convert(ip->act(v), ip->act(c), e.rows, w, e.stream); });
    I.converted[v] = c;
    return c;
  }

  const QuantizedWeight& quantized(const Node& n) {
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
    if (!q.g_idx.empty())
      fail(n, "quantized weight '" + w + "' (" + fmt + ") uses act-order (g_idx), which the GPU kernels do not support");
    const int64_t gl = q.group_len();
    if (act != "none") {
      if (q.bits != 8 || !q.symmetric || q.n_groups() != 1)
        fail(n, "format " + fmt + " act=" + act + ": int8 activations need an INT8 symmetric per-channel weight");
      if (act == "static" && !(n.f("act_scale", 0) > 0)) fail(n, "static activation quantization needs act_scale > 0");
      return q;
    }
    if (gl <= 0) fail(n, "quantized weight '" + w + "' has group size " + std::to_string(gl));
    if (q.n_groups() != 1 && gl % 32 != 0)
      fail(n, "quantized weight '" + w + "' (" + fmt + "): group size " + std::to_string(gl) +
                  " is not a multiple of 32, which the GPU kernels need");
    return q;
  }

  // A dense weight with the 2:4 pattern that cuSPARSELt can take (built with it, sizes multiples of 16).
  bool sparse_24(const std::string& name) {
    auto it = sparse_cache.find(name);
    if (it != sparse_cache.end()) return it->second;
    bool ok = false;
    auto w = g.weights.find(name);
    if (kcu::sparse24_available() && w != g.weights.end() && w->second.rank() == 2 && w->second.dim(0) % 16 == 0 &&
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
  LinearKind kind_of(const Node& m) {
    if (m.op == "LinearQ") return m.s("act", "none") == "none" ? LinearKind::Quant : LinearKind::W8A8;
    return m.inputs.size() > 1 && sparse_24(m.inputs[1]) ? LinearKind::Sparse24 : LinearKind::Dense;
  }

  bool compatible(const Node& a, const Node& b) {
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
           x.g_idx.empty() && y.g_idx.empty() && a.s("act", "none") == b.s("act", "none") &&
           a.f("act_scale", 0) == b.f("act_scale", 0);
  }

  void linear(size_t k) {
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
      lp->device_bytes = repacked_bytes(q0->bits, q0->symmetric, N, K, q0->n_groups());
      I.any_quantized = true;
      I.max_quant_rows = std::max(I.max_quant_rows, (N + 15) / 16 * 16);
      I.max_quant_nk = std::max(I.max_quant_nk, N * K);
    } else if (kind == LinearKind::W8A8) {
      lp->device_bytes = N * ((K + 15) / 16 * 16) + N * 4;
      I.w8_max_n = std::max(I.w8_max_n, N);
      I.w8_max_k = std::max(I.w8_max_k, (K + 15) / 16 * 16);
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
    const int xin = as_f16(x, true);
    std::vector<int> reads{xin};
    auto pf = pending_pro.find(x);
    if (kind == LinearKind::Quant && pf != pending_pro.end() && !pf->second->consumer) {
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
    if (kind == LinearKind::Quant)
      label += " (W" + std::to_string(q0->bits) + " g" + std::to_string(q0->group_len()) +
               (q0->symmetric ? " sym" : " asym") + ": tensor-core GEMV for <= 16 rows, dequantize + cuBLAS above)";
    else if (kind == LinearKind::W8A8)
      label += std::string(" (W8A8, int8 activations ") + (lp->act_scale > 0 ? "static" : "per token") + ")";
    else if (kind == LinearKind::Sparse24)
      label += " (2:4 sparse f16, cuSPARSELt)";
    else
      label += " (cuBLAS f16)";
    if (lp->pro) label += lp->pro->norm ? " [decode: RMSNorm folded in]" : " [decode: SwiGLU folded in]";
    auto* ip = &I;
    auto* L = lp.get();
    I.linears.push_back(std::move(lp));
    if (kind == LinearKind::Quant && sib.size() == 1) quant_out[out] = {L, I.steps.size()};
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
          if (e.rows <= kGemvMaxRows)
            kcu::gemv_quantized(*L->wq, xp, yp, e.rows, *ip->gemv_ws, e.stream);
          else
            kcu::linear_quantized_prefill(*L->wq, *ip->cublas, xp, yp, e.rows, ip->prefill_scratch.data(), e.stream);
          break;
        case LinearKind::W8A8:
          kcu::linear_w8a8(*ip->w8_ctx, xp, *L->w8, nullptr, L->act_scale, nullptr, yp, e.rows, e.stream);
          break;
        case LinearKind::Sparse24:
          kcu::linear_sparse24(*ip->sp_ctx, *L->sp, xp, yp, e.rows, e.stream);
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

  void embedding(size_t k) {
    const Node& n = g.nodes[k];
    const Tensor& t = weight(n, 0);
    if (t.rank() != 2) fail(n, "table must be 2-D, got " + shape_str(t.shape()));
    const int ids = val(n, 1);
    if (I.values[ids].type != VType::I32) fail(n, "ids must be token ids or positions");
    if (ids == I.input_value) I.input_vocab = I.input_vocab ? std::min(I.input_vocab, t.dim(0)) : t.dim(0);
    I.table_names.insert(n.inputs[0]);
    I.emb_row_bytes += t.dim(1) * 2;
    const int out = new_value(n.outputs[0], VType::F32, t.dim(1), is_output(n.outputs[0]));
    define(n.outputs[0], out);
    auto* ip = &I;
    const std::string table = n.inputs[0];
    const int64_t V = t.dim(0), D = t.dim(1);
    step("embedding '" + n.name + "'", {ids}, {out}, [ip, table, V, D, ids, out](const Exec& e) {
      kcu::embedding(ip->tables.at(table).data(), V, D, ip->ptr<int32_t>(ids), ip->act(out), e.rows, e.stream);
    });
  }

  // llmc::EmbeddingQ: the quantized table is dequantized once at upload into an f16 table (a
  // decode step reads one row of it, so its size does not matter to speed), then gathered.
  void embedding_q(size_t k) {
    const Node& n = g.nodes[k];
    const std::string wname = n.s("weight", "");
    auto it = g.quantized.find(wname);
    if (it == g.quantized.end()) fail(n, "quantized table '" + wname + "' is missing");
    const int ids = val(n, 0);
    if (I.values[ids].type != VType::I32) fail(n, "ids must be token ids or positions");
    const int64_t V = it->second.rows, D = it->second.cols;
    if (ids == I.input_value) I.input_vocab = I.input_vocab ? std::min(I.input_vocab, V) : V;
    I.qtable_names.insert(wname);
    I.emb_row_bytes += D * 2;
    const int out = new_value(n.outputs[0], VType::F32, D, is_output(n.outputs[0]));
    define(n.outputs[0], out);
    auto* ip = &I;
    const std::string table = "#dequantized:" + wname;
    step("embedding (dequantized at upload) '" + n.name + "'", {ids}, {out}, [ip, table, V, D, ids, out](const Exec& e) {
      kcu::embedding(ip->tables.at(table).data(), V, D, ip->ptr<int32_t>(ids), ip->act(out), e.rows, e.stream);
    });
  }

  void positions(size_t k) {
    const Node& n = g.nodes[k];
    const int ids = val(n, 0);
    const int out = new_value(n.outputs[0], VType::I32, 1);
    define(n.outputs[0], out);
    auto* ip = &I;
    step("positions '" + n.name + "'", {ids}, {out},
         [ip, out](const Exec& e) { kcu::positions(e.past, ip->ptr<int32_t>(out), e.rows, e.tokens, e.stream); });
  }

  // A norm node, with the residual Add before it fused in when `add` is given.
  void norm(size_t k, const Node* add) {
    const Node& n = g.nodes[k];
    const bool layer = n.op == "LayerNorm";
    const int a = add ? val(*add, 0) : val(n, 0);
    const int r = add ? val(*add, 1) : -1;
    const int64_t D = width(a);
    if (add && width(r) != D)
      fail(*add, "Add of widths " + std::to_string(D) + " and " + std::to_string(width(r)) + " (broadcasting) is not supported");
    const Tensor& w = weight(n, 1);
    if (w.numel() != D) fail(n, "weight length does not match the hidden size " + std::to_string(D));
    const std::string wname = n.inputs[1];
    std::string bname;
    if (layer && n.inputs.size() > 2 && !n.inputs[2].empty()) {
      if (weight(n, 2).numel() != D) fail(n, "bias length does not match the hidden size");
      bname = n.inputs[2];
      I.vector_names.insert(bname);
    }
    I.vector_names.insert(wname);
    const float eps = static_cast<float>(n.f("epsilon", layer ? 1e-5 : 1e-6));
    int h = -1;
    if (add) {
      h = new_value(add->outputs[0], VType::F32, D, is_output(add->outputs[0]));
      define(add->outputs[0], h);
    }
    const bool f32 = is_output(n.outputs[0]);
    const int y = new_value(n.outputs[0], f32 ? VType::F32 : VType::F16, D, f32);
    define(n.outputs[0], y);
    std::vector<int> reads{a}, writes{y};
    if (add) {
      reads.push_back(r);
      writes.push_back(h);
    }
    std::string label = std::string(add ? "add + " : "") + (layer ? "layer_norm '" : "rms_norm '") + n.name + "'";
    // Decode fusions: the Add into the quantized linear that produces one of its operands (that
    // linear then writes h), and the RMSNorm into the quantized linear(s) it feeds (planned
    // later; they stage norm(h) themselves). What is left here runs only where they do not.
    LinearPlan* producer = nullptr;
    PrologueFusion* pf = nullptr;
    if (I.opt.fuse && I.opt.fused_gemv) {
      for (int side = 1; add && side >= 0 && !producer; --side) {
        const std::string& rname = add->inputs[side];
        auto it = quant_out.find(side ? r : a);
        if (it == quant_out.end() || !single_use(rname)) continue;
        producer = it->second.first;
        producer->epi_res = side ? a : r;
        producer->epi_out = h;
        I.steps[it->second.second].reads.push_back(producer->epi_res);
        I.steps[it->second.second].writes.push_back(h);
        I.steps[it->second.second].label += " [decode: + residual '" + add->name + "']";
      }
      if (!layer && !f32 && !is_output(n.outputs[0])) {
        I.fusions.push_back(std::make_unique<PrologueFusion>());
        pf = I.fusions.back().get();
        pf->in = add ? h : a;
        pf->weight = wname;
        pf->eps = eps;
        pending_pro[y] = pf;
      }
    }
    auto* ip = &I;
    step(label, reads, writes, [ip, a, r, h, y, D, layer, wname, bname, eps, producer, pf](const Exec& e) {
      kcu::NormParams p;
      p.layer_norm = layer;
      p.weight = ip->vectors.at(wname).data();
      p.bias = bname.empty() ? nullptr : ip->vectors.at(bname).data();
      p.eps = eps;
      const bool formed = producer && ip->fused_decode(*producer, e.rows);          // h is written already
      const bool folded = pf && pf->consumer && ip->fused_decode(*pf->consumer, e.rows);  // y is not needed
      if (formed) {
        if (!folded) kcu::norm(ip->act(h), kcu::Act{}, kcu::Act{}, ip->act(y), e.rows, D, p, e.stream);
      } else if (folded) {
        if (h >= 0) kcu::add(ip->act(a), ip->act(r), ip->act(h), e.rows, D, e.stream);
      } else {
        kcu::norm(ip->act(a), r >= 0 ? ip->act(r) : kcu::Act{}, h >= 0 ? ip->act(h) : kcu::Act{}, ip->act(y), e.rows, D,
                  p, e.stream);
      }
    });
  }

  void add(size_t k) {
    const Node& n = g.nodes[k];
    if (I.opt.fuse && k + 1 < g.nodes.size()) {
      const Node& nx = g.nodes[k + 1];
      if ((is_llmc(nx, "RMSNorm") || is_llmc(nx, "LayerNorm")) && !nx.inputs.empty() && nx.inputs[0] == n.outputs[0]) {
        norm(k + 1, &n);
        done[k + 1] = true;
        return;
      }
    }
    const int a = val(n, 0), b = val(n, 1);
    const int64_t D = width(a);
    if (width(b) != D)
      fail(n, "Add of widths " + std::to_string(D) + " and " + std::to_string(width(b)) + " (broadcasting) is not supported");
    const int out = new_value(n.outputs[0], VType::F32, D, is_output(n.outputs[0]));
    define(n.outputs[0], out);
    auto* ip = &I;
    step("add '" + n.name + "'", {a, b}, {out},
         [ip, a, b, out, D](const Exec& e) { kcu::add(ip->act(a), ip->act(b), ip->act(out), e.rows, D, e.stream); });
  }

  struct RopeAttrs {
    int64_t heads, head_dim, rot;
    double theta;
    bool neox;
    bool operator==(const RopeAttrs& o) const {
      return head_dim == o.head_dim && rot == o.rot && theta == o.theta && neox == o.neox;
    }
  };
  RopeAttrs rope_attrs(const Node& n) {
    RopeAttrs r{n.i("num_heads"), n.i("head_dim"), 0, n.f("theta", 10000.0), n.i("neox", 1) != 0};
    r.rot = n.i("rotary_dim", r.head_dim);
    if (r.heads <= 0 || r.head_dim <= 0 || r.rot < 2 || r.rot % 2 || r.rot > r.head_dim)
      fail(n, "rotary_dim " + std::to_string(r.rot) + " must be even, ≥ 2 and at most head_dim " + std::to_string(r.head_dim));
    return r;
  }
  const Node* rotary_producer(const std::string& value) const {
    auto it = producer.find(value);
    return it != producer.end() && is_llmc(g.nodes[it->second], "Rotary") ? &g.nodes[it->second] : nullptr;
  }
  bool single_use(const std::string& v) const {
    auto it = consumers.find(v);
    return it != consumers.end() && it->second.size() == 1 && !is_output(v);
  }

  // Rotary of q and k fused into the attention's cache append: both rotaries feed only that
  // attention, share their parameters, and their inputs feed only them (q rotates in place).
  bool rope_fusable(const Node& n) {
    if (!I.opt.fuse || !single_use(n.outputs[0])) return false;
    const Node& at = g.nodes[consumers.at(n.outputs[0])[0]];
    if (!is_llmc(at, "Attention") || at.inputs.size() < 3) return false;
    const Node *rq = rotary_producer(at.inputs[0]), *rk = rotary_producer(at.inputs[1]);
    if (!rq || !rk || rq == rk || (&n != rq && &n != rk)) return false;
    return single_use(at.inputs[0]) && single_use(at.inputs[1]) && single_use(rq->inputs[0]) &&
           single_use(rk->inputs[0]) && rope_attrs(*rq) == rope_attrs(*rk);
  }

  void rotary(size_t k) {
    const Node& n = g.nodes[k];
    const RopeAttrs ra = rope_attrs(n);
    if (rope_fusable(n)) {
      deferred_rope[n.outputs[0]] = n.inputs[0];
      return;
    }
    int x = val(n, 0);
    if (width(x) != ra.heads * ra.head_dim)
      fail(n, "width " + std::to_string(width(x)) + " != num_heads x head_dim");
    int out;
    if (single_use(n.inputs[0]) && !I.values[x].persistent && I.values[x].type == VType::F16) {
      out = view(n.outputs[0], x, 0, width(x));  // in place
    } else {
      const int src = x;
      out = new_value(n.outputs[0], VType::F16, width(x));
      auto* ip = &I;
      const int64_t w = width(x);
      step("copy for rotary '" + n.name + "'", {src}, {out},
           [ip, src, out, w](const Exec& e) { kcu::convert(ip->act(src), ip->act(out), e.rows, w, e.stream); });
    }
    define(n.outputs[0], out);
    auto rp = std::make_unique<RopePlan>();
    rp->theta = ra.theta;
    rp->rot_dim = ra.rot;
    rp->neox = ra.neox;
    auto* R = rp.get();
    I.ropes.push_back(std::move(rp));
    auto* ip = &I;
    step("rotary '" + n.name + "'", {out}, {out}, [ip, R, out, ra](const Exec& e) {
      kcu::rotary_inplace(ip->act(out), e.rows, e.tokens, ra.heads, ra.head_dim,
                          kcu::RopeParams{R->inv_freq.data(), R->rot_dim, R->neox}, e.past, e.stream);
    });
  }

  void attention(size_t k) {
    const Node& n = g.nodes[k];
    auto ap = std::make_unique<AttnPlan>();
    ap->node = n.name;
    kcu::AttentionParams& p = ap->p;
    p.q_heads = n.i("num_heads");
    p.kv_heads = n.i("num_kv_heads", p.q_heads);
    p.head_dim = n.i("head_dim");
    if (p.q_heads <= 0 || p.kv_heads <= 0 || p.q_heads % p.kv_heads != 0)
      fail(n, "num_heads must be a positive multiple of num_kv_heads");
    if (p.head_dim <= 0 || p.head_dim % 2 != 0 || p.head_dim > 256)
      fail(n, "head_dim " + std::to_string(p.head_dim) + " is not supported (even, at most 256)");
    p.scale = static_cast<float>(n.f("scale", 1.0 / std::sqrt(static_cast<double>(p.head_dim))));
    p.causal = n.i("causal", 1) != 0;
    ap->cached = n.i("kv_cache", 0) != 0;
    ap->capacity = ap->cached ? I.opt.max_context : I.opt.max_tokens;
    auto dq = deferred_rope.find(n.inputs.size() > 0 ? n.inputs[0] : ""), dk = deferred_rope.find(n.inputs.size() > 1 ? n.inputs[1] : "");
    ap->rope = dq != deferred_rope.end() && dk != deferred_rope.end();
    int q, kk;
    if (ap->rope) {
      const RopeAttrs ra = rope_attrs(*rotary_producer(n.inputs[0]));
      ap->theta = ra.theta;
      ap->rot_dim = ra.rot;
      ap->neox = ra.neox;
      if (ra.head_dim != p.head_dim) fail(n, "rotary head_dim differs from the attention's");
      q = as_f16(I.value_of.at(dq->second), false);
      kk = as_f16(I.value_of.at(dk->second), false);
    } else {
      q = as_f16(val(n, 0), false);
      kk = as_f16(val(n, 1), false);
    }
    const int v = as_f16(val(n, 2), false);
    if (width(q) != p.q_heads * p.head_dim) fail(n, "query width does not match num_heads x head_dim");
    if (width(kk) != p.kv_heads * p.head_dim || width(v) != p.kv_heads * p.head_dim)
      fail(n, "key/value widths do not match num_kv_heads x head_dim");
    const int out = new_value(n.outputs[0], VType::F16, p.q_heads * p.head_dim);
    define(n.outputs[0], out);
    I.max_heads = std::max(I.max_heads, p.q_heads);
    I.max_head_dim = std::max(I.max_head_dim, p.head_dim);
    std::string label = "attention '" + n.name + "' (" + (ap->rope ? "rotary + " : "") +
                        "cache append; flash prefill above 16 tokens, split-K decode otherwise, one fused launch at 1)";
    auto* A = ap.get();
    I.attns.push_back(std::move(ap));
    std::vector<int> writes{out};
    if (A->rope) writes.push_back(q);
    auto* ip = &I;
    step(label, {q, kk, v}, writes, [ip, A, q, kk, v, out](const Exec& e) {
      const int32_t* past = A->cached ? e.past : ip->d_zero();
      const kcu::KvCacheView c{A->k.data(), A->v.data(), A->capacity, A->p.kv_heads, A->p.head_dim};
      const kcu::RopeParams rp{A->inv_freq.data(), A->rot_dim, A->neox};
      kcu::AttentionParams p = A->p;
      p.batch = e.batch;
      p.tokens = e.tokens;
      if (e.tokens == 1 && ip->opt.fuse && e.rows <= ip->attn_ws->max_rows()) {  // decode: one launch
        const int splits = kcu::attention_decode_splits(e.rows, p.q_heads, ip->sm_count, ip->attn_ws->max_splits());
        kcu::attention_decode_append(ip->act(q), ip->act(kk), ip->act(v), c, ip->act(out), p, A->rope ? &rp : nullptr,
                                     past, *ip->attn_ws, splits, e.stream);
        return;
      }
      kcu::kv_append(A->rope ? ip->act(q) : kcu::Act{}, A->p.q_heads, ip->act(kk), ip->act(v), c, e.rows, e.tokens,
                     A->rope ? &rp : nullptr, past, e.stream);
      if (e.tokens > kGemvMaxRows && kcu::attention_prefill_supports(p.head_dim)) {
        kcu::attention_prefill(ip->act(q), c, ip->act(out), p, past, e.stream);
      } else {
        const int splits = e.rows <= ip->attn_ws->max_rows()
                               ? kcu::attention_decode_splits(e.rows, p.q_heads, ip->sm_count, ip->attn_ws->max_splits())
                               : 1;
        kcu::attention_decode(ip->act(q), c, ip->act(out), p, past, *ip->attn_ws, splits, e.stream);
      }
    });
  }

  void elementwise(size_t k) {
    const Node& n = g.nodes[k];
    auto* ip = &I;
    if (n.op == "SwiGLU") {
      const int gt = val(n, 0), up = val(n, 1);
      const int64_t D = width(gt);
      if (width(up) != D) fail(n, "gate and up widths differ");
      const int out = new_value(n.outputs[0], VType::F16, D);
      define(n.outputs[0], out);
      // Decode: folded into the quantized linear it feeds when gate and up are columns of one f16
      // output (a stacked gate|up linear), so that one pointer and an offset reach both.
      PrologueFusion* pf = nullptr;
      const Value &G = I.values[gt], &U = I.values[up];
      if (I.opt.fuse && I.opt.fused_gemv && G.root == U.root && G.type == VType::F16 && !is_output(n.outputs[0])) {
        I.fusions.push_back(std::make_unique<PrologueFusion>());
        pf = I.fusions.back().get();
        pf->norm = false;
        pf->in = gt;
        pf->up_col = U.col0 - G.col0;
        pending_pro[out] = pf;
      }
      step("swiglu '" + n.name + "'", {gt, up}, {out}, [ip, gt, up, out, D, pf](const Exec& e) {
        if (pf && pf->consumer && ip->fused_decode(*pf->consumer, e.rows)) return;
        kcu::swiglu(ip->act(gt), ip->act(up), ip->act(out), e.rows, D, e.stream);
      });
      return;
    }
    const std::string approx = n.s("approximate", "none");
    if (approx != "none" && approx != "tanh") fail(n, "approximate must be 'none' or 'tanh'");
    const int x = val(n, 0);
    const int64_t D = width(x);
    const int out = new_value(n.outputs[0], VType::F16, D);
    define(n.outputs[0], out);
    const bool tanh_approx = approx == "tanh";
    step("gelu '" + n.name + "'", {x}, {out}, [ip, x, out, D, tanh_approx](const Exec& e) {
      kcu::gelu(ip->act(x), ip->act(out), e.rows, D, tanh_approx, e.stream);
    });
  }

  void run() {
    std::vector<const ValueInfo*> ins;
    for (auto& vi : g.inputs)
      if (!g.weights.count(vi.name)) ins.push_back(&vi);
    if (ins.size() != 1)
      throw Error(I.where() + ": the CUDA backend runs graphs with one input (token ids); this one has " +
                  std::to_string(ins.size()));
    if (g.outputs.size() != 1)
      throw Error(I.where() + ": the CUDA backend runs graphs with one output; this one has " +
                  std::to_string(g.outputs.size()));
    I.input_value = new_value(ins[0]->name, VType::I32, 1, true);
    define(ins[0]->name, I.input_value);
    for (const Node& n : g.nodes) I.cached |= is_llmc(n, "Attention") && n.i("kv_cache", 0) != 0;
    for (size_t k = 0; k < g.nodes.size(); ++k) {
      if (done[k]) continue;
      const Node& n = g.nodes[k];
      if (n.outputs.empty() || n.outputs[0].empty()) fail(n, "node has no output");
      if (is_llmc(n, "Linear") || is_llmc(n, "LinearQ")) linear(k);
      else if (is_llmc(n, "Embedding")) embedding(k);
      else if (is_llmc(n, "EmbeddingQ")) embedding_q(k);
      else if (is_llmc(n, "Positions")) positions(k);
      else if (is_llmc(n, "RMSNorm") || is_llmc(n, "LayerNorm")) norm(k, nullptr);
      else if (is_onnx(n, "Add")) add(k);
      else if (is_llmc(n, "Rotary")) rotary(k);
      else if (is_llmc(n, "Attention")) attention(k);
      else if (is_llmc(n, "SwiGLU") || is_llmc(n, "Gelu")) elementwise(k);
      else
        fail(n, "op not supported (supported: llmc Embedding, EmbeddingQ, Positions, Linear, LinearQ, RMSNorm, LayerNorm, "
                "Rotary, Attention, SwiGLU, Gelu; ONNX Add)");
      done[k] = true;
    }
    const std::string& oname = g.outputs[0].name;
    auto it = I.value_of.find(oname);
    if (it == I.value_of.end()) throw Error(I.where() + ": graph output '" + oname + "' is never produced");
    int o = it->second;
    const Value ov = I.values[o];
    if (ov.type != VType::F32 || ov.root != o || !ov.persistent) {
      const int c = new_value(oname, VType::F32, ov.width, true);
      auto* ip = &I;
      const int64_t w = ov.width;
      step("convert output '" + oname + "' to f32", {o}, {c},
           [ip, o, c, w](const Exec& e) { kcu::convert(ip->act(o), ip->act(c), e.rows, w, e.stream); });
      o = c;
    }
    I.output_value = o;
  }
};

}  // namespace

void CudaSession::Impl::plan() { Planner(*this).run(); }

void CudaSession::Impl::assign_slots() {
  const int S = static_cast<int>(steps.size());
  for (auto& v : values)
    if (v.root == &v - values.data()) {
      v.def = INT_MAX;
      v.last = -1;
    }
  for (int s = 0; s < S; ++s) {
    for (int w : steps[s].writes) {
      Value& r = values[values[w].root];
      r.def = std::min(r.def, s);
      r.last = std::max(r.last, s);
    }
    for (int rd : steps[s].reads) {
      Value& r = values[values[rd].root];
      r.last = std::max(r.last, s);
    }
  }
  std::vector<std::vector<int>> born(S), dies(S);
  std::vector<int> free_slots;
  auto alloc = [&](int r) {
    const int64_t need = max_rows * values[r].ld * static_cast<int64_t>(cuda_detail::vsize(values[r].type));
    int best = -1;
    for (size_t i = 0; i < free_slots.size(); ++i) {
      const int s = free_slots[i];
      if (slot_bytes[s] >= need && (best < 0 || slot_bytes[s] < slot_bytes[free_slots[best]])) best = static_cast<int>(i);
    }
    if (best >= 0) {
      values[r].slot = free_slots[best];
      free_slots.erase(free_slots.begin() + best);
    } else {
      values[r].slot = static_cast<int>(slot_bytes.size());
      slot_bytes.push_back(need);
    }
  };
  for (size_t v = 0; v < values.size(); ++v) {
    Value& x = values[v];
    if (x.root != static_cast<int>(v)) continue;
    if (x.persistent) {
      alloc(static_cast<int>(v));  // before any step, never freed
    } else if (x.def < S) {
      born[x.def].push_back(static_cast<int>(v));
      dies[x.last].push_back(static_cast<int>(v));
    }
  }
  for (int s = 0; s < S; ++s) {
    for (int r : born[s]) alloc(r);
    for (int r : dies[s]) free_slots.push_back(values[r].slot);
  }
}

void CudaSession::Impl::plan_memory() {
  const Graph& g = model.graph;
  mem = {};
  for (auto& t : table_names) mem.weights += g.weights.at(t).numel() * 2;
  for (auto& t : vector_names) mem.weights += g.weights.at(t).numel() * 4;
  for (auto& t : qtable_names) mem.weights += g.quantized.at(t).rows * g.quantized.at(t).cols * 2;
  for (auto& l : linears) mem.weights += l->device_bytes;
  for (auto& a : attns) mem.kv_cache += 2 * opt.max_batch * a->capacity * a->p.kv_heads * a->p.head_dim * 2;
  for (int64_t b : slot_bytes) mem.activations += b;
  mem.workspace = 32 << 20;  // cuBLAS (dense_gemm.cpp)
  if (any_quantized) {
    mem.workspace += 16 * 16 * (max_quant_rows + 128) * 4;
    if (max_rows > kGemvMaxRows) mem.workspace += max_quant_nk * 2;
  }
  attn_ws_rows = std::min<int64_t>(max_rows, kGemvMaxRows * opt.max_batch);
  if (!attns.empty()) mem.workspace += attn_ws_rows * max_heads * (kAttnMaxSplits * (max_head_dim + 2) + 1) * 4;
  if (w8_max_n) mem.workspace += max_rows * (w8_max_k + 4 + 4 * w8_max_n) + (32 << 20);  // + cuBLASLt workspace
  if (sp_max_n) mem.workspace += (max_rows + 16) * (sp_max_k + sp_max_n) * 2 + (64 << 20);
  mem.workspace += opt.max_batch * opt.max_context * 4 + 64;  // greedy history, state
}

}  // namespace llmc::runtime
