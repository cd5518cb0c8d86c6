// Shared pieces of the subcommands: progress on stderr, reading token files, loading a
// model with its tokenizer.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <cxxopts.hpp>

#include "runtime/decoder.hpp"
#include "runtime/ir/error.hpp"

namespace llmc::cli {

// A progress bar on stderr, drawn only when stderr is a terminal.
class Progress {
 public:
  explicit Progress(std::string label);
  void update(int64_t done, int64_t total);
  void finish();

 private:
  std::string label_;
  bool tty_;
  int last_pct_ = -1;
};

// Whitespace-separated token ids; throws Error naming the file and the bad field.
std::vector<int64_t> read_token_file(const std::string& path);

// Parses argv with `opts`; a parse error becomes a usage Error.
cxxopts::ParseResult parse(cxxopts::Options& opts, int argc, char** argv);

// A decoder for `model` on `backend` ("cpu" or "cuda"; cuda only in builds with LLMC_HAVE_CUDA,
// else a usage error saying so). max_context bounds the CUDA KV cache (0: the model's default).
std::unique_ptr<runtime::Decoder> make_decoder(const Model& model, const std::string& backend, int64_t max_context);
// Whether this build has the CUDA backend.
bool have_cuda_backend();

int cmd_inspect(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_quantize(int argc, char** argv);
int cmd_prune(int argc, char** argv);
int cmd_compress(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);

}  // namespace llmc::cli
