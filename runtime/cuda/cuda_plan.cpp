// CudaSession planning: turns the graph's nodes into device values and steps (kernel launches),
// fusing where the pattern allows (a residual Add followed by its norm → one kernel; the rotary of
// q and k → the KV-cache append; linears: cuda_plan_linear.cpp), then assigns activation storage
// by liveness. Reads only the graph; nothing touches the device here.
#include <algorithm>
#include <climits>
#include <cmath>

#include "runtime/cuda/cuda_planner.hpp"

namespace llmc::runtime {

namespace cuda_detail {

void Planner::embedding(size_t k) {
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
void Planner::embedding_q(size_t k) {
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
void Planner::positions(size_t k) {
  const Node& n = g.nodes[k];
  const int ids = val(n, 0);
  const int out = new_value(n.outputs[0], VType::I32, 1);
  define(n.outputs[0], out);
  auto* ip = &I;
  step("positions '" + n.name + "'", {ids}, {out},
       [ip, out](const Exec& e) { kcu::positions(e.past, ip->ptr<int32_t>(out), e.rows, e.tokens, e.stream); });
}
void Planner::norm(size_t k, const Node* add) {
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
void Planner::add(size_t k) {
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

Planner::RopeAttrs Planner::rope_attrs(const Node& n) {
  RopeAttrs r{n.i("num_heads"), n.i("head_dim"), 0, n.f("theta", 10000.0), n.i("neox", 1) != 0};
  r.rot = n.i("rotary_dim", r.head_dim);
  if (r.heads <= 0 || r.head_dim <= 0 || r.rot < 2 || r.rot % 2 || r.rot > r.head_dim)
    fail(n, "rotary_dim " + std::to_string(r.rot) + " must be even, ≥ 2 and at most head_dim " + std::to_string(r.head_dim));
  return r;
}
bool Planner::rope_fusable(const Node& n) {
  if (!I.opt.fuse || !single_use(n.outputs[0])) return false;
  const Node& at = g.nodes[consumers.at(n.outputs[0])[0]];
  if (!is_llmc(at, "Attention") || at.inputs.size() < 3) return false;
  const Node *rq = rotary_producer(at.inputs[0]), *rk = rotary_producer(at.inputs[1]);
  if (!rq || !rk || rq == rk || (&n != rq && &n != rk)) return false;
  return single_use(at.inputs[0]) && single_use(at.inputs[1]) && single_use(rq->inputs[0]) &&
         single_use(rk->inputs[0]) && rope_attrs(*rq) == rope_attrs(*rk);
}
void Planner::rotary(size_t k) {
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
void Planner::attention(size_t k) {
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
void Planner::elementwise(size_t k) {
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
void Planner::run() {
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

}  // namespace cuda_detail

using namespace cuda_detail;

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
  if (any_quantized) mem.workspace += 16 * 16 * (max_quant_rows + 128) * 4;
  if (needs_prefill_scratch()) mem.workspace += max_dequant_nk * 2;
  attn_ws_rows = std::min<int64_t>(max_rows, kGemvMaxRows * opt.max_batch);
  if (!attns.empty()) mem.workspace += attn_ws_rows * max_heads * (kAttnMaxSplits * (max_head_dim + 2) + 1) * 4;
  if (w8_max_n) mem.workspace += max_rows * (w8_max_k + 4 + 4 * w8_max_n) + (32 << 20);  // + cuBLASLt workspace
  if (sp_max_n) mem.workspace += (max_rows + 16) * (sp_max_k + sp_max_n) * 2 + (64 << 20);
  mem.workspace += opt.max_batch * opt.max_context * 4 + 64;  // greedy history, state
}

}  // namespace llmc::runtime
