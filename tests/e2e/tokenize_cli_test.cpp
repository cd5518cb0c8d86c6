// llmcompress tokenize on SmolLM2's GGUF: the file it writes holds the tokenizer's ids (which
// tests/tokenizer checks against transformers on wiki.test.raw), eval --tokens on that file scores
// exactly what eval --data scores, and bad input exits with its code and leaves no file.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "formats/mapped_file.hpp"
#include "runtime/loader.hpp"
#include "runtime/tokenizer/tokenizer.hpp"
#include "tests/test_util.hpp"

namespace fs = std::filesystem;

namespace {

// Runs the CLI; returns its exit code and stdout (stderr discarded).
std::pair<int, std::string> run_cli(const std::string& args) {
  const char* exe = std::getenv("LLMC_CLI");
  REQUIRE_MESSAGE(exe, "LLMC_CLI must name the llmcompress binary (ctest sets it)");
  FILE* p = popen((std::string(exe) + " " + args + " 2>/dev/null").c_str(), "r");
  REQUIRE(p);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace

TEST_CASE("e2e: llmcompress tokenize writes the tokenizer's ids, and eval --tokens on them equals eval --data") {
  const fs::path gguf = llmc::test::models_dir() / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(gguf)) {
    MESSAGE("skipped: " << gguf << " is missing (scripts/fetch_models.sh fetches it)");
    return;
  }
  const fs::path data = llmc::test::shared_dir() / "data" / "wikitext-2-raw" / "wiki.valid.raw";
  const fs::path dir = llmc::test::scratch_dir("tokenize_cli");
  const fs::path ids_file = dir / "valid.ids";
  fs::remove(ids_file);
  const std::string model = "'" + gguf.string() + "'";
  auto [code, out] = run_cli("tokenize " + model + " --data '" + data.string() + "' -o '" + ids_file.string() + "'");
  REQUIRE(code == 0);

  std::ifstream in(ids_file);
  const std::vector<int64_t> got{std::istream_iterator<int64_t>(in), std::istream_iterator<int64_t>()};
  const llmc::Model m = llmc::runtime::load_model(gguf.string());
  const std::vector<int64_t> want = llmc::runtime::load_tokenizer(m)->encode(llmc::formats::read_text_file(data.string()), false);
  CHECK(got.size() > 200000);
  CHECK(got == want);

  const auto by_text = run_cli("eval " + model + " --data '" + data.string() + "' --max-windows 2 --json");
  const auto by_ids = run_cli("eval " + model + " --tokens '" + ids_file.string() + "' --max-windows 2 --json");
  REQUIRE(by_text.first == 0);
  REQUIRE(by_ids.first == 0);
  const double p_text = nlohmann::json::parse(by_text.second)["perplexity"].get<double>();
  const double p_ids = nlohmann::json::parse(by_ids.second)["perplexity"].get<double>();
  CHECK(p_text > 1.0);
  CHECK(p_ids == p_text);

  // Bad input: a missing text file exits 3, a missing -o exits 2; neither leaves a file.
  const fs::path never = dir / "never.ids";
  fs::remove(never);
  CHECK(run_cli("tokenize " + model + " --data '" + (dir / "no-such.txt").string() + "' -o '" + never.string() + "'").first == 3);
  CHECK(run_cli("tokenize " + model + " --data '" + data.string() + "'").first == 2);
  CHECK_FALSE(fs::exists(never));
}
