// cuBLAS linear_f16 against its CPU twin linear_f32, dequantize_to_f16 against dequantize()
// rounded to f16 (bit-exact), and the prefill path against linear_quantized.
#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <vector>

#include "kernels/cpu/dense.hpp"
#include "kernels/cpu/quant_gemm.hpp"
#include "kernels/cuda/prefill.hpp"
#include "tests/gpu/gpu_test_util.hpp"

using namespace llmc;
using namespace llmc::kernels::cuda;
using llmc::test::random_half;
using llmc::test::random_quantized;

TEST_CASE("linear_f16 (cuBLAS) matches the CPU twin linear_f32 on f16-rounded inputs") {
  LLMC_REQUIRE_GPU();
  const CublasHandle h;
  struct Shape {
    int64_t m, n, k;
  };
  uint32_t seed = 300;
  for (const Shape s : {Shape{1, 1000, 576}, Shape{16, 4096, 4096}, Shape{37, 300, 200}, Shape{128, 512, 320}}) {
    const auto x = random_half(s.m * s.k, ++seed), w = random_half(s.n * s.k, ++seed, 0.05f);
    std::vector<float> ref(s.m * s.n);
    kernels::cpu::linear_f32(x.vals.data(), w.vals.data(), nullptr, ref.data(), s.m, s.n, s.k);
    DeviceBuffer<uint16_t> dx(x.bits), dw(w.bits), dy(std::vector<uint16_t>(s.m * s.n, 0x7E00));
    linear_f16(h, dx.data(), dw.data(), dy.data(), s.m, s.n, s.k, nullptr);
    LLMC_CUDA_CHECK(cudaDeviceSynchronize());
    // Exact f16 products summed in f32 (CUBLAS_COMPUTE_32F) on both sides: same argument and
    // tolerance as the quantized GEMV.
    std::ostringstream what;
    what << "m=" << s.m << " n=" << s.n << " k=" << s.k;
    test::check_close(dy.download(), ref, test::abs_products(x.vals, w.vals, s.m, s.n, s.k), 1e-4, what.str());
  }
}

TEST_CASE("dequantize_to_f16 equals dequantize() rounded to f16, bit for bit") {
  LLMC_REQUIRE_GPU();
  struct Case {
    int bits;
    bool sym;
    int64_t n, k, gs;
    bool act_order = false;  // columns come out in the stored (group) order, input perm[k] at k
  };
  uint32_t seed = 400;
  for (const Case c : {Case{4, true, 1000, 576, 64}, Case{4, false, 37, 100, 0}, Case{4, false, 333, 96, 32},
                       Case{8, true, 1000, 576, 0}, Case{8, false, 21, 70, 0}, Case{8, false, 200, 160, 32},
                       Case{4, true, 1000, 576, 64, true}, Case{8, false, 200, 160, 32, true}}) {
    QuantizedWeight w = random_quantized(c.bits, c.sym, c.n, c.k, c.gs, ++seed);
    if (c.act_order) test::set_act_order(w, ++seed);
    const GpuQuantWeight gw = GpuQuantWeight::upload(w, "w");
    const std::vector<int32_t> perm = repack_for_gpu(w, "w").perm;
    REQUIRE(perm.empty() != c.act_order);
    DeviceBuffer<uint16_t> out(std::vector<uint16_t>(c.n * c.k, 0x7E00));
    dequantize_to_f16(gw, out.data(), nullptr);
    LLMC_CUDA_CHECK(cudaDeviceSynchronize());
    const std::vector<uint16_t> got = out.download();
    // s·(q − z) is exact in f32 (11 + 8 significant bits), so both sides round the same real
    // number to nearest-even f16 once.
    const Tensor ref = dequantize(w);
    int64_t mismatches = 0;
    for (int64_t r = 0; r < c.n; ++r)
      for (int64_t k = 0; k < c.k; ++k)
        mismatches += got[r * c.k + k] != f32_to_f16(ref.data<float>()[r * c.k + (perm.empty() ? k : perm[k])]);
    INFO("W" << c.bits << (c.sym ? " sym" : " asym") << " N=" << c.n << " K=" << c.k << " g=" << c.gs
             << (c.act_order ? " act-order" : ""));
    CHECK(mismatches == 0);
  }
}

TEST_CASE("linear_quantized_prefill (plain and pipelined) matches the CPU twin linear_quantized") {
  LLMC_REQUIRE_GPU();
  const CublasHandle h;
  PrefillPipeline pipe;
  struct Case {
    int bits;
    bool sym;
    int64_t n, k, gs, m;
    bool act_order = false;  // x gathered into the scratch after the weight
  };
  uint32_t seed = 500;
  for (const Case c : {Case{4, true, 1000, 576, 64, 37}, Case{4, false, 4096, 4096, 128, 128},
                       Case{8, true, 512, 320, 0, 300}, Case{4, true, 300, 256, 128, 1},
                       Case{4, false, 37, 100, 0, 64}, Case{4, true, 1000, 576, 64, 37, true},
                       Case{4, false, 37, 100, 32, 64, true}, Case{8, true, 512, 320, 64, 300, true}}) {
    QuantizedWeight w = random_quantized(c.bits, c.sym, c.n, c.k, c.gs, ++seed);
    if (c.act_order) test::set_act_order(w, ++seed);
    const GpuQuantWeight gw = GpuQuantWeight::upload(w, "w");
    const auto x = random_half(c.m * c.k, ++seed);
    std::vector<float> ref(c.m * c.n);
    kernels::cpu::linear_quantized(x.vals.data(), w, nullptr, ref.data(), c.m);
    const Tensor wd = dequantize(w);
    const std::vector<float> wf(wd.data<float>(), wd.data<float>() + c.n * c.k);
    const std::vector<double> abs_sum = test::abs_products(x.vals, wf, c.m, c.n, c.k);
    DeviceBuffer<uint16_t> dx(x.bits), scratch(quantized_prefill_scratch(c.n, c.k, c.act_order, c.m));
    for (bool pipelined : {false, true}) {
      DeviceBuffer<uint16_t> dy(std::vector<uint16_t>(c.m * c.n, 0x7E00));
      if (pipelined)
        linear_quantized_prefill_pipelined(gw, h, pipe, dx.data(), dy.data(), c.m, scratch.data(), nullptr);
      else
        linear_quantized_prefill(gw, h, dx.data(), dy.data(), c.m, scratch.data(), nullptr);
      LLMC_CUDA_CHECK(cudaDeviceSynchronize());
      // On top of the GEMV's error, each weight is rounded to f16 (≤ 2⁻¹¹ relative per term).
      std::ostringstream what;
      what << "W" << c.bits << " N=" << c.n << " K=" << c.k << " m=" << c.m << (c.act_order ? " act-order" : "")
           << (pipelined ? " pipelined" : "");
      test::check_close(dy.download(), ref, abs_sum, 1e-4 + 0x1p-11, what.str());
    }
  }
}
