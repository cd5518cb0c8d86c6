#include "calibrate/samples.hpp"

#include <random>
#include <string>

#include "runtime/ir/error.hpp"

namespace llmc::calibrate {

std::vector<std::vector<int64_t>> sample_windows(const std::vector<int64_t>& tokens, const SampleConfig& cfg,
                                                 const std::string& what) {
  if (cfg.nsamples <= 0 || cfg.seqlen <= 1)
    throw Error(what + ": --nsamples must be positive and --seqlen at least 2", ErrorKind::Usage);
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n < cfg.seqlen)
    throw Error(what + ": calibration text has " + std::to_string(n) + " tokens, fewer than one window of " +
                std::to_string(cfg.seqlen));
  std::mt19937_64 rng(cfg.seed);
  // The distribution is written out (not std::uniform_int_distribution, whose algorithm differs
  // between standard libraries) so that a seed selects the same windows everywhere.
  const uint64_t range = static_cast<uint64_t>(n - cfg.seqlen + 1);
  std::vector<std::vector<int64_t>> out;
  for (int64_t s = 0; s < cfg.nsamples; ++s) {
    const int64_t start = static_cast<int64_t>(rng() % range);
    out.emplace_back(tokens.begin() + start, tokens.begin() + start + cfg.seqlen);
  }
  return out;
}

}  // namespace llmc::calibrate
