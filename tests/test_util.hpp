// Helpers shared by the tests: where fixtures, shared data and downloaded models live.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

namespace llmc::test {

inline std::filesystem::path env_path(const char* var, const char* fallback) {
  const char* v = std::getenv(var);
  return v ? std::filesystem::path(v) : std::filesystem::path(fallback);
}
inline std::filesystem::path source_dir() { return env_path("LLMC_SOURCE_DIR", "."); }
inline std::filesystem::path fixtures_dir() { return source_dir() / "tests" / "fixtures"; }
inline std::filesystem::path shared_dir() { return env_path("LLMC_SHARED_DIR", "../shared"); }
inline std::filesystem::path models_dir() { return env_path("LLMC_MODELS_DIR", "models"); }
inline std::filesystem::path wiki_test() { return shared_dir() / "data" / "wikitext-2-raw" / "wiki.test.raw"; }
// A per-test scratch directory under the system temp dir, emptied on creation.
inline std::filesystem::path scratch_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("llmc_test_" + name);
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

}  // namespace llmc::test
