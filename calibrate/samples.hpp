// Calibration text to token windows: nsamples random windows of seqlen tokens, drawn with a
// seeded generator as GPTQ's get_wikitext2 does (uniform start in [0, n − seqlen]).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace llmc::calibrate {

struct SampleConfig {
  int64_t nsamples = 128;
  int64_t seqlen = 512;
  uint64_t seed = 0;
};

// Throws Error when the stream is shorter than one window (naming the counts) or the config is
// invalid. `what` names the source (the calibration file) in errors.
std::vector<std::vector<int64_t>> sample_windows(const std::vector<int64_t>& tokens, const SampleConfig& cfg,
                                                 const std::string& what);

}  // namespace llmc::calibrate
