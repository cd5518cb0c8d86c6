#include "runtime/generate.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace llmc::runtime {

int64_t Sampler::sample(const float* logits, int64_t vocab) {
  if (o_.temperature <= 0) return std::max_element(logits, logits + vocab) - logits;
  std::vector<int64_t> idx(vocab);
  std::iota(idx.begin(), idx.end(), 0);
  auto by_logit = [&](int64_t a, int64_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  int64_t keep = vocab;
  if (o_.top_k > 0 && o_.top_k < vocab) {
    keep = o_.top_k;
    std::partial_sort(idx.begin(), idx.begin() + keep, idx.end(), by_logit);
  } else {
    std::sort(idx.begin(), idx.end(), by_logit);
  }
  std::vector<double> p(keep);
  const double mx = logits[idx[0]];
  double sum = 0;
  for (int64_t i = 0; i < keep; ++i) sum += (p[i] = std::exp((logits[idx[i]] - mx) / o_.temperature));
  if (o_.top_p < 1.0) {  // nucleus: the smallest prefix whose mass reaches top_p
    double acc = 0;
    int64_t n = 0;
    while (n < keep && acc < o_.top_p * sum) acc += p[n++];
    keep = std::max<int64_t>(n, 1);
    p.resize(keep);
  }
  std::discrete_distribution<int64_t> d(p.begin(), p.end());
  return idx[d(rng_)];
}

std::vector<int64_t> generate(Session& s, const std::vector<int64_t>& prompt, const GenerateOptions& o,
                              const std::function<bool(int64_t)>& on_token) {
  SessionDecoder d(s);
  return generate(d, prompt, o, on_token);
}

std::vector<int64_t> generate(Decoder& s, const std::vector<int64_t>& prompt, const GenerateOptions& o,
                              const std::function<bool(int64_t)>& on_token) {
  if (prompt.empty()) throw Error("generate: the prompt has no tokens", ErrorKind::Usage);
  Sampler sampler(o.sampling);
  std::vector<int64_t> out;
  Tensor logits = s.forward(prompt);
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    const int64_t V = logits.dim(-1);
    const int64_t next = sampler.sample(logits.data<float>() + (logits.dim(0) - 1) * V, V);
    out.push_back(next);
    if (on_token && !on_token(next)) break;
    if (o.eos_id && next == *o.eos_id) break;
    if (step + 1 < o.max_new_tokens) logits = s.forward({next});
  }
  return out;
}

}  // namespace llmc::runtime
