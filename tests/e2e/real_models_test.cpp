// Real models end to end: SmolLM2-135M-Instruct (GGUF Q4_1) logits and greedy decoding against
// transformers' dequantized f32 model, and all-MiniLM-L6-v2 sentence embeddings against
// sentence-transformers (references: tests/fixtures/make_fixtures.py; models: scripts/fetch_models.sh).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "formats/safetensors.hpp"
#include "runtime/loader.hpp"
#include "runtime/session.hpp"
#include "tests/test_util.hpp"

namespace fs = std::filesystem;
using llmc::Tensor;

namespace {

std::map<std::string, Tensor> reference(const std::string& name) {
  return llmc::formats::read_safetensors((llmc::test::fixtures_dir() / "models" / (name + ".ref.safetensors")).string())
      .tensors;
}

bool present(const fs::path& p) {
  if (fs::exists(p)) return true;
  MESSAGE("skipped: " << p.string() << " is absent (scripts/fetch_models.sh fetches it)");
  return false;
}

// Both sides compute in f32 from bit-identical dequantized weights; only the summation order
// differs. Over 30 layers that stays near 1e-5 of the logit scale, so 1e-4 leaves margin while a
// wrong permutation, norm or rotary convention lands at O(1).
constexpr double kRelTol = 1e-4;

struct Row {
  const float* v;
  int64_t n;
  int64_t argmax() const { return std::max_element(v, v + n) - v; }
};

Row row(const Tensor& t, int64_t r) { return {t.data<float>() + r * t.dim(-1), t.dim(-1)}; }

// One position: the stored top-20 (indices, values) of transformers' logits against ours. Returns
// true when our argmax is transformers' argmax, or when transformers' top two are closer than the
// tolerance allows us to distinguish (then either choice is correct).
bool check_position(Row got, const int64_t* top_idx, const float* top_val, int64_t k, double tol,
                    const std::string& what) {
  double err = 0;
  for (int64_t j = 0; j < k; ++j) err = std::max(err, std::abs(static_cast<double>(got.v[top_idx[j]]) - top_val[j]));
  INFO(what << ": max |delta| over the reference top-" << k << " = " << err << " (tolerance " << tol << ")");
  CHECK(err <= tol);
  const bool near_tie = top_val[0] - top_val[1] < 2 * tol;
  if (!near_tie) CHECK(got.argmax() == top_idx[0]);
  return got.argmax() == top_idx[0] || near_tie;
}

}  // namespace

TEST_CASE("e2e: SmolLM2-135M-Instruct GGUF logits and greedy decoding match transformers") {
  const fs::path gguf = llmc::test::models_dir() / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!present(gguf)) return;
  llmc::Model model = llmc::runtime::load_model(gguf.string());
  auto ref = reference("smollm2");
  // Prompt p's tensors are named "p<p>.<field>".
  auto prefix = [](int p) { return std::string("p").append(std::to_string(p)).append("."); };
  for (int p = 0; ref.count(prefix(p) + "ids"); ++p) {
    const std::string key = prefix(p);
    CAPTURE(p);
    const auto ids = ref.at(key + "ids").i64_values();
    const int64_t plen = ref.at(key + "prompt_len").i64_values()[0];
    const Tensor& top_idx = ref.at(key + "top_indices");
    const Tensor& top_val = ref.at(key + "top_values");
    const Tensor& last = ref.at(key + "last_prompt_logits");
    const int64_t k = top_idx.dim(1), total = static_cast<int64_t>(ids.size());
    REQUIRE(top_idx.dim(0) == total - 1);
    double scale = 0;
    for (float v : last.f32_values()) scale = std::max(scale, std::abs(static_cast<double>(v)));
    const double tol = kRelTol * scale;

    // Prefill the prompt: the whole last row, and the top-20 of every prompt position.
    llmc::runtime::Session s(model);
    Tensor logits = s.forward({ids.begin(), ids.begin() + plen});
    REQUIRE(logits.shape() == llmc::Shape{plen, last.numel()});
    double err = 0;
    Row got_last = row(logits, plen - 1);
    for (int64_t j = 0; j < last.numel(); ++j)
      err = std::max(err, std::abs(static_cast<double>(got_last.v[j]) - last.data<float>()[j]));
    MESSAGE("prompt " << p << " (" << plen << " tokens): last-position logits max |delta| " << err << ", relative "
                      << err / scale);
    CHECK(err <= tol);
    for (int64_t t = 0; t < plen; ++t)
      check_position(row(logits, t), top_idx.data<int64_t>() + t * k, top_val.data<float>() + t * k, k, tol,
                     "prompt position " + std::to_string(t));

    // Teacher-forced decoding through the KV cache over transformers' greedy continuation.
    for (int64_t t = plen; t < total - 1; ++t) {
      Tensor step = s.forward({ids[t]});
      check_position(row(step, 0), top_idx.data<int64_t>() + t * k, top_val.data<float>() + t * k, k, tol,
                     "decode position " + std::to_string(t));
    }

    // Free-running greedy decoding reproduces transformers' continuation token for token, up to
    // the first step where transformers' own top two are within the tolerance of each other.
    s.reset();
    Tensor next = s.forward({ids.begin(), ids.begin() + plen});
    int64_t matched = 0;
    for (int64_t t = plen; t < total; ++t) {
      const int64_t token = row(next, next.dim(0) - 1).argmax();
      if (token != ids[t]) {
        const float* tv = top_val.data<float>() + (t - 1) * k;
        INFO("greedy step " << t - plen << ": got token " << token << ", transformers chose " << ids[t]);
        CHECK(tv[0] - tv[1] < 2 * tol);
        break;
      }
      ++matched;
      if (t + 1 < total) next = s.forward({token});
    }
    MESSAGE("prompt " << p << ": greedy decoding matched " << matched << " of " << total - plen
                      << " tokens of transformers' continuation");
  }
}

TEST_CASE("e2e: all-MiniLM-L6-v2 mean-pooled embeddings match sentence-transformers") {
  const fs::path dir = llmc::test::models_dir() / "all-MiniLM-L6-v2";
  if (!present(dir / "model.safetensors")) return;
  llmc::Model model = llmc::runtime::load_model(dir.string());
  REQUIRE(model.arch == "bert");
  auto ref = reference("minilm");
  const auto ids = ref.at("ids").i64_values();
  const auto offsets = ref.at("offsets").i64_values();
  const Tensor& want = ref.at("embeddings");
  const int64_t n = static_cast<int64_t>(offsets.size()) - 1, d = want.dim(1);
  REQUIRE(n == want.dim(0));
  llmc::runtime::Session s(model);
  double worst = 1;
  for (int64_t i = 0; i < n; ++i) {
    s.reset();  // every sentence starts at position 0
    Tensor h = s.forward({ids.begin() + offsets[i], ids.begin() + offsets[i + 1]});
    const int64_t len = offsets[i + 1] - offsets[i];
    REQUIRE(h.shape() == llmc::Shape{len, d});
    // sentence-transformers' Pooling(mean) over the attention mask (all ones: one unpadded
    // sentence), then Normalize; the reference is already unit length.
    std::vector<double> mean(d, 0.0);
    for (int64_t t = 0; t < len; ++t)
      for (int64_t j = 0; j < d; ++j) mean[j] += h.data<float>()[t * d + j] / static_cast<double>(len);
    double dot = 0, norm_got = 0, norm_want = 0;
    for (int64_t j = 0; j < d; ++j) {
      const double w = want.data<float>()[i * d + j];
      dot += mean[j] * w;
      norm_got += mean[j] * mean[j];
      norm_want += w * w;
    }
    const double cosine = dot / std::sqrt(norm_got * norm_want);
    INFO("sentence " << i << " (" << len << " tokens): cosine " << cosine);
    CHECK(cosine >= 0.9999);
    worst = std::min(worst, cosine);
  }
  MESSAGE("MiniLM: largest 1 - cosine over " << n << " sentences: " << 1 - worst);
}
