// llmcompress: the command-line entry point. Subcommands parse their flags, call the library and
// print; every error becomes one line on stderr and an exit code (usage 2, bad input 3, runtime 1).
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "cli/common.hpp"
#include "runtime/ir/error.hpp"

namespace {

const char* kUsage =
    "usage: llmcompress <command> [options]\n"
    "\n"
    "commands:\n"
    "  inspect MODEL        tensors, dtypes, shapes, parameters, bytes and sparsity\n"
    "  run MODEL --prompt   generate text (greedy or sampled) with the KV cache\n"
    "  eval MODEL --data    perplexity on a text file; --reference for KL and top-1 agreement\n"
    "  quantize MODEL -o F  INT8/INT4 weights (rtn, gptq, awq) or W8A8 (smoothquant) into a .llmc file\n"
    "  prune MODEL -o F     magnitude, wanda or sparsegpt; unstructured or N:M (2:4)\n"
    "  compress MODEL -o F --recipe R.yaml   several stages from a recipe\n"
    "  bench MODEL          prefill and decode speed, memory, bandwidth\n"
    "  tokenize MODEL --data F -o IDS   token ids of a text file (for eval --tokens, --calib-tokens)\n"
    "\n"
    "MODEL is a Hugging Face directory, an .onnx, .gguf or .llmc file.\n"
    "Run 'llmcompress <command> --help' for the options of a command.\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace llmc;
  const std::map<std::string, int (*)(int, char**)> commands = {
      {"inspect", cli::cmd_inspect}, {"run", cli::cmd_run},          {"eval", cli::cmd_eval},
      {"quantize", cli::cmd_quantize}, {"prune", cli::cmd_prune}, {"compress", cli::cmd_compress},
      {"bench", cli::cmd_bench},       {"tokenize", cli::cmd_tokenize}};
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  auto it = commands.find(argv[1]);
  if (it == commands.end()) {
    std::fprintf(stderr, "llmcompress: unknown command '%s'\n%s", argv[1], kUsage);
    return 2;
  }
  try {
    return it->second(argc - 1, argv + 1);
  } catch (const Error& e) {
    std::fprintf(stderr, "llmcompress %s: error: %s\n", argv[1], e.what());
    switch (e.kind()) {
      case ErrorKind::Usage: return 2;
      case ErrorKind::BadInput: return 3;
      case ErrorKind::Runtime: return 1;
    }
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "llmcompress %s: error: out of memory\n", argv[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llmcompress %s: error: %s\n", argv[1], e.what());
  }
  return 1;
}
