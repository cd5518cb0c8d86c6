// CudaSession against the CPU Session on random-weight tiny models: logits of prefill and of
// decode steps (CUDA graph replays), greedy sequences, perplexity over random token ids, batches,
// dense / W8 / W4 (sym and asym, g32/64/128, per channel) weights, and the errors it must give
// (2:4 sparse linears: cuda_sparse_test.cpp).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "runtime/cuda/cuda_session.hpp"
#include "runtime/eval.hpp"
#include "runtime/generate.hpp"
#include "runtime/session.hpp"
#include "tests/gpu/gpu_test_util.hpp"
#include "tests/gpu/runtime/session_compare.hpp"
#include "tests/gpu/runtime/tiny_models.hpp"

using namespace llmc;
using namespace llmc::test;
using runtime::CudaOptions;
using runtime::CudaSession;
using runtime::Session;

TEST_CASE("dense tiny Llama: prefill and decode logits, perplexity and batches match the CPU session") {
  LLMC_REQUIRE_GPU();
  const Model m = tiny_llama(TinyShape{}, 1);
  CudaOptions opt;
  opt.max_context = 256;
  SUBCASE("CUDA graph decode") { compare_prefill_decode(m, opt, 40, 12, 10); }
  SUBCASE("no fusion, no graph") {
    opt.fuse = false;
    opt.cuda_graph = false;
    compare_prefill_decode(m, opt, 40, 4, 11);
  }
  SUBCASE("prefill in chunks of max_tokens, decode over 3 and 17 tokens per call") {
    opt.max_tokens = 24;
    Session cpu(m);
    CudaSession gpu(m, opt);
    const auto ids = random_ids(100, 300, 12);
    expect_logits_close(gpu.forward(ids), cpu.forward(ids), "chunked prefill");
    const std::vector<int64_t> three(ids.begin(), ids.begin() + 3), more(ids.begin() + 3, ids.begin() + 20);
    expect_logits_close(gpu.forward(three), cpu.forward(three), "3-token call");
    expect_logits_close(gpu.forward(more), cpu.forward(more), "17-token call");
  }
  SUBCASE("perplexity") { compare_perplexity(m, 13); }
  SUBCASE("a batch of 3 sequences equals 3 separate CPU runs") {
    opt.max_batch = 3;
    CudaSession gpu(m, opt);
    std::vector<std::vector<int64_t>> seqs{random_ids(33, 300, 14), random_ids(33, 300, 15), random_ids(33, 300, 16)};
    const Tensor out = gpu.forward_batch(seqs);
    const auto steps = random_ids(3, 300, 17);
    const Tensor step = gpu.forward_batch({{steps[0]}, {steps[1]}, {steps[2]}});
    for (int b = 0; b < 3; ++b) {
      CAPTURE(b);
      Session cpu(m);
      expect_logits_close(Tensor::borrow(DType::F32, {33, 300}, out.data<float>() + b * 33 * 300, nullptr),
                          cpu.forward(seqs[b]), "batched prefill");
      expect_logits_close(Tensor::borrow(DType::F32, {1, 300}, step.data<float>() + b * 300, nullptr),
                          cpu.forward({steps[b]}), "batched decode");
    }
  }
}

TEST_CASE("greedy decoding over 32 steps equals the CPU's where the CPU's top-1 margin is robust") {
  TinyShape s;
  s.head_std = 0.6f;  // logits spread over several units: f16 errors (~1e-2) cannot flip the order
  for (int quant = 0; quant < 2; ++quant) {
    CAPTURE(quant);
    Model m = tiny_llama(s, 3);  // seed chosen so that every step's margin clears 0.1 (see below)
    if (quant) quantize_decoder_linears(m, 4, 64, false);
    const auto prompt = random_ids(20, s.vocab, 21);
    Session cpu(m);
    std::vector<int64_t> want;
    double min_margin = 1e9;
    Tensor logits = cpu.forward(prompt);
    for (int step = 0; step < 32; ++step) {
      const float* row = logits.data<float>() + (logits.dim(0) - 1) * s.vocab;
      std::vector<float> r(row, row + s.vocab);
      const int64_t top = std::max_element(r.begin(), r.end()) - r.begin();
      std::nth_element(r.begin(), r.begin() + 1, r.end(), std::greater<float>());
      min_margin = std::min(min_margin, static_cast<double>(r[0] - r[1]));
      want.push_back(top);
      logits = cpu.forward({top});
    }
    INFO("smallest CPU top-1 margin " << min_margin);
    // Logits spread ~10 here and the f16 path errs by ~1e-3 of that (rms), a few times more at
    // worst: a top-1 margin of 0.1 cannot flip. The data must make every step that robust.
    REQUIRE(min_margin > 0.1);
    LLMC_REQUIRE_GPU();

    CudaOptions opt;
    opt.max_context = 128;
    CudaSession gpu(m, opt);
    runtime::GenerateOptions go;
    go.max_new_tokens = 32;
    CHECK(runtime::generate(gpu, prompt, go) == want);
    gpu.reset();
    const Tensor first = gpu.forward(prompt);
    const float* last = first.data<float>() + (first.dim(0) - 1) * s.vocab;
    REQUIRE(std::max_element(last, last + s.vocab) - last == want[0]);
    const auto dev = gpu.decode_greedy({want[0]}, 31);
    CHECK(std::vector<int64_t>(dev[0].begin(), dev[0].end()) == std::vector<int64_t>(want.begin() + 1, want.end()));
    CHECK(gpu.past() == 20 + 31);
  }
}

TEST_CASE("quantized tiny Llamas (W8, W4; sym, asym; g32/64/128, per channel) match the CPU session") {
  LLMC_REQUIRE_GPU();
  struct Q {
    int bits;
    int64_t group;
    bool sym;
  };
  const Q cases[] = {{8, 0, true}, {8, 64, false}, {4, 32, true}, {4, 64, false}, {4, 128, true}, {4, 0, false}};
  uint32_t seed = 30;
  for (const Q& q : cases) {
    CAPTURE(q.bits);
    CAPTURE(q.group);
    CAPTURE(q.sym);
    Model m = tiny_llama(TinyShape{}, 3);
    quantize_decoder_linears(m, q.bits, q.group, q.sym);
    CudaOptions opt;
    opt.max_context = 128;
    compare_prefill_decode(m, opt, 37, 5, seed += 3);  // 37 rows: the dequantize + cuBLAS path
    compare_prefill_decode(m, opt, 9, 2, seed += 3);   // 9 rows: the GEMV path for the prompt too
    compare_perplexity(m, seed += 3);
  }
}

TEST_CASE("act-order tiny Llamas (W4 sym and asym, W8) match the CPU session; q|k|v and gate|up still merge") {
  LLMC_REQUIRE_GPU();
  struct Q {
    int bits;
    int64_t group;
    bool sym;
  };
  uint32_t seed = 90;
  for (const Q& q : {Q{4, 32, true}, Q{4, 64, false}, Q{8, 128, true}}) {
    CAPTURE(q.bits);
    CAPTURE(q.group);
    CAPTURE(q.sym);
    Model m = tiny_llama(TinyShape{}, 9);
    quantize_decoder_linears(m, q.bits, q.group, q.sym);
    // One random column order per input, shared by the linears reading it (GPTQ's act-order
    // sorts by the diagonal of that input's Hessian).
    std::map<std::string, std::vector<int32_t>> by_input;
    for (const Node& n : m.graph.nodes) {
      if (n.op != "LinearQ") continue;
      QuantizedWeight& w = m.graph.quantized.at(n.s("weight", ""));
      auto it = by_input.find(n.inputs[0]);
      if (it == by_input.end()) {
        test::set_act_order(w, ++seed);
        by_input[n.inputs[0]] = w.g_idx;
      } else {
        w.g_idx = it->second;
      }
    }
    for (bool fused : {true, false}) {
      CAPTURE(fused);
      CudaOptions opt;
      opt.max_context = 128;
      opt.fused_gemv = fused;
      const std::string plan = CudaSession(m, opt).describe();
      INFO(plan.substr(0, 1500));
      CHECK(has(plan, "act-order, input permuted"));
      CHECK(has(plan, "'model.layers.0.self_attn.q_proj' 'model.layers.0.self_attn.k_proj'"));  // merged
      CHECK(has(plan, "'model.layers.0.mlp.gate_proj' 'model.layers.0.mlp.up_proj'"));
      compare_prefill_decode(m, opt, 37, 5, seed += 3);  // 37 rows: the input permuted, dequantize + cuBLAS
      compare_prefill_decode(m, opt, 9, 2, seed += 3);   // 9 rows: the GEMVs permute while staging
    }
    compare_perplexity(m, seed += 3);
  }
}

TEST_CASE("decode fusions around the quantized GEMV are planned and match the CPU session with and without them") {
  LLMC_REQUIRE_GPU();
  Model m = tiny_llama(TinyShape{}, 5);
  quantize_decoder_linears(m, 4, 64, false);
  for (bool fused : {true, false}) {
    CAPTURE(fused);
    CudaOptions opt;
    opt.max_context = 128;
    opt.fused_gemv = fused;
    {
      CudaSession gpu(m, opt);
      const std::string plan = gpu.describe();
      INFO(plan.substr(0, 1200));
      // Per layer: the norms into q/k/v and gate/up, SwiGLU into down, both residual adds into o and down.
      CHECK(has(plan, "[decode: RMSNorm folded in]") == fused);
      CHECK(has(plan, "[decode: SwiGLU folded in]") == fused);
      CHECK(has(plan, "[decode: + residual") == fused);
    }
    compare_prefill_decode(m, opt, 23, 6, 60);  // prompt: dequantize + cuBLAS, unfused; decode fused
    compare_prefill_decode(m, opt, 12, 3, 61);  // prompt of 12 rows through gemv_fused as well
  }
  // Batches: 4 sequences per decode step through the fused GEMV (m = 4).
  CudaOptions opt;
  opt.max_context = 64;
  opt.max_batch = 4;
  Session cpu(m);
  CudaSession gpu(m, opt);
  const int64_t V = m.config.value("vocab_size", int64_t{0});
  std::vector<std::vector<int64_t>> prompts;
  for (int b = 0; b < 4; ++b) prompts.push_back(random_ids(7, V, 70 + b));
  gpu.forward_batch(prompts);
  std::vector<std::vector<int64_t>> step;
  for (int b = 0; b < 4; ++b) step.push_back(random_ids(1, V, 80 + b));
  const Tensor got = gpu.forward_batch(step);
  for (int b = 0; b < 4; ++b) {
    cpu.reset();
    cpu.forward(prompts[b]);
    const Tensor want = cpu.forward(step[b]);
    Tensor row(DType::F32, {1, V});
    std::copy(got.data<float>() + b * V, got.data<float>() + (b + 1) * V, row.mutable_data<float>());
    expect_logits_close(row, want, "batched fused decode, sequence " + std::to_string(b), 5e-3);
  }
}

TEST_CASE("W8A8 (int8 activations per token and static) and a ragged last group match the CPU session") {
  LLMC_REQUIRE_GPU();
  for (const char* act : {"dynamic", "static"}) {
    CAPTURE(act);
    Model m = tiny_llama(TinyShape{}, 3);
    quantize_decoder_linears(m, 8, 0, true);
    for (Node& n : m.graph.nodes)
      if (n.op == "LinearQ") {
        n.attrs["act"] = std::string(act);
        if (std::string(act) == "static") n.attrs["act_scale"] = 0.03;
      }
    CudaOptions opt;
    opt.max_context = 128;
    // Both sides quantize every linear's input to int8, the GPU from its f16 activations, which
    // differ from the CPU's f32 ones by δ ≈ 1e-3·|x|. An element within δ of a rounding boundary
    // lands one step s ≈ max|x|/127 apart: with |x|/s ~ 30 that is ~3% of the elements per
    // linear, each moved by s, about 5× the f16 error itself, compounding over the 8 quantized
    // linears of two blocks. Measured on H100: 2.1-3.0% of the logits (rel. l2), perplexity
    // 0.8% apart; the dense and W4/W8-A16 variants stay within 5e-3 and 5e-4.
    compare_prefill_decode(m, opt, 37, 4, 60, 6e-2);
    compare_prefill_decode(m, opt, 5, 2, 61, 6e-2);
    compare_perplexity(m, 62, 2e-2);
  }
  // 320 inputs in groups of 128: the last group holds 64 columns
  TinyShape s;
  s.hidden = 320;
  s.inter = 640;
  s.heads = 5;
  s.kv_heads = 5;
  Model m = tiny_llama(s, 4);
  quantize_decoder_linears(m, 4, 128, false);
  CudaOptions opt;
  opt.max_context = 128;
  compare_prefill_decode(m, opt, 40, 3, 63);
  compare_perplexity(m, 64);
}

TEST_CASE("a quantized embedding table (EmbeddingQ) matches the CPU session") {
  LLMC_REQUIRE_GPU();
  Model m = tiny_llama(TinyShape{}, 6);
  quantize_decoder_linears(m, 4, 64, true);
  Graph& g = m.graph;
  const std::string table = "model.embed_tokens.weight";
  g.quantized[table] = rtn_quantize(g.weights.at(table), 8, 64, true);
  g.weights.erase(table);
  for (Node& n : g.nodes)
    if (n.op == "Embedding") {
      n.op = "EmbeddingQ";
      n.inputs = {n.inputs[1]};
      n.attrs = {{"weight", table}};
    }
  CudaOptions opt;
  opt.max_context = 128;
  compare_prefill_decode(m, opt, 30, 3, 75);
  compare_perplexity(m, 76);
}

TEST_CASE("tiny GPT-2 (learned positions, LayerNorm with bias, GELU tanh, biases, tied head) matches") {
  LLMC_REQUIRE_GPU();
  const Model m = tiny_gpt2(4);
  CudaOptions opt;
  opt.max_context = 128;
  compare_prefill_decode(m, opt, 50, 6, 40);
  compare_perplexity(m, 41);
}

TEST_CASE("CudaSession errors name the node, the format and the numbers") {
  LLMC_REQUIRE_GPU();
  SUBCASE("act-order") {
    Model m = tiny_llama(TinyShape{}, 5);
    quantize_decoder_linears(m, 4, 32, true);
    auto& w = m.graph.quantized.at("model.layers.1.mlp.up_proj.weight");
    // groups of 33 and 31 columns: act-order as GPTQ writes it gives each group_size columns
    w.g_idx.resize(static_cast<size_t>(w.cols));
    for (int64_t c = 0; c < w.cols; ++c) w.g_idx[c] = static_cast<int32_t>(c == 32 ? 0 : c / 32);
    const std::string e = error_of([&] { CudaSession s(m, CudaOptions{}); });
    INFO(e);
    CHECK(has(e, "node 'model.layers.1.mlp.up_proj'"));
    CHECK(has(e, "act-order g_idx gives group 0 33 columns"));
  }
  SUBCASE("int8 activations over an INT4 group-wise weight") {
    Model m = tiny_llama(TinyShape{}, 6);
    quantize_decoder_linears(m, 4, 64, true);
    for (Node& n : m.graph.nodes)
      if (n.name == "model.layers.0.self_attn.o_proj") n.attrs["act"] = std::string("dynamic");
    const std::string e = error_of([&] { CudaSession s(m, CudaOptions{}); });
    INFO(e);
    CHECK(has(e, "o_proj"));
    CHECK(has(e, "W4A8 g64"));
    CHECK(has(e, "INT8 symmetric per-channel"));
  }
  SUBCASE("unsupported op") {
    Model m = tiny_llama(TinyShape{}, 7);
    Node relu{"Relu", "", "odd_relu", {m.graph.nodes[0].outputs[0]}, {"relu_out"}, {}};
    m.graph.nodes.insert(m.graph.nodes.begin() + 1, relu);
    const std::string e = error_of([&] { CudaSession s(m, CudaOptions{}); });
    INFO(e);
    CHECK(has(e, "'Relu'"));
    CHECK(has(e, "odd_relu"));
    CHECK(has(e, "not supported"));
  }
  SUBCASE("too large for the device: needed vs free, before any upload") {
    const Model m = tiny_llama(TinyShape{}, 8);
    CudaOptions opt;
    opt.max_context = int64_t{1} << 22;
    opt.max_batch = 64;  // 64 × 4M positions × 2 layers × 2 × 128 × 2 bytes of KV cache: 256 GiB
    opt.max_tokens = 16;
    const std::string e = error_of([&] { CudaSession s(m, opt); });
    INFO(e);
    CHECK(has(e, "needs"));
    CHECK(has(e, "KV cache 262144.0 MiB"));
    CHECK(has(e, "are free"));
  }
  SUBCASE("ids outside the vocabulary and contexts beyond max_context") {
    const Model m = tiny_llama(TinyShape{}, 9);
    CudaOptions opt;
    opt.max_context = 32;
    CudaSession gpu(m, opt);
    CHECK(has(error_of([&] { gpu.forward({1, 300}); }), "token id 300"));
    CHECK(has(error_of([&] { gpu.forward(random_ids(33, 300, 1)); }), "max_context"));
  }
}
