// Rotary, KV-cache append and attention (rotary.hpp, attention.hpp) against the CPU twins
// kernels::cpu::rotary and kernels::cpu::attention on random f16 inputs: neox and interleaved,
// rotary_dim < head_dim, GQA, causal and not, prefill (flash) and decode (split over keys) with a
// cache already holding positions, and captured CUDA graphs replayed as the position advances in
// device memory across the lengths where the decode kernel's slice count changes (one slice up to
// 2048 / (head_dim / 16) keys, then one per 256 / (head_dim / 16), capped by the launch's grid).
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/dense.hpp"
#include "kernels/cuda/attention.hpp"
#include "kernels/cuda/rotary.hpp"
#include "kernels/cuda/sampling.hpp"
#include "tests/gpu/gpu_test_util.hpp"
#include "tests/gpu/ops_test_util.hpp"

using namespace llmc;
using namespace llmc::test;
namespace kcpu = llmc::kernels::cpu;

namespace {

constexpr double kHalfUlp = 1.0 / 2048;

struct AttnCase {
  int64_t batch, tokens, past, hq, hkv, d, rot;
  bool causal, neox, rope;
  const char* name;
  int splits = 0;  // the launch's slice count; 0: attention_decode_splits for 132 SMs
};

// Runs kv_append (+ rope) and attention on the device for one case and compares q rotation, the
// cache and the output with the CPU: rotary per sequence at past, then attention over the cache.
enum class Mode { Prefill, Decode, DecodeAppend };

void run_case(const AttnCase& c, Mode mode, uint32_t seed) {
  CAPTURE(c.name);
  CAPTURE(static_cast<int>(mode));
  const int64_t B = c.batch, T = c.tokens, P = c.past, S = P + T, cap = S + 5, rows = B * T;
  const int64_t qw = c.hq * c.d, kw = c.hkv * c.d, row_w = qw + 2 * kw;  // a stacked qkv buffer
  const HalfData qkv = random_half(rows * row_w, seed);
  const HalfData old_k = random_half(B * cap * kw, seed + 1), old_v = random_half(B * cap * kw, seed + 2);
  kcu::DeviceBuffer<uint16_t> dqkv(qkv.bits), dk(old_k.bits), dv(old_v.bits), dout(rows * qw);
  kcu::DeviceBuffer<int32_t> past(std::vector<int32_t>{static_cast<int32_t>(P)});
  const auto inv = kcu::rope_inv_freq(10000.0, c.rot);
  kcu::DeviceBuffer<float> dinv(inv);
  const kcu::RopeParams rope{dinv.data(), c.rot, c.neox};
  const kcu::KvCacheView cache{dk.data(), dv.data(), cap, c.hkv, c.d};
  kcu::AttentionParams p{B, T, c.hq, c.hkv, c.d, static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.d))), c.causal};
  kcu::AttentionWorkspace ws(rows, c.hq, c.d, 32);
  const int splits = c.splits > 0 ? c.splits : kcu::attention_decode_splits(rows, c.hq, 132, 32);
  CAPTURE(splits);
  if (mode == Mode::DecodeAppend) {
    REQUIRE(T == 1);
    kcu::attention_decode_append(f16_view(dqkv, row_w, 0), f16_view(dqkv, row_w, qw), f16_view(dqkv, row_w, qw + kw),
                                 cache, f16_view(dout, qw), p, c.rope ? &rope : nullptr, past.data(), ws, splits,
                                 nullptr);
  } else {
    kcu::kv_append(c.rope ? f16_view(dqkv, row_w, 0) : kcu::Act{}, c.hq, f16_view(dqkv, row_w, qw),
                   f16_view(dqkv, row_w, qw + kw), cache, rows, T, c.rope ? &rope : nullptr, past.data(), nullptr);
    if (mode == Mode::Prefill)
      kcu::attention_prefill(f16_view(dqkv, row_w, 0), cache, f16_view(dout, qw), p, past.data(), nullptr);
    else
      kcu::attention_decode(f16_view(dqkv, row_w, 0), cache, f16_view(dout, qw), p, past.data(), ws, splits, nullptr);
  }
  const auto got_qkv = f16_values(dqkv.download()), got_k = f16_values(dk.download()),
             got_v = f16_values(dv.download()), got = f16_values(dout.download());

  for (int64_t b = 0; b < B; ++b) {
    // CPU: q, k of this sequence rotated at positions P..P+T−1 in f32, the cache in f32
    std::vector<float> q(T * qw), k(T * kw), v(T * kw);
    for (int64_t i = 0; i < T; ++i) {
      const float* src = qkv.vals.data() + (b * T + i) * row_w;
      std::copy(src, src + qw, q.begin() + i * qw);
      std::copy(src + qw, src + qw + kw, k.begin() + i * kw);
      std::copy(src + qw + kw, src + row_w, v.begin() + i * kw);
    }
    if (c.rope) {
      kcpu::rotary(q.data(), T, c.hq, c.d, c.rot, P, 10000.0, c.neox);
      kcpu::rotary(k.data(), T, c.hkv, c.d, c.rot, P, 10000.0, c.neox);
    }
    if (c.rope && mode != Mode::DecodeAppend) {  // the fused kernel rotates q in shared memory only
      std::vector<float> gq(T * qw);
      for (int64_t i = 0; i < T; ++i)
        std::copy(got_qkv.begin() + (b * T + i) * row_w, got_qkv.begin() + (b * T + i) * row_w + qw, gq.begin() + i * qw);
      expect_close(gq, q, {kHalfUlp + 1e-6, 0, 1e-6}, "q rotated in place");
    }
    std::vector<float> kc(S * kw), vc(S * kw), gk(T * kw), gv(T * kw);
    for (int64_t j = 0; j < S; ++j)
      for (int64_t e = 0; e < kw; ++e) {
        const int64_t ci = (b * cap + j) * kw + e;
        kc[j * kw + e] = j < P ? old_k.vals[ci] : k[(j - P) * kw + e];
        vc[j * kw + e] = j < P ? old_v.vals[ci] : v[(j - P) * kw + e];
        if (j >= P) {
          gk[(j - P) * kw + e] = got_k[ci];
          gv[(j - P) * kw + e] = got_v[ci];
        }
      }
    expect_close(gk, k, {kHalfUlp + 1e-6, 0, 1e-6}, "appended keys");
    CHECK(gv == v);  // values are copied bit for bit
    std::vector<float> ref(T * qw);
    kcpu::attention(q.data(), kc.data(), vc.data(), ref.data(), T, S, c.hq, c.hkv, c.d, p.scale, c.causal);
    // Error budget: keys rounded to f16 after rotation and probabilities rounded to f16 before
    // P·V (prefill) perturb each weight by ~2⁻¹¹·(1 + |score|); the output moves by at most that
    // times Σ p|v| ≤ max|v| ~ 4 (normal f16 data): 4e-3 absolute, plus its own f16 rounding.
    std::vector<float> g(T * qw);
    std::copy(got.begin() + b * T * qw, got.begin() + (b + 1) * T * qw, g.begin());
    expect_close(g, ref, {kHalfUlp, 0, 4e-3}, "attention output");
  }
}

}  // namespace

TEST_CASE("rotary_inplace matches the CPU rotary: neox and interleaved, partial rotary_dim, device offset") {
  LLMC_REQUIRE_GPU();
  const int64_t B = 2, T = 5, H = 3, hd = 64;
  for (bool neox : {true, false})
    for (int64_t rot : {int64_t{64}, int64_t{32}}) {
      CAPTURE(neox);
      CAPTURE(rot);
      const HalfData x = random_half(B * T * H * hd, 51);
      kcu::DeviceBuffer<uint16_t> dx(x.bits);
      kcu::DeviceBuffer<int32_t> past(std::vector<int32_t>{11});
      kcu::DeviceBuffer<float> inv(kcu::rope_inv_freq(500000.0, rot));
      kcu::rotary_inplace(f16_view(dx, H * hd), B * T, T, H, hd, kcu::RopeParams{inv.data(), rot, neox}, past.data(),
                          nullptr);
      std::vector<float> ref = x.vals;
      for (int64_t b = 0; b < B; ++b) kcpu::rotary(ref.data() + b * T * H * hd, T, H, hd, rot, 11, 500000.0, neox);
      const auto got = f16_values(dx.download());
      expect_close(got, ref, {kHalfUlp + 1e-6, 0, 1e-6}, "rotary");
      // dimensions past rotary_dim are untouched
      for (int64_t i = 0; i < B * T * H; ++i)
        for (int64_t e = rot; e < hd; ++e) REQUIRE(got[i * hd + e] == x.vals[i * hd + e]);
    }
}

TEST_CASE("flash prefill attention matches the CPU twin") {
  LLMC_REQUIRE_GPU();
  const AttnCase cases[] = {
      {1, 37, 0, 8, 2, 64, 64, true, true, true, "GQA 8/2, d64, 37 tokens"},
      {2, 70, 50, 4, 4, 64, 32, true, false, true, "MHA, interleaved partial rotary, 50 cached"},
      {1, 130, 0, 6, 3, 80, 80, false, true, false, "not causal, d80, no rotary"},
      {3, 17, 9, 8, 1, 128, 64, true, true, true, "MQA d128, batch 3"},
      {1, 33, 0, 4, 2, 16, 16, true, true, true, "d16"},
  };
  uint32_t seed = 100;
  for (const auto& c : cases) run_case(c, Mode::Prefill, seed += 10);
}

TEST_CASE("split-K decode attention matches the CPU twin") {
  LLMC_REQUIRE_GPU();
  const AttnCase cases[] = {
      {1, 1, 0, 8, 2, 64, 64, true, true, true, "first token"},
      {1, 1, 383, 32, 4, 64, 64, true, true, true, "TinyLlama heads at 384 positions"},
      {4, 1, 200, 9, 3, 64, 64, true, true, true, "batch 4, SmolLM heads"},
      {2, 3, 77, 8, 2, 48, 48, true, false, true, "3 tokens, d48 (no flash kernel for it)"},
      {1, 5, 1000, 4, 2, 256, 128, false, true, true, "d256, not causal, 1000 cached"},
      {1, 1, 600, 32, 4, 64, 64, true, true, true, "TinyLlama heads at 601 positions: 10 slices"},
      {1, 3, 510, 8, 2, 64, 64, true, true, true, "3 tokens at 511, 512, 513 keys: 1, 1, 9 slices"},
      {1, 4, 700, 8, 2, 64, 64, false, true, true, "not causal, 4 tokens, d64"},
      {2, 1, 300, 16, 1, 128, 128, true, true, true, "MQA 16/1 d128: two head groups, 301 keys"},
      {1, 1, 1500, 4, 2, 32, 32, true, false, true, "d32, 1501 keys: 12 slices"},
      {2, 2, 100, 6, 3, 128, 64, true, true, true, "d128, 2 tokens, one slice"},
      {1, 1, 1800, 32, 4, 64, 64, true, true, true, "1801 keys, 4 slices at launch", 4},
      {1, 1, 1800, 8, 2, 128, 128, true, true, true, "d128, 1801 keys: 32 slices, merged in two load rounds of 16", 32},
  };
  uint32_t seed = 200;
  for (const auto& c : cases) run_case(c, Mode::Decode, seed += 10);
}

TEST_CASE("decode attention with the cache append folded in (one token) matches the CPU twin") {
  LLMC_REQUIRE_GPU();
  const AttnCase cases[] = {
      {1, 1, 0, 8, 2, 64, 64, true, true, true, "first token"},
      {1, 1, 383, 32, 4, 64, 64, true, true, true, "TinyLlama heads at 384 positions"},
      {4, 1, 200, 9, 3, 64, 32, true, false, true, "batch 4, interleaved partial rotary"},
      {2, 1, 77, 4, 4, 48, 48, true, true, false, "no rotary, d48"},
      {1, 1, 1000, 4, 2, 256, 128, false, true, true, "d256, not causal"},
      {1, 1, 255, 32, 4, 64, 64, true, true, true, "TinyLlama heads at 256 positions: one slice"},
      {1, 1, 2000, 32, 4, 64, 64, true, true, true, "TinyLlama heads at 2001 positions: 17 slices (grid cap)"},
      {2, 1, 520, 12, 2, 128, 64, true, false, true, "GQA 6, d128, interleaved partial rotary, 521 keys"},
      {1, 1, 40, 32, 1, 32, 32, true, true, true, "MQA 32/1 d32: four head groups"},
      {3, 1, 90, 8, 8, 64, 64, false, true, false, "MHA, no rotary, not causal"},
      {1, 1, 1800, 32, 4, 64, 64, true, true, true, "1801 keys, 2 slices at launch", 2},
      {2, 1, 249, 12, 2, 128, 64, true, false, true, "d128 GQA 6, 250 keys: one slice"},
      {1, 1, 450, 16, 1, 32, 32, true, true, true, "MQA 16/1 d32, 451 keys: one slice"},
  };
  uint32_t seed = 400;
  for (const auto& c : cases) run_case(c, Mode::DecodeAppend, seed += 10);
}

namespace {

struct ReplayCase {
  int64_t batch, hq, hkv, d, start, steps;
  bool fused;  // attention_decode_append, else kv_append + attention_decode
  const char* name;
};

// Captures one decode step (attention + position increment) in a CUDA graph and replays it
// `steps` times from position `start`; each replay is compared with the CPU rotary + attention
// over the sequence so far, and the cache's appended rows at the end.
void run_replay(const ReplayCase& c, uint32_t seed) {
  CAPTURE(c.name);
  const int64_t B = c.batch, d = c.d, qw = c.hq * d, kw = c.hkv * d, row_w = qw + 2 * kw;
  const int64_t cap = c.start + c.steps + 2;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const HalfData init_k = random_half(B * cap * kw, seed), init_v = random_half(B * cap * kw, seed + 1);
  kcu::DeviceBuffer<uint16_t> dk(init_k.bits), dv(init_v.bits), dqkv(B * row_w), dout(B * qw);
  kcu::DeviceBuffer<int32_t> past(std::vector<int32_t>{static_cast<int32_t>(c.start)});
  kcu::DeviceBuffer<float> inv(kcu::rope_inv_freq(10000.0, d));
  kcu::AttentionWorkspace ws(B, c.hq, d, 32);
  const kcu::KvCacheView cache{dk.data(), dv.data(), cap, c.hkv, d};
  const kcu::RopeParams rope{inv.data(), d, true};
  const kcu::AttentionParams p{B, 1, c.hq, c.hkv, d, scale, true};
  const int splits = kcu::attention_decode_splits(B, c.hq, 132, 32);
  cudaStream_t s;
  REQUIRE(cudaStreamCreate(&s) == cudaSuccess);
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  if (c.fused) {
    kcu::attention_decode_append(f16_view(dqkv, row_w, 0), f16_view(dqkv, row_w, qw), f16_view(dqkv, row_w, qw + kw),
                                 cache, f16_view(dout, qw), p, &rope, past.data(), ws, splits, s);
  } else {
    kcu::kv_append(f16_view(dqkv, row_w, 0), c.hq, f16_view(dqkv, row_w, qw), f16_view(dqkv, row_w, qw + kw), cache,
                   B, 1, &rope, past.data(), s);
    kcu::attention_decode(f16_view(dqkv, row_w, 0), cache, f16_view(dout, qw), p, past.data(), ws, splits, s);
  }
  kcu::advance_position(past.data(), 1, s);
  REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
  REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);

  std::vector<std::vector<float>> kc(B), vc(B);  // per sequence, positions so far, f32
  for (int64_t b = 0; b < B; ++b) {
    kc[b].assign(init_k.vals.begin() + b * cap * kw, init_k.vals.begin() + (b * cap + c.start) * kw);
    vc[b].assign(init_v.vals.begin() + b * cap * kw, init_v.vals.begin() + (b * cap + c.start) * kw);
  }
  for (int64_t t = 0; t < c.steps; ++t) {
    CAPTURE(t);
    const int64_t pos = c.start + t;
    const HalfData x = random_half(B * row_w, seed + 10 + static_cast<uint32_t>(t));
    dqkv.upload(x.bits);
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    const auto got = f16_values(dout.download());
    for (int64_t b = 0; b < B; ++b) {
      const float* r = x.vals.data() + b * row_w;
      std::vector<float> q(r, r + qw), k(r + qw, r + qw + kw), v(r + qw + kw, r + row_w);
      kcpu::rotary(q.data(), 1, c.hq, d, d, pos, 10000.0, true);
      kcpu::rotary(k.data(), 1, c.hkv, d, d, pos, 10000.0, true);
      kc[b].insert(kc[b].end(), k.begin(), k.end());
      vc[b].insert(vc[b].end(), v.begin(), v.end());
      std::vector<float> ref(qw);
      kcpu::attention(q.data(), kc[b].data(), vc[b].data(), ref.data(), 1, pos + 1, c.hq, c.hkv, d, scale, true);
      const std::vector<float> g(got.begin() + b * qw, got.begin() + (b + 1) * qw);
      expect_close(g, ref, {kHalfUlp, 0, 4e-3}, "replayed decode step");
    }
  }
  CHECK(past.download()[0] == c.start + c.steps);
  const auto got_k = f16_values(dk.download()), got_v = f16_values(dv.download());
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = c.steps * kw, at = (b * cap + c.start) * kw;
    const std::vector<float> gk(got_k.begin() + at, got_k.begin() + at + n), gv(got_v.begin() + at, got_v.begin() + at + n),
        rk(kc[b].end() - n, kc[b].end()), rv(vc[b].end() - n, vc[b].end());
    expect_close(gk, rk, {kHalfUlp + 1e-6, 0, 1e-6}, "appended keys");
    CHECK(gv == rv);
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(s);
}

}  // namespace

TEST_CASE("a captured decode step replays at advancing positions (offset in device memory)") {
  LLMC_REQUIRE_GPU();
  const ReplayCase cases[] = {
      {1, 8, 2, 64, 20, 6, false, "short context, one slice"},
      {1, 8, 2, 64, 20, 6, true, "short context, one slice, cache append folded in"},
      {1, 32, 4, 64, 509, 6, true, "TinyLlama heads from 510 to 515 keys: 1 then 9 slices"},
      {1, 32, 4, 64, 1020, 8, true, "TinyLlama heads from 1021 to 1028 keys: 16 then 17 slices (grid cap)"},
      {1, 32, 4, 64, 1020, 8, false, "the same without the append folded in"},
      {2, 8, 2, 128, 253, 6, false, "d128, batch 2, from 254 to 259 keys: 1 then 9 slices"},
      {1, 16, 1, 32, 1020, 8, true, "MQA 16/1 d32 from 1021 to 1028 keys: 1 then 9 slices"},
      {1, 4, 2, 48, 30, 4, true, "d48 (general kernel)"},
  };
  uint32_t seed = 600;
  for (const auto& c : cases) run_replay(c, seed += 40);
}
