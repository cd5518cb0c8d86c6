// bench_kernels: times the CUDA linear kernels on Llama-7B shapes against cuBLAS f16 and the
// device's measured copy bandwidth; prints a table and writes JSON (--json FILE).
// Each weight is rotated through ≥ 4 copies and ≥ 200 MB so that no call finds it in L2.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernels/cuda/dense_gemm.hpp"
#include "kernels/cuda/int8_gemm.hpp"
#include "kernels/cuda/noop.hpp"
#include "kernels/cuda/prefill.hpp"
#include "kernels/cuda/quant_gemv.hpp"
#include "kernels/cuda/quant_gemv_fused.hpp"
#include "kernels/cuda/sparse_gemv.hpp"
#include "kernels/cuda/sparse_gemm.hpp"
#include "runtime/ir/dtype.hpp"

using namespace llmc;
using namespace llmc::kernels::cuda;

namespace {

constexpr size_t kRotateBytes = 200u << 20;

struct Rng {  // xorshift64*: fast enough for ~10⁸ values, and seeded
  uint64_t s;
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
  }
  float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f; }
};

// Act-order groups as GPTQ writes them: the columns in a random order, each run of group_size of
// them one group.
void set_act_order(QuantizedWeight& w, uint64_t seed) {
  Rng r{seed * 0x9E3779B97F4A7C15ULL + 3};
  std::vector<int32_t> order(static_cast<size_t>(w.cols));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  for (size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[r.next() % (i + 1)]);
  w.g_idx.assign(order.size(), 0);
  for (size_t j = 0; j < order.size(); ++j) w.g_idx[static_cast<size_t>(order[j])] = static_cast<int32_t>(j / w.group_len());
}

std::vector<uint16_t> random_f16(size_t n, uint64_t seed, float scale) {
  Rng r{seed * 0x9E3779B97F4A7C15ULL + 1};
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = f32_to_f16(scale * r.uniform());
  return v;
}

QuantizedWeight random_weight(int bits, int64_t n, int64_t k, int64_t gs, uint64_t seed) {
  QuantizedWeight w;
  w.bits = bits;
  w.rows = n;
  w.cols = k;
  w.group_size = gs;
  w.symmetric = true;
  Rng r{seed * 0x9E3779B97F4A7C15ULL + 7};
  w.packed.resize(static_cast<size_t>(bits == 4 ? n * k / 2 : n * k));
  for (auto& b : w.packed) b = static_cast<uint8_t>(r.next() >> 56);  // every code is valid
  w.scales.resize(static_cast<size_t>(n * w.n_groups()));
  for (auto& s : w.scales) s = f32_to_f16(0.026f + 0.024f * r.uniform());
  return w;
}

// Median seconds per call: `call(i)` (i selects the weight copy) captured `batch` times into a CUDA
// graph, the graph replayed `runs` times after warm-up, each replay timed with events.
double time_per_call(cudaStream_t s, int batch, int runs, const std::function<void(int)>& call) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  LLMC_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < batch; ++i) call(i);
  LLMC_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
  LLMC_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  for (int i = 0; i < 3; ++i) LLMC_CUDA_CHECK(cudaGraphLaunch(exec, s));
  cudaEvent_t a, b;
  LLMC_CUDA_CHECK(cudaEventCreate(&a));
  LLMC_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<double> t(runs);
  for (int r = 0; r < runs; ++r) {
    LLMC_CUDA_CHECK(cudaEventRecord(a, s));
    LLMC_CUDA_CHECK(cudaGraphLaunch(exec, s));
    LLMC_CUDA_CHECK(cudaEventRecord(b, s));
    LLMC_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    LLMC_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t[r] = ms * 1e-3 / batch;
  }
  LLMC_CUDA_CHECK(cudaEventDestroy(a));
  LLMC_CUDA_CHECK(cudaEventDestroy(b));
  LLMC_CUDA_CHECK(cudaGraphExecDestroy(exec));
  LLMC_CUDA_CHECK(cudaGraphDestroy(graph));
  std::nth_element(t.begin(), t.begin() + runs / 2, t.end());
  return t[runs / 2];
}

int copies_for(size_t bytes) { return std::max<int>(4, static_cast<int>((kRotateBytes + bytes - 1) / bytes)); }

struct Row {
  int64_t n, k, m;
  std::string kernel;
  double us, bytes, flops, cublas_us;
};

void log_row(const Row& r) {  // progress on stderr, so a failure later still leaves the numbers
  std::fprintf(stderr, "  %lldx%lld m=%lld %-32s %9.2f us\n", static_cast<long long>(r.n), static_cast<long long>(r.k),
               static_cast<long long>(r.m), r.kernel.c_str(), r.us);
}

}  // namespace

int main(int argc, char** argv) {
  constexpr int64_t kMaxRows = 11264;  // the largest N of the shapes below (--tinyllama: gate|up), and of --shape
  std::string json_path;
  int runs = 100;
  bool quick = false;
  int64_t shape_n = 0, shape_k = 0;  // --shape NxK: that shape only
  bool only_w8a8_sparse = false, sparse_search = false, sparse_layouts = false, tinyllama = false, decode = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else if (a == "--runs" && i + 1 < argc) {
      runs = std::max(50, std::atoi(argv[++i]));
    } else if (a == "--quick") {
      quick = true;  // only 11008×4096 (profiling, smoke tests)
    } else if (a == "--shape" && i + 1 < argc) {  // one N×K only (profiling one kernel with ncu)
      const std::string v = argv[++i];
      const size_t xpos = v.find('x');
      if (xpos != std::string::npos) {
        shape_n = std::atoll(v.substr(0, xpos).c_str());
        shape_k = std::atoll(v.substr(xpos + 1).c_str());
      }
      if (shape_n <= 0 || shape_k <= 0 || shape_n > kMaxRows) {
        std::fprintf(stderr, "bench_kernels: --shape wants NxK with 1 <= N <= %lld, got %s\n",
                     static_cast<long long>(kMaxRows), v.c_str());
        return 2;
      }
    } else if (a == "--sparse-search") {
      sparse_search = true;  // also time cuSPARSELt plans chosen by timing every configuration
    } else if (a == "--sparse-layouts") {
      sparse_layouts = true;  // 2:4 rows for every operand layout cuSPARSELt plans, not only kSparseA
    } else if (a == "--tinyllama") {
      tinyllama = true;  // TinyLlama-1.1B's decode linears (q|k|v, o, gate|up, down) at M = 1 and 16 instead
    } else if (a == "--decode") {
      decode = true;  // M = 1 and 16 only, without the W8A8 and cuSPARSELt rows (the decode GEMVs)
    } else if (a == "--w8a8-sparse") {
      only_w8a8_sparse = true;  // cuBLAS f16, W8A8 and 2:4 sparse rows only
    } else {
      std::fprintf(stderr, "usage: bench_kernels [--json FILE] [--runs N≥50] [--quick] [--shape NxK] [--w8a8-sparse] [--sparse-search] [--sparse-layouts] [--tinyllama] [--decode]\n");
      return 2;
    }
  }
  try {
    int dev = 0;
    cudaDeviceProp prop{};
    LLMC_CUDA_CHECK(cudaGetDevice(&dev));
    LLMC_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    cudaStream_t s;
    LLMC_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    const CublasHandle cublas;
    std::fprintf(stderr, "device: %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);

    // Bandwidth floor: a 1 GiB device-to-device copy, bytes read + written over time.
    const size_t copy_bytes = size_t{1} << 30;
    double copy_bw = 0;
    {
      DeviceBuffer<uint8_t> src(copy_bytes), dst(copy_bytes);
      LLMC_CUDA_CHECK(cudaMemset(src.data(), 0x5A, copy_bytes));
      const double t = time_per_call(s, 2, 50, [&](int) {
        LLMC_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), copy_bytes, cudaMemcpyDeviceToDevice, s));
      });
      copy_bw = 2.0 * copy_bytes / t;
    }
    // Compute ceiling for reference: an 8192³ f16 GEMM through cuBLAS.
    double gemm_tflops = 0;
    {
      const int64_t d = 8192;
      DeviceBuffer<uint16_t> a(random_f16(d * d, 1, 1.0f)), b(random_f16(d * d, 2, 0.05f)), c(d * d);
      const double t = time_per_call(s, 2, 50, [&](int) { linear_f16(cublas, a.data(), b.data(), c.data(), d, d, d, s); });
      gemm_tflops = 2.0 * d * d * d / t * 1e-12;
    }
    // Per-launch overhead included in every per-call time below (graph node to graph node).
    const double noop_us = 1e6 * time_per_call(s, 40, runs, [&](int) { launch_noop(s); });
    std::fprintf(stderr, "copy bandwidth %.0f GB/s, f16 GEMM %.0f TFLOP/s, empty kernel %.2f us\n", copy_bw * 1e-9,
                 gemm_tflops, noop_us);
    // Launch variants of the W4 GEMV (quant_gemv.hpp, GemvOptions): the default overlaps each
    // launch with the previous kernel's tail; "serial" shows what that is worth.
    GemvWorkspace ws(kMaxRows, 16);
    struct Variant {
      const char* name;
      GemvWorkspace ws;
    };
    Variant variants[] = {{"w4a16_g128_gemv_serial", GemvWorkspace(kMaxRows, 16, GemvOptions{false})}};
    PrefillPipeline pipe;
    struct Sweep {
      int64_t n, k, m;
      int splits_asked, splits;
      double us;
    };
    std::vector<Sweep> sweep;
    struct FusedSweep {
      int64_t n, k, m;
      int warps, tiles_per_block;
      bool own_choice;  // gemv_fused's own choice for this shape
      double us;
    };
    std::vector<FusedSweep> fused_sweep;

    struct Shape {
      int64_t n, k;
    };
    std::vector<Shape> shapes = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
    if (quick) shapes = {{11008, 4096}};
    std::vector<int64_t> ms = {1, 16, 128, 2048};
    if (tinyllama) shapes = {{2560, 2048}, {2048, 2048}, {11264, 2048}, {2048, 5632}};
    if (tinyllama || decode) ms = {1, 16};
    if (shape_n > 0) shapes = {{shape_n, shape_k}};
    const int64_t max_m = 2048;
    int64_t max_n = 0, max_k = 0;  // the contexts below cover every shape
    for (const Shape& sh : shapes) max_n = std::max(max_n, sh.n), max_k = std::max(max_k, sh.k);
    std::vector<Row> rows;
    uint64_t seed = 10;
    W8A8Context w8a8_ctx(max_m, max_n, max_k);
    // 2:4 sparse: per operand layout, cuSPARSELt's default configuration and (--sparse-search,
    // cuSPARSELt >= 0.10) the searched one; weights are compressed per layout
    struct SparseRow {
      SparseLayout layout;
      std::unique_ptr<SparseContext> ctx;
      std::string name;
      std::vector<Sparse24Weight> w;
    };
    std::vector<SparseRow> sparse_rows;
    if (sparse24_available() && !decode) {
      const int version = sparse24_library_version();
      std::fprintf(stderr, "cuSPARSELt %d\n", version);
      for (const SparseLayout l : {SparseLayout::kSparseA, SparseLayout::kSparseAT, SparseLayout::kSparseB,
                                   SparseLayout::kSparseBT}) {
        if (l != SparseLayout::kSparseA && !sparse_layouts) continue;
        if (!sparse24_layout_supported(l)) {
          std::fprintf(stderr, "cuSPARSELt makes no plan for layout %s\n", sparse_layout_name(l));
          continue;
        }
        const std::string suffix = l == SparseLayout::kSparseA ? "" : std::string("_") + sparse_layout_name(l);
        sparse_rows.push_back({l, std::make_unique<SparseContext>(max_m, max_n, max_k, false, l),
                               "sparse24_f16_default" + suffix, {}});
        if (sparse_search && version >= 1000)
          sparse_rows.push_back({l, std::make_unique<SparseContext>(max_m, max_n, max_k, true, l),
                                 "sparse24_f16_searched" + suffix, {}});
      }
      if (sparse_search && version < 1000) std::fprintf(stderr, "cuSPARSELt < 0.10: no searched rows\n");
    } else if (!decode) {
      std::fprintf(stderr, "built without cuSPARSELt: no 2:4 sparse rows\n");
    }
    std::fprintf(stderr, "W8A8 CUTLASS sm_90 path: %s\n", int8_cutlass_available() ? "yes" : "no (cuBLASLt only)");
    for (const Shape sh : shapes) {
      const int64_t n = sh.n, k = sh.k;
      std::fprintf(stderr, "shape %lld x %lld: preparing weights\n", static_cast<long long>(n), static_cast<long long>(k));
      // dense f16 copies
      std::vector<DeviceBuffer<uint16_t>> dense;
      dense.emplace_back(random_f16(static_cast<size_t>(n * k), ++seed, 0.05f));
      const int dense_copies = copies_for(dense[0].bytes());
      while (static_cast<int>(dense.size()) < dense_copies) dense.push_back(dense[0].clone());
      // W4 sym g128 and W8 sym per-channel copies
      std::vector<GpuQuantWeight> w4, w8;
      w4.push_back(GpuQuantWeight::upload(random_weight(4, n, k, 128, ++seed), "w4"));
      w8.push_back(GpuQuantWeight::upload(random_weight(8, n, k, 0, ++seed), "w8"));
      while (static_cast<int>(w4.size()) < copies_for(w4[0].weight_bytes())) w4.push_back(w4[0].clone());
      while (static_cast<int>(w8.size()) < copies_for(w8[0].weight_bytes())) w8.push_back(w8[0].clone());
      // W4 sym g128 with act-order groups: the same kernels, gathering their input by the
      // weight's column permutation
      std::vector<GpuQuantWeight> w4a;
      {
        QuantizedWeight q = random_weight(4, n, k, 128, ++seed);
        set_act_order(q, ++seed);
        w4a.push_back(GpuQuantWeight::upload(q, "w4a"));
      }
      while (static_cast<int>(w4a.size()) < copies_for(w4a[0].weight_bytes())) w4a.push_back(w4a[0].clone());
      const int n4a = static_cast<int>(w4a.size());
      // 2:4 W4 sym g128: the W4 weight with two of every four codes set to value 0 (which two
      // varies along the row)
      std::vector<GpuSparse24QWeight> w24;
      {
        QuantizedWeight q = random_weight(4, n, k, 128, ++seed);
        for (int64_t r = 0; r < n; ++r)
          for (int64_t c = 0; c < k; c += 4) {
            const int keep = static_cast<int>((r * 7 + c / 4 * 3) % 6), pairs[6][2] = {{0, 1}, {0, 2}, {0, 3},
                                                                                     {1, 2}, {1, 3}, {2, 3}};
            for (int e = 0; e < 4; ++e)
              if (e != pairs[keep][0] && e != pairs[keep][1]) q.set_q(r, c + e, 0);
          }
        w24.push_back(GpuSparse24QWeight::upload(q, "w24"));
      }
      while (static_cast<int>(w24.size()) < copies_for(w24[0].weight_bytes())) w24.push_back(w24[0].clone());
      const int n24 = static_cast<int>(w24.size());
      DeviceBuffer<uint16_t> x(random_f16(static_cast<size_t>(max_m * k), ++seed, 1.0f));
      DeviceBuffer<uint16_t> y(static_cast<size_t>(max_m * n)), scratch(static_cast<size_t>(quantized_prefill_scratch(n, k, true, max_m)));
      const int nd = static_cast<int>(dense.size()), n4 = static_cast<int>(w4.size()), n8 = static_cast<int>(w8.size());
      // W8A8: INT8 per-channel weight copies; activations quantized once (gemm rows) or in the
      // timed call (linear rows, from f16 x). Not with --decode, which has no W8A8 rows (the seed
      // advances either way, so the other rows' data do not depend on the flag).
      std::vector<Int8Weight> wi8;
      const uint64_t w8a8_seed = ++seed;
      if (!decode) {
        wi8.push_back(Int8Weight::upload(random_weight(8, n, k, 0, w8a8_seed), "w8a8"));
        while (static_cast<int>(wi8.size()) < copies_for(wi8[0].weight_bytes())) wi8.push_back(wi8[0].clone());
        quantize_act_s8(x.data(), nullptr, w8a8_ctx.qx(), w8a8_ctx.sx(), max_m, k, wi8[0].k_pad(), 0.0f, s);
      }
      const int ni8 = static_cast<int>(wi8.size());
      // 2:4 sparse f16: the dense random weight with two of each four inputs zeroed (varying
      // positions), compressed once for cuSPARSELt and packed once for gemv_sparse24_f16.
      std::vector<GpuSparse24F16Weight> wf24;
      {
        std::vector<uint16_t> h = random_f16(static_cast<size_t>(n * k), ++seed, 0.05f);
        Rng r{seed};
        for (size_t g = 0; g < h.size() / 4; ++g) {
          const int a = static_cast<int>(r.next() >> 62), b = (a + 1 + static_cast<int>((r.next() >> 32) % 3)) % 4;
          for (int i = 0; i < 4; ++i)
            if (i != a && i != b) h[4 * g + i] = 0;
        }
        if (!only_w8a8_sparse) {
          wf24.push_back(GpuSparse24F16Weight::upload(h.data(), n, k, "wf24"));
          while (static_cast<int>(wf24.size()) < copies_for(wf24[0].weight_bytes())) wf24.push_back(wf24[0].clone());
        }
        for (SparseRow& sr : sparse_rows) {
          sr.w.clear();  // the previous shape's copies
          sr.w.push_back(Sparse24Weight::upload_f16(*sr.ctx, h.data(), n, k, "w24"));
          while (static_cast<int>(sr.w.size()) < copies_for(sr.w[0].compressed_bytes())) sr.w.push_back(sr.w[0].clone());
        }
      }

      for (int64_t m : ms) {
        const double flops = 2.0 * m * n * k, act = 2.0 * (m * k + m * n);
        const int batch = m <= 16 ? 40 : (m <= 128 ? 12 : 4);
        const double t_cublas = time_per_call(s, batch, runs, [&](int i) {
          linear_f16(cublas, x.data(), dense[i % nd].data(), y.data(), m, n, k, s);
        });
        rows.push_back({n, k, m, "cublas_f16", t_cublas * 1e6, act + 2.0 * n * k, flops, t_cublas * 1e6});
        log_row(rows.back());
        if (!decode) {
          const double wb = static_cast<double>(wi8[0].weight_bytes());
          auto w8a8_row = [&](const char* name, Int8Backend be, bool with_quant) {
            const auto call = [&](int i) {
              if (with_quant)
                linear_w8a8(w8a8_ctx, x.data(), wi8[i % ni8], nullptr, 0.0f, nullptr, y.data(), m, s, 0, be);
              else
                gemm_w8a8(w8a8_ctx, w8a8_ctx.qx(), w8a8_ctx.sx(), wi8[i % ni8], nullptr, y.data(), m, s, 0, be);
            };
            call(0);  // cuBLASLt's heuristic runs on the first call per m, outside the graph
            const double t = time_per_call(s, batch, runs, call);
            // bytes: weight, int8 activations (f16 x read + int8 written and read when quantizing), f16 y
            const double b = wb + (with_quant ? 4.0 : 1.0) * m * k + 2.0 * m * n;
            rows.push_back({n, k, m, name, t * 1e6, b, flops, t_cublas * 1e6});
            log_row(rows.back());
          };
          if (int8_cutlass_available()) w8a8_row("w8a8_gemm_cutlass", Int8Backend::kCutlass, false);
          w8a8_row("w8a8_gemm_cublaslt", Int8Backend::kCublasLt, false);
          w8a8_row("w8a8_linear_dyn_quant", Int8Backend::kAuto, true);
          for (SparseRow& sr : sparse_rows) {
            const int n24 = static_cast<int>(sr.w.size());
            sparse24_prepare(*sr.ctx, sr.w[0], m, s);  // plan (and search) outside the graph
            const double t = time_per_call(s, batch, runs, [&](int i) {
              linear_sparse24(*sr.ctx, sr.w[i % n24], x.data(), y.data(), m, s);
            });
            rows.push_back({n, k, m, sr.name, t * 1e6, static_cast<double>(sr.w[0].compressed_bytes()) + act, flops,
                            t_cublas * 1e6});
            log_row(rows.back());
          }
        }
        if (only_w8a8_sparse) continue;
        if (m <= 16) {
          const double t4 = time_per_call(s, batch, runs, [&](int i) { gemv_quantized(w4[i % n4], x.data(), y.data(), m, ws, s); });
          rows.push_back({n, k, m, "w4a16_g128_gemv", t4 * 1e6, act + w4[0].weight_bytes(), flops, t_cublas * 1e6});
          log_row(rows.back());
          for (Variant& v : variants) {
            const double tv = time_per_call(s, batch, runs, [&](int i) { gemv_quantized(w4[i % n4], x.data(), y.data(), m, v.ws, s); });
            rows.push_back({n, k, m, v.name, tv * 1e6, act + w4[0].weight_bytes(), flops, t_cublas * 1e6});
            log_row(rows.back());
          }
          if (gemv_sparse24_fits(w24[0].layout(), m)) {
            const double t24 = time_per_call(s, batch, runs, [&](int i) {
              gemv_sparse24_w4(w24[i % n24], x.data(), y.data(), m, s);
            });
            rows.push_back({n, k, m, "w4a16_2of4_gemv", t24 * 1e6, act + w24[0].weight_bytes(), flops, t_cublas * 1e6});
            log_row(rows.back());
            const int nf = static_cast<int>(wf24.size());
            const double tf = time_per_call(s, batch, runs, [&](int i) {
              gemv_sparse24_f16(wf24[i % nf], x.data(), y.data(), m, s);
            });
            rows.push_back({n, k, m, "f16_2of4_gemv", tf * 1e6, act + wf24[0].weight_bytes(), flops, t_cublas * 1e6});
            log_row(rows.back());
          }
          if (gemv_fused_fits(w4[0].layout(), m)) {
            // The fused GEMV without prologue/epilogue work (the K reduction inside one block), and
            // its sensitivity to tiles per block.
            const GemvFusedConfig own = gemv_fused_config(w4[0].layout(), m, w4[0].sm_count());
            for (int warps : {8, 16})
              for (int tpb = 1; tpb <= warps; tpb *= 2) {
                const bool is_own = warps == own.warps && tpb == own.tiles_per_block;
                const double tf = time_per_call(s, batch, is_own ? runs : 50, [&](int i) {
                  gemv_fused(w4[i % n4], GemvPrologue{GemvPrologue::Kind::None, Act{x.data(), k, ActType::F16}},
                             GemvEpilogue{Act{y.data(), n, ActType::F16}, nullptr, Act{}}, m, s, GemvFusedConfig{warps, tpb});
                });
                if (is_own) {
                  rows.push_back({n, k, m, "w4a16_g128_gemv_fused", tf * 1e6, act + w4[0].weight_bytes(), flops, t_cublas * 1e6});
                  log_row(rows.back());
                }
                fused_sweep.push_back({n, k, m, warps, tpb, is_own, tf * 1e6});
              }
          }
          for (int sp : {0, 1, 2, 4, 8, 16}) {  // split-K sensitivity (0: the planner's choice)
            GemvWorkspace& vw = ws;
            const GemvPlan plan = plan_gemv(w4[0].layout(), m, w4[0].sm_count(), ws.max_splits(), sp);
            if (plan.smem_bytes > prop.sharedMemPerBlockOptin) continue;  // K slice too long for one block
            const int used = plan.splits;
            const double ts = time_per_call(s, batch, 50, [&](int i) {
              gemv_quantized(w4[i % n4], x.data(), y.data(), m, vw, s, sp);
            });
            sweep.push_back({n, k, m, sp, used, ts * 1e6});
          }
          const double ta = time_per_call(s, batch, runs, [&](int i) { gemv_quantized(w4a[i % n4a], x.data(), y.data(), m, ws, s); });
          rows.push_back({n, k, m, "w4a16_g128_act_order_gemv", ta * 1e6, act + w4a[0].weight_bytes(), flops, t_cublas * 1e6});
          log_row(rows.back());
          if (gemv_fused_fits(w4a[0].layout(), m)) {
            const double tf = time_per_call(s, batch, runs, [&](int i) {
              gemv_fused(w4a[i % n4a], GemvPrologue{GemvPrologue::Kind::None, Act{x.data(), k, ActType::F16}},
                         GemvEpilogue{Act{y.data(), n, ActType::F16}, nullptr, Act{}}, m, s);
            });
            rows.push_back({n, k, m, "w4a16_g128_act_order_gemv_fused", tf * 1e6, act + w4a[0].weight_bytes(), flops,
                            t_cublas * 1e6});
            log_row(rows.back());
          }
          const double t8 = time_per_call(s, batch, runs, [&](int i) { gemv_quantized(w8[i % n8], x.data(), y.data(), m, ws, s); });
          rows.push_back({n, k, m, "w8a16_perchannel_gemv", t8 * 1e6, act + w8[0].weight_bytes(), flops, t_cublas * 1e6});
          log_row(rows.back());
        } else {
          const double tp = time_per_call(s, batch, runs, [&](int i) {
            linear_quantized_prefill(w4[i % n4], cublas, x.data(), y.data(), m, scratch.data(), s);
          });
          rows.push_back({n, k, m, "w4a16_g128_prefill", tp * 1e6,
                          act + w4[0].weight_bytes() + 4.0 * n * k /* scratch written and read */, flops,
                          t_cublas * 1e6});
          log_row(rows.back());
          const double tpp = time_per_call(s, batch, runs, [&](int i) {
            linear_quantized_prefill_pipelined(w4[i % n4], cublas, pipe, x.data(), y.data(), m, scratch.data(), s);
          });
          rows.push_back({n, k, m, "w4a16_g128_prefill_pipelined", tpp * 1e6,
                          act + w4[0].weight_bytes() + 4.0 * n * k, flops, t_cublas * 1e6});
          log_row(rows.back());
          const double tpa = time_per_call(s, batch, runs, [&](int i) {
            linear_quantized_prefill(w4a[i % n4a], cublas, x.data(), y.data(), m, scratch.data(), s);
          });
          // bytes: as the prefill row, plus the input gathered (m·K halves written and read)
          rows.push_back({n, k, m, "w4a16_g128_act_order_prefill", tpa * 1e6,
                          act + w4a[0].weight_bytes() + 4.0 * n * k + 4.0 * m * k, flops, t_cublas * 1e6});
          log_row(rows.back());
        }
      }
      if (!only_w8a8_sparse && !decode) {  // the dequantization alone (the prefill path's overhead over cuBLAS)
        const double td = time_per_call(s, 12, runs, [&](int i) { dequantize_to_f16(w4[i % n4], scratch.data(), s); });
        rows.push_back({n, k, 0, "w4_dequant_to_f16", td * 1e6, w4[0].weight_bytes() + 2.0 * n * k, 0, 0});
        log_row(rows.back());
        const double t24 = time_per_call(s, 12, runs, [&](int i) {
          dequantize_sparse24_w4_to_f16(w24[i % n24], scratch.data(), s);
        });
        rows.push_back({n, k, 0, "w4_2of4_dequant_to_f16", t24 * 1e6, w24[0].weight_bytes() + 2.0 * n * k, 0, 0});
        log_row(rows.back());
      }
    }

    for (SparseRow& sr : sparse_rows)
      if (!sparse24_search_report(*sr.ctx).empty())
        std::fprintf(stderr, "cuSPARSELt configuration search, %s (us per call):\n%s", sr.name.c_str(),
                     sparse24_search_report(*sr.ctx).c_str());
    std::printf("device: %s (%d SMs, L2 %d MB); copy bandwidth %.0f GB/s (1 GiB D2D, read+write); f16 GEMM 8192^3 %.0f TFLOP/s\n",
                prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20, copy_bw * 1e-9, gemm_tflops);
    nlohmann::json j;
    j["device"] = prop.name;
    j["sm_count"] = prop.multiProcessorCount;
    j["l2_bytes"] = prop.l2CacheSize;
    j["copy_bandwidth_GBps"] = copy_bw * 1e-9;
    j["gemm_f16_8192_TFLOPs"] = gemm_tflops;
    j["runs"] = runs;
    j["empty_kernel_us"] = noop_us;
    j["w4_split_sweep"] = nlohmann::json::array();
    j["cusparselt_version"] = sparse24_library_version();
    for (SparseRow& sr : sparse_rows)
      if (!sparse24_search_report(*sr.ctx).empty()) j["sparse_search_report"][sr.name] = sparse24_search_report(*sr.ctx);
    std::printf("empty kernel (per-launch overhead inside every figure): %.2f us\n", noop_us);
    std::printf("W4 g128 GEMV split-K sweep, us per call (asked splits -> used):");
    for (const Sweep& w : sweep) {
      if (w.splits_asked == 0)
        std::printf("\n  %lldx%lld m=%lld: planner %d -> %.2f", static_cast<long long>(w.n), static_cast<long long>(w.k),
                    static_cast<long long>(w.m), w.splits, w.us);
      else
        std::printf(" | %d->%d %.2f", w.splits_asked, w.splits, w.us);
      j["w4_split_sweep"].push_back({{"n", w.n}, {"k", w.k}, {"m", w.m}, {"splits_asked", w.splits_asked},
                                     {"splits", w.splits}, {"us", w.us}});
    }
    std::printf("\n");
    std::printf("W4 g128 fused GEMV, us per call by warps/tiles per block (* its own choice):");
    j["w4_fused_tpb_sweep"] = nlohmann::json::array();
    for (size_t i = 0; i < fused_sweep.size(); ++i) {
      const FusedSweep& w = fused_sweep[i];
      if (i == 0 || fused_sweep[i - 1].n != w.n || fused_sweep[i - 1].k != w.k || fused_sweep[i - 1].m != w.m)
        std::printf("\n  %lldx%lld m=%lld:", static_cast<long long>(w.n), static_cast<long long>(w.k),
                    static_cast<long long>(w.m));
      std::printf(" | %d/%d%s %.2f", w.warps, w.tiles_per_block, w.own_choice ? "*" : "", w.us);
      j["w4_fused_tpb_sweep"].push_back({{"n", w.n}, {"k", w.k}, {"m", w.m}, {"warps", w.warps},
                                         {"tiles_per_block", w.tiles_per_block}, {"own_choice", w.own_choice}, {"us", w.us}});
    }
    std::printf("\n");
    j["rows"] = nlohmann::json::array();
    std::printf("%-6s %-6s %-5s %-29s %9s %8s %8s %10s %9s\n", "N", "K", "M", "kernel", "us", "GB/s", "TFLOP/s",
                "vs cuBLAS", "of copyBW");
    for (const Row& r : rows) {
      const double t = r.us * 1e-6, gbps = r.bytes / t * 1e-9, tf = r.flops / t * 1e-12;
      const double speedup = r.cublas_us > 0 ? r.cublas_us / r.us : 0, of_bw = r.bytes / t / copy_bw;
      std::printf("%-6lld %-6lld %-5lld %-29s %9.2f %8.0f %8.2f %9.2fx %8.0f%%\n", static_cast<long long>(r.n),
                  static_cast<long long>(r.k), static_cast<long long>(r.m), r.kernel.c_str(), r.us, gbps, tf, speedup,
                  100 * of_bw);
      j["rows"].push_back({{"n", r.n}, {"k", r.k}, {"m", r.m}, {"kernel", r.kernel}, {"us", r.us}, {"bytes", r.bytes},
                           {"flops", r.flops}, {"GBps", gbps}, {"TFLOPs", tf}, {"speedup_vs_cublas_f16", speedup},
                           {"fraction_of_copy_bandwidth", of_bw}, {"cublas_f16_us", r.cublas_us}});
    }
    if (!json_path.empty()) {
      std::ofstream f(json_path);
      f << j.dump(2) << "\n";
      if (!f) throw Error("bench_kernels: cannot write " + json_path, ErrorKind::Runtime);
    }
    LLMC_CUDA_CHECK(cudaStreamDestroy(s));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_kernels: %s\n", e.what());
    return 1;
  }
  return 0;
}
