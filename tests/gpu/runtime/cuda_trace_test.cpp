// The decode-step trace (cuda_trace.hpp): kernel names as shown, the split of steps into kernel
// kinds on a timeline worked out by hand (no GPU needed), and a real trace of a tiny model's
// decode where CUPTI and a GPU are present.
#include <doctest/doctest.h>

#include <cmath>

#include "runtime/cuda/cuda_session.hpp"
#include "runtime/cuda/cuda_trace.hpp"
#include "tests/gpu/gpu_test_util.hpp"
#include "tests/gpu/runtime/tiny_models.hpp"

using namespace llmc;
using namespace llmc::runtime;

TEST_CASE("kernel_short_name drops the return type, qualification and arguments") {
  CHECK(kernel_short_name("_ZN4llmc3fooILi4ELb1EEEvi") == "foo<4, true>");  // void llmc::foo<4, true>(int)
  CHECK(kernel_short_name("_ZN4llmc12_GLOBAL__N_13barEv") == "bar");         // llmc::(anonymous namespace)::bar()
  CHECK(kernel_short_name("sm90_xmma_gemm_f16f16_f32") == "sm90_xmma_gemm_f16f16_f32");  // not mangled
  CHECK(kernel_short_name(nullptr) == "?");
}

TEST_CASE("split_steps: time on the device and on the path per kernel kind, by hand") {
  // Two steps (launches 7 and 9) of three kernels, the second starting before the first ends
  // (launch overlap), and a launch of one kernel that is not a step. Step 1: a 100..200,
  // b 150..260, a 255..300 → exposed a 100 + 40, b 60; device a 100 + 45, b 110. Step 2: a
  // 1000..1120, b 1100..1150, a 1140..1200 → exposed a 120 + 50, b 30; device a 180, b 50. The
  // medians of two values are the larger (v[n / 2] of the sorted pair).
  std::vector<TracedKernel> k = {{"a", 100, 200, 7}, {"b", 150, 260, 7},   {"a", 255, 300, 7}, {"c", 500, 510, 8},
                                 {"a", 1000, 1120, 9}, {"b", 1100, 1150, 9}, {"a", 1140, 1200, 9}};
  const StepTrace t = split_steps(k);
  CHECK(t.steps == 2);
  CHECK(t.step_us == doctest::Approx(0.2));
  REQUIRE(t.kinds.size() == 2);
  CHECK(t.kinds[0].kernel == "a");
  CHECK(t.kinds[0].per_step == 2);
  CHECK(t.kinds[0].device_us == doctest::Approx(0.180));
  CHECK(t.kinds[0].exposed_us == doctest::Approx(0.170));
  CHECK(t.kinds[1].kernel == "b");
  CHECK(t.kinds[1].per_step == 1);
  CHECK(t.kinds[1].device_us == doctest::Approx(0.110));
  CHECK(t.kinds[1].exposed_us == doctest::Approx(0.060));
}

TEST_CASE("a traced decode step of a tiny model: its kinds' exposed times add up to the step") {
  LLMC_REQUIRE_GPU();
  if (!kernel_trace_available()) {
    MESSAGE("skipped, built without CUPTI");
    return;
  }
  const Model m = test::tiny_llama(test::TinyShape{}, 3);
  CudaOptions opt;
  opt.max_context = 64;
  CudaSession s(m, opt);
  s.decode_greedy({1}, 2);  // capture the decode graph outside the trace
  s.reset();
  std::vector<int64_t> prompt = {5, 9, 2, 7};
  s.forward_batch({prompt}, true);
  const std::vector<TracedKernel> ks = trace_kernels([&] { s.decode_greedy({3}, 1); });
  REQUIRE(!ks.empty());
  const StepTrace t = split_steps(ks);
  REQUIRE(t.steps == 1);
  double exposed = 0;
  int64_t count = 0;
  for (const StepShare& k : t.kinds) {
    exposed += k.exposed_us;
    count += k.per_step;
    CHECK(k.device_us > 0);
  }
  CHECK(exposed == doctest::Approx(t.step_us).epsilon(1e-9));  // per step the exposures telescope
  CHECK(count >= 5);  // at least embedding, norm/linear/attention kernels, head
  CHECK(t.step_us > 0);
}
