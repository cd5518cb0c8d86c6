#include "cli/common.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "runtime/ir/error.hpp"

namespace llmc::cli {

Progress::Progress(std::string label) : label_(std::move(label)), tty_(isatty(STDERR_FILENO)) {}

void Progress::update(int64_t done, int64_t total) {
  if (!tty_ || total <= 0) return;
  int pct = static_cast<int>(100 * done / total);
  if (pct == last_pct_) return;
  last_pct_ = pct;
  int filled = pct * 30 / 100;
  std::fprintf(stderr, "\r%s [%s%s] %3d%% (%lld/%lld)", label_.c_str(), std::string(filled, '#').c_str(),
               std::string(30 - filled, ' ').c_str(), pct, static_cast<long long>(done), static_cast<long long>(total));
  std::fflush(stderr);
}

void Progress::finish() {
  if (tty_ && last_pct_ >= 0) std::fprintf(stderr, "\n");
}

std::vector<int64_t> read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open token file");
  std::vector<int64_t> ids;
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || v < 0)
      throw Error(path + ": token " + std::to_string(ids.size() + 1) + " ('" + word + "') is not a non-negative integer id");
    ids.push_back(v);
  }
  if (ids.empty()) throw Error(path + ": token file holds no ids");
  return ids;
}

cxxopts::ParseResult parse(cxxopts::Options& opts, int argc, char** argv) {
  try {
    auto r = opts.parse(argc, argv);
    if (r.count("help")) {
      std::printf("%s\n", opts.help().c_str());
      std::exit(0);
    }
    return r;
  } catch (const cxxopts::exceptions::exception& e) {
    throw Error(std::string(e.what()) + " (see --help)", ErrorKind::Usage);
  }
}

}  // namespace llmc::cli
