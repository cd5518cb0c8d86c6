// CudaSession with 2:4-pruned linears against the CPU Session. Dense 2:4 weights (cuSPARSELt): the
// layout's resolution (the transposed weight where supported), every operand layout, prefill in
// chunks, decode as graph replays, and plans for a row count first seen after a decode graph was
// captured. 2:4-pruned INT4 weights: the sparse tensor-core GEMV, fused and not, against the same
// model run as plain W4.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "kernels/cuda/sparse_gemm.hpp"
#include "runtime/cuda/cuda_session.hpp"
#include "runtime/session.hpp"
#include "tests/gpu/gpu_test_util.hpp"
#include "tests/gpu/runtime/session_compare.hpp"
#include "tests/gpu/runtime/tiny_models.hpp"

using namespace llmc;
using namespace llmc::test;
using runtime::CudaOptions;
using runtime::CudaSession;
using runtime::CudaSparseLayout;
using runtime::Session;
namespace kcu = llmc::kernels::cuda;

namespace {

Model pruned_llama() {
  Model m = tiny_llama(TinyShape{}, 5);
  prune_decoder_linears_2to4(m);
  return m;
}

// With opt.max_tokens = 48: a 60-token prompt (chunks of 48 and 12 rows), 3 decode steps (the
// graph captured at 1 row), a 17-token call (32 padded rows: plans made after the capture, so the
// graph is captured again) and 2 more decode steps, each call's
// logits against the CPU session's.
void compare_across_row_counts(const Model& m, const CudaOptions& opt, uint32_t seed) {
  REQUIRE(opt.max_tokens == 48);
  REQUIRE(opt.cuda_graph);
  Session cpu(m);
  CudaSession gpu(m, opt);
  const auto ids = random_ids(60 + 3 + 17 + 2, m.config.value("vocab_size", int64_t{0}), seed);
  auto part = [&](size_t at, size_t n) { return std::vector<int64_t>(ids.begin() + at, ids.begin() + at + n); };
  expect_logits_close(gpu.forward(part(0, 60)), cpu.forward(part(0, 60)), "prefill in chunks of 48 and 12");
  for (size_t s = 0; s < 3; ++s)
    expect_logits_close(gpu.forward(part(60 + s, 1)), cpu.forward(part(60 + s, 1)), "decode step " + std::to_string(s));
  expect_logits_close(gpu.forward(part(63, 17)), cpu.forward(part(63, 17)), "17-token call after the capture");
  for (size_t s = 0; s < 2; ++s)
    expect_logits_close(gpu.forward(part(80 + s, 1)), cpu.forward(part(80 + s, 1)),
                        "decode step after new plans " + std::to_string(s));
  CHECK(gpu.past() == cpu.past());
}

// The session's plan description for the 2:4 linears names this layout.
void check_described(const CudaSession& gpu, CudaSparseLayout l) {
  const std::string plan = gpu.describe();
  INFO(plan.substr(0, 800));
  CHECK(has(plan, "(2:4 sparse f16, cuSPARSELt)"));
  CHECK(has(plan, std::string("operand layout ") + runtime::cuda_sparse_layout_name(l) + ", cuSPARSELt's default"));
  CHECK(gpu.options().sparse_layout == l);
}

}  // namespace

TEST_CASE("2:4-pruned f16 weights through the sparse GEMV (decode, with its fusions) match the CPU session") {
  LLMC_REQUIRE_GPU();
  const Model m = pruned_llama();
  int64_t dense_bytes = 0;  // the unpruned model of the same shapes, all f16
  {
    CudaOptions opt;
    opt.max_context = 128;
    dense_bytes = CudaSession(tiny_llama(TinyShape{}, 5), opt).decode_weight_bytes();
  }
  for (bool fused : {true, false}) {
    CAPTURE(fused);
    CudaOptions opt;
    opt.max_context = 128;
    opt.fused_gemv = fused;
    {
      CudaSession gpu(m, opt);
      const std::string plan = gpu.describe();
      INFO(plan.substr(0, 1200));
      CHECK(has(plan, "(2:4 sparse f16: sparse tensor-core GEMV for <= 16 rows, decompress + cuBLAS above)"));
      CHECK(!has(plan, "cuSPARSELt"));
      CHECK(gpu.options().sparse_layout == CudaSparseLayout::Auto);
      CHECK(has(plan, "[decode: RMSNorm folded in]") == fused);
      CHECK(has(plan, "[decode: SwiGLU folded in]") == fused);
      CHECK(has(plan, "[decode: + residual") == fused);
      // the decoder linears at 9/16 of their f16 bytes; the head and the norms as they were
      CHECK(gpu.decode_weight_bytes() < dense_bytes);
    }
    compare_prefill_decode(m, opt, 40, 4, 60);  // prompt: decompress + cuBLAS
    compare_prefill_decode(m, opt, 12, 3, 61);  // 12 rows through the GEMV
  }
  CudaOptions opt;
  opt.max_context = 128;
  compare_perplexity(m, 62, 5e-4, opt);
}

TEST_CASE("2:4-pruned dense weights (cuSPARSELt where the build has it) match the CPU session") {
  LLMC_REQUIRE_GPU();
  const Model m = pruned_llama();
  CudaOptions opt;
  opt.max_context = 128;
  opt.sparse_gemv = false;  // cuSPARSELt, not the sparse GEMV
  {
    CudaSession gpu(m, opt);
    MESSAGE(gpu.describe().substr(0, 600));
    if (kcu::sparse24_available()) {
      // auto: the transposed-weight layout where the library plans it
      const bool at = kcu::sparse24_layout_supported(kcu::SparseLayout::kSparseAT);
      check_described(gpu, at ? CudaSparseLayout::SparseAT : CudaSparseLayout::SparseA);
    } else {
      MESSAGE("this build has no cuSPARSELt: the 2:4 weights run as dense f16 and the layout option stays as given");
      CHECK(gpu.options().sparse_layout == CudaSparseLayout::Auto);
      CHECK(!has(gpu.describe(), "2:4 sparse linears"));
    }
  }
  compare_prefill_decode(m, opt, 40, 4, 70);
  compare_perplexity(m, 71, 5e-4, opt);
}

TEST_CASE("2:4 linears in every cuSPARSELt operand layout match the CPU session") {
  LLMC_REQUIRE_GPU();
  if (!kcu::sparse24_available()) {
    MESSAGE("skipped: this build has no cuSPARSELt (configure with LLMC_CUSPARSELT_ROOT)");
    return;
  }
  const Model m = pruned_llama();
  uint32_t seed = 80;
  for (CudaSparseLayout l : {CudaSparseLayout::SparseA, CudaSparseLayout::SparseAT, CudaSparseLayout::SparseB,
                             CudaSparseLayout::SparseBT}) {
    const std::string name = runtime::cuda_sparse_layout_name(l);
    CAPTURE(name);
    CudaOptions opt;
    opt.max_context = 128;
    opt.max_tokens = 48;
    opt.sparse_layout = l;
    seed += 5;
    if (!runtime::cuda_sparse_layout_supported(l)) {
      MESSAGE("skipped layout " << name << ": cuSPARSELt makes no plan for it on this device; asking for it is an error");
      const std::string e = error_of([&] { CudaSession s(m, opt); });
      CHECK(has(e, "makes no plan for 2:4 operand layout " + name));
      continue;
    }
    {
      CudaSession gpu(m, opt);
      check_described(gpu, l);
    }
    compare_across_row_counts(m, opt, seed);
  }
}

TEST_CASE("2:4-pruned INT4 linears run through the sparse GEMV (fused or not) and match the CPU session") {
  LLMC_REQUIRE_GPU();
  struct Q {
    int64_t group;
    bool sym;
    int64_t inter;  // 6144: down's 16 staged rows exceed the GEMV's shared memory (dequantize + cuBLAS)
  };
  uint32_t seed = 120;
  for (const Q& q : {Q{64, true, 512}, Q{32, false, 512}, Q{128, true, 6144}}) {
    CAPTURE(q.group);
    CAPTURE(q.sym);
    CAPTURE(q.inter);
    TinyShape shape;
    shape.inter = q.inter;
    shape.layers = q.inter > 512 ? 1 : 2;
    Model m = tiny_llama(shape, 9);
    prune_decoder_linears_2to4(m);
    quantize_decoder_linears(m, 4, q.group, q.sym);  // RTN keeps the pruned zeros on the grid: 2:4 codes
    int64_t dense_bytes = 0;
    for (bool sparse : {false, true})
      for (bool fused : {true, false}) {
        CAPTURE(sparse);
        CAPTURE(fused);
        CudaOptions opt;
        opt.max_context = 128;
        opt.sparse_gemv = sparse;
        opt.fused_gemv = fused;
        {
          CudaSession gpu(m, opt);
          const std::string plan = gpu.describe();
          INFO(plan.substr(0, 1200));
          CHECK(has(plan, " 2:4: sparse tensor-core GEMV for <= 16 rows") == sparse);
          CHECK(has(plan, "[decode: RMSNorm folded in]") == fused);
          CHECK(has(plan, "[decode: SwiGLU folded in]") == fused);
          if (!sparse) dense_bytes = gpu.decode_weight_bytes();
          if (sparse) {
            // codes and metadata at 3 bits a weight instead of 4: the decoder's linears dominate
            CHECK(gpu.decode_weight_bytes() < dense_bytes);
            CHECK(gpu.decode_weight_bytes() > dense_bytes / 2);
          }
        }
        compare_prefill_decode(m, opt, 23, 6, seed += 3);  // prompt: dequantize + cuBLAS
        compare_prefill_decode(m, opt, 12, 3, seed += 3);  // 12 rows through the GEMV where it stages them
      }
    CudaOptions opt;
    opt.max_context = 128;
    compare_perplexity(m, seed += 3, 5e-4, opt);
  }
}
