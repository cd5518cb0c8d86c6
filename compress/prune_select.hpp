// Internal to the pruning passes: picking the k lowest-scoring weights under one total order.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace llmc::compress {

struct PruneCandidate {
  double score;
  int64_t pos;  // row-major position in the weight
};

// Lower score first; among equal scores the later position (so the earlier one is kept).
inline bool prune_before(const PruneCandidate& a, const PruneCandidate& b) {
  return a.score < b.score || (a.score == b.score && a.pos > b.pos);
}

// Sets mask[pos] = 0 for the k candidates that come first under prune_before (reorders c).
inline void prune_lowest(std::vector<PruneCandidate>& c, int64_t k, uint8_t* mask) {
  const int64_t n = static_cast<int64_t>(c.size());
  k = std::clamp<int64_t>(k, 0, n);
  if (k == 0) return;
  if (k < n) std::nth_element(c.begin(), c.begin() + k, c.end(), prune_before);
  for (int64_t i = 0; i < k; ++i) mask[c[i].pos] = 0;
}

}  // namespace llmc::compress
