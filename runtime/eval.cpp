#include "runtime/eval.hpp"

#include <algorithm>
#include <cmath>

namespace llmc::runtime {

double EvalResult::perplexity() const { return scored_tokens ? std::exp(nll_sum / scored_tokens) : NAN; }
double EvalResult::ref_perplexity() const { return scored_tokens ? std::exp(ref_nll_sum / scored_tokens) : NAN; }

double log_sum_exp(const float* row, int64_t n) {
  float mx = *std::max_element(row, row + n);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(row[i]) - mx);
  return mx + std::log(s);
}

EvalResult evaluate(Session& model, const std::vector<int64_t>& tokens, const EvalOptions& opt, Session* reference) {
  SessionDecoder m(model);
  if (!reference) return evaluate(m, tokens, opt, nullptr);
  SessionDecoder r(*reference);
  return evaluate(m, tokens, opt, &r);
}

EvalResult evaluate(Decoder& model, const std::vector<int64_t>& tokens, const EvalOptions& opt, Decoder* reference) {
  if (opt.ctx < 2) throw Error("eval: --ctx must be at least 2", ErrorKind::Usage);
  const int64_t body = opt.bos_id ? opt.ctx - 1 : opt.ctx;  // text tokens per window
  int64_t total = static_cast<int64_t>(tokens.size()) / body;
  if (total == 0)
    throw Error("eval: " + std::to_string(tokens.size()) + " tokens are fewer than one window of " +
                std::to_string(opt.ctx));
  if (opt.max_windows > 0) total = std::min(total, opt.max_windows);

  EvalResult r;
  r.has_reference = reference != nullptr;
  const int64_t first = opt.second_half ? opt.ctx / 2 : 0;  // first position whose prediction counts
  r.protocol = std::to_string(total) + " non-overlapping windows of " + std::to_string(opt.ctx) + " tokens" +
               (opt.bos_id ? " (BOS + " + std::to_string(body) + " text tokens)" : "") + ", scoring " +
               (opt.second_half ? "the second half of each window (llama.cpp perplexity)"
                                : "every next-token prediction in each window (GPTQ protocol)");
  for (int64_t w = 0; w < total; ++w) {
    std::vector<int64_t> ids;
    if (opt.bos_id) ids.push_back(*opt.bos_id);
    ids.insert(ids.end(), tokens.begin() + w * body, tokens.begin() + (w + 1) * body);
    model.reset();
    Tensor logits = model.forward(ids);
    Tensor ref_logits;
    if (reference) {
      reference->reset();
      ref_logits = reference->forward(ids);
      if (ref_logits.shape() != logits.shape())
        throw Error("eval: reference logits " + shape_str(ref_logits.shape()) + " do not match the model's " +
                    shape_str(logits.shape()));
    }
    const int64_t V = logits.dim(-1);
    const int64_t n = static_cast<int64_t>(ids.size());
    // position i predicts token i + 1
    for (int64_t i = std::max<int64_t>(first, opt.bos_id ? 1 : 0); i + 1 < n; ++i) {
      const float* row = logits.data<float>() + i * V;
      const double lse = log_sum_exp(row, V);
      r.nll_sum += lse - row[ids[i + 1]];
      if (reference) {
        const float* rr = ref_logits.data<float>() + i * V;
        const double rlse = log_sum_exp(rr, V);
        r.ref_nll_sum += rlse - rr[ids[i + 1]];
        double kl = 0;
        int64_t am = 0, ram = 0;
        for (int64_t j = 0; j < V; ++j) {
          const double lp = rr[j] - rlse, lq = row[j] - lse;
          kl += std::exp(lp) * (lp - lq);
          if (row[j] > row[am]) am = j;
          if (rr[j] > rr[ram]) ram = j;
          r.max_abs_logit_diff = std::max(r.max_abs_logit_diff, std::fabs(static_cast<double>(row[j]) - rr[j]));
        }
        r.kl_sum += std::max(kl, 0.0);
        r.top1_agree += am == ram;
      }
      ++r.scored_tokens;
    }
    if (opt.on_logits) opt.on_logits(logits);
    ++r.windows;
    if (opt.progress) opt.progress(w + 1, total);
  }
  return r;
}

}  // namespace llmc::runtime
