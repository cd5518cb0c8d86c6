#include "cli/common.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "runtime/ir/error.hpp"
#ifdef LLMC_HAVE_CUDA
#include "runtime/cuda/cuda_session.hpp"
#endif

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

namespace {

// The CPU Session with its lifetime tied to the decoder.
class CpuDecoder final : public runtime::Decoder {
 public:
  explicit CpuDecoder(const Model& m) : s_(m) {}
  Tensor forward(const std::vector<int64_t>& ids) override { return s_.forward(ids); }
  void reset() override { s_.reset(); }
  int64_t past() const override { return s_.past(); }

 private:
  runtime::Session s_;
};

}  // namespace

bool have_cuda_backend() {
#ifdef LLMC_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

std::unique_ptr<runtime::Decoder> make_decoder(const Model& model, const std::string& backend, int64_t max_context) {
  if (backend == "cpu") return std::make_unique<CpuDecoder>(model);
  if (backend != "cuda") throw Error("unknown --backend '" + backend + "' (cpu or cuda)", ErrorKind::Usage);
#ifdef LLMC_HAVE_CUDA
  runtime::require_cuda_device(0);
  runtime::CudaOptions o;
  o.max_context = max_context;
  return std::make_unique<runtime::CudaSession>(model, o);
#else
  (void)max_context;
  throw Error("--backend cuda: this llmcompress was built without CUDA (configure with -DLLMC_CUDA=ON)",
              ErrorKind::Usage);
#endif
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
