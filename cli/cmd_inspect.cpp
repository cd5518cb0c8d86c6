// llmcompress inspect: what a model file stores: tensors with dtypes, shapes, bytes and sparsity.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/common.hpp"
#include "runtime/inspect.hpp"

namespace llmc::cli {

int cmd_inspect(int argc, char** argv) {
  cxxopts::Options o("llmcompress inspect", "List a model's stored tensors");
  o.add_options()("model", "model path", cxxopts::value<std::string>())("json", "print JSON")(
      "no-sparsity", "skip counting zeros (faster on large models)")("h,help", "show help");
  o.parse_positional({"model"});
  o.positional_help("MODEL");
  auto a = parse(o, argc, argv);
  if (!a.count("model")) throw Error("missing MODEL (see --help)", ErrorKind::Usage);
  const std::string path = a["model"].as<std::string>();
  auto info = runtime::inspect_model(path, !a.count("no-sparsity"));

  if (a.count("json")) {
    nlohmann::json j = {{"model", path}, {"format", info.format}, {"parameters", info.parameters},
                        {"bytes", info.bytes}, {"config", info.config}, {"metadata", info.metadata}};
    j["tensors"] = nlohmann::json::array();
    for (auto& t : info.tensors)
      j["tensors"].push_back({{"name", t.name}, {"dtype", t.dtype}, {"shape", t.shape}, {"parameters", t.numel},
                              {"bytes", t.bytes}, {"sparsity", t.sparsity}});
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model:      %s (%s)\n", path.c_str(), info.format.c_str());
  if (info.config.contains("model_type")) std::printf("arch:       %s\n", info.config["model_type"].get<std::string>().c_str());
  std::printf("tensors:    %zu\n", info.tensors.size());
  std::printf("parameters: %lld (%.2f M)\n", static_cast<long long>(info.parameters), info.parameters / 1e6);
  std::printf("bytes:      %lld (%.2f MiB, %.3f bits per parameter)\n", static_cast<long long>(info.bytes),
              info.bytes / 1048576.0, info.parameters ? 8.0 * info.bytes / info.parameters : 0.0);
  std::printf("\n%-56s %-6s %-20s %12s %12s %8s\n", "tensor", "dtype", "shape", "params", "bytes", "zeros");
  for (auto& t : info.tensors) {
    std::string shape = "[";
    for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? "," : "") + std::to_string(t.shape[i]);
    shape += "]";
    char sp[16] = "-";
    if (t.sparsity >= 0) std::snprintf(sp, sizeof sp, "%.1f%%", 100 * t.sparsity);
    std::printf("%-56s %-6s %-20s %12lld %12lld %8s\n", t.name.c_str(), t.dtype.c_str(), shape.c_str(),
                static_cast<long long>(t.numel), static_cast<long long>(t.bytes), sp);
  }
  return 0;
}

}  // namespace llmc::cli
