// Evaluation of a causal LM on token streams: perplexity over non-overlapping windows, and
// agreement with a reference model (KL divergence, top-1 agreement, logit differences).
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runtime/decoder.hpp"

namespace llmc::runtime {

struct EvalOptions {
  int64_t ctx = 512;              // window length in tokens
  bool second_half = false;       // score only the second half of each window (llama.cpp's protocol)
  std::optional<int64_t> bos_id;  // when set, each window starts with BOS (as llama.cpp does)
  int64_t max_windows = 0;        // 0: all windows
  std::function<void(int64_t done, int64_t total)> progress;
  // Called with each window's logits [ctx, V] (e.g. to dump them).
  std::function<void(const Tensor& logits)> on_logits;
};

struct EvalResult {
  int64_t windows = 0, scored_tokens = 0;
  double nll_sum = 0;  // natural log
  double perplexity() const;
  // Against a reference model (when one is given); sums over scored tokens.
  bool has_reference = false;
  double kl_sum = 0, max_abs_logit_diff = 0, ref_nll_sum = 0;
  int64_t top1_agree = 0;
  double mean_kl() const { return scored_tokens ? kl_sum / scored_tokens : 0; }
  double top1() const { return scored_tokens ? static_cast<double>(top1_agree) / scored_tokens : 0; }
  double ref_perplexity() const;
  std::string protocol;  // how the numbers were taken, printed with them
};

// Evaluates `model` on `tokens`; with `reference`, compares each scored position's distribution.
EvalResult evaluate(Decoder& model, const std::vector<int64_t>& tokens, const EvalOptions& opt,
                    Decoder* reference = nullptr);
EvalResult evaluate(Session& model, const std::vector<int64_t>& tokens, const EvalOptions& opt,
                    Session* reference = nullptr);

// log-softmax helpers over one row of logits (f64 accumulation).
double log_sum_exp(const float* row, int64_t n);

}  // namespace llmc::runtime
