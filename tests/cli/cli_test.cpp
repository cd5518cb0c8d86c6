// The llmcompress executable on bad input: one line on stderr naming the file and the problem,
// the documented exit code (2 usage, 3 bad input), and no output file left behind.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "formats/safetensors.hpp"
#include "tests/test_util.hpp"

using namespace llmc;
namespace fs = std::filesystem;

namespace {

struct Result {
  int code;
  std::string out;
};

// Runs the CLI with stdout discarded and stderr captured.
Result cli(const std::string& args) {
  const char* exe = std::getenv("LLMC_CLI");
  REQUIRE_MESSAGE(exe, "LLMC_CLI must name the llmcompress binary (ctest sets it)");
  std::string cmd = std::string(exe) + " " + args + " 2>&1 >/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

void expect_bad_input(const Result& r, const std::string& must_contain) {
  CAPTURE(r.out);
  CHECK(r.code == 3);
  CHECK(lines(r.out) == 1);
  CHECK(r.out.find(must_contain) != std::string::npos);
}

nlohmann::json tiny_config() {
  return {{"model_type", "llama"}, {"hidden_size", 32}, {"intermediate_size", 64}, {"num_hidden_layers", 1},
          {"num_attention_heads", 2}, {"num_key_value_heads", 1}, {"vocab_size", 64}, {"rms_norm_eps", 1e-5}};
}

// A one-layer random Llama checkpoint directory; `poison` puts a NaN into that weight.
fs::path tiny_checkpoint(const fs::path& dir, const std::string& poison = "") {
  fs::create_directories(dir);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0, 0.1f);
  std::map<std::string, Tensor> w;
  auto add = [&](const std::string& n, Shape s, float mean = 0) {
    Tensor t(DType::F32, s);
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = mean + nd(rng);
    if (n == poison) t.mutable_data<float>()[5] = NAN;
    w[n] = t;
  };
  add("model.embed_tokens.weight", {64, 32});
  add("lm_head.weight", {64, 32});
  add("model.norm.weight", {32}, 1);
  const std::string p = "model.layers.0.";
  add(p + "input_layernorm.weight", {32}, 1);
  add(p + "post_attention_layernorm.weight", {32}, 1);
  add(p + "self_attn.q_proj.weight", {32, 32});
  add(p + "self_attn.k_proj.weight", {16, 32});
  add(p + "self_attn.v_proj.weight", {16, 32});
  add(p + "self_attn.o_proj.weight", {32, 32});
  add(p + "mlp.gate_proj.weight", {64, 32});
  add(p + "mlp.up_proj.weight", {64, 32});
  add(p + "mlp.down_proj.weight", {32, 64});
  formats::write_safetensors((dir / "model.safetensors").string(), w);
  std::ofstream(dir / "config.json") << tiny_config().dump();
  return dir;
}

void write_bytes(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

}  // namespace

TEST_CASE("cli: usage errors exit 2") {
  CHECK(cli("").code == 2);
  CHECK(cli("frobnicate").code == 2);
  auto r = cli("eval");
  CHECK(r.code == 2);
  CHECK(r.out.find("MODEL") != std::string::npos);
  CHECK(cli("quantize x --scheme w5a16 -o y.llmc").code == 2);
}

TEST_CASE("cli: broken model files exit 3 with one line naming the file") {
  auto dir = test::scratch_dir("cli_bad_files");
  SUBCASE("safetensors header past the end") {
    fs::create_directories(dir / "ck");
    std::ofstream(dir / "ck" / "config.json") << tiny_config().dump();
    std::string b(8, '\0');
    b[0] = '\x40';
    b[2] = '\x01';  // 65600-byte header in a tiny file
    write_bytes(dir / "ck" / "model.safetensors", b + "{}");
    expect_bad_input(cli("inspect " + (dir / "ck").string()), "model.safetensors");
  }
  SUBCASE("config.json missing a required field") {
    auto ck = tiny_checkpoint(dir / "cfg");
    auto cfg = tiny_config();
    cfg.erase("num_attention_heads");
    std::ofstream(ck / "config.json") << cfg.dump();
    expect_bad_input(cli("run " + ck.string() + " --prompt hi"), "missing required field 'num_attention_heads'");
  }
  SUBCASE("an ONNX file that is not Protobuf") {
    write_bytes(dir / "m.onnx", std::string("\x0a\xff\xff\xff\xff\x0f garbage", 15));
    expect_bad_input(cli("inspect " + (dir / "m.onnx").string()), "m.onnx");
  }
  SUBCASE("a GGUF with a truncated tensor table") {
    std::string g = "GGUF";
    uint32_t v = 3;
    uint64_t tensors = 5, kv = 0;
    g.append(reinterpret_cast<char*>(&v), 4);
    g.append(reinterpret_cast<char*>(&tensors), 8);
    g.append(reinterpret_cast<char*>(&kv), 8);
    write_bytes(dir / "t.gguf", g);
    expect_bad_input(cli("inspect " + (dir / "t.gguf").string()), "t.gguf");
  }
  SUBCASE("not a model at all") {
    write_bytes(dir / "notes.txt", "\xff\xfe hello");
    expect_bad_input(cli("inspect " + (dir / "notes.txt").string()), "notes.txt");
  }
}

TEST_CASE("cli: compression refuses bad requests and leaves no output behind") {
  auto dir = test::scratch_dir("cli_compress");
  auto ck = tiny_checkpoint(dir / "ok");
  const std::string out = (dir / "out.llmc").string();
  SUBCASE("NaN in a weight is refused, naming the tensor") {
    auto bad = tiny_checkpoint(dir / "nan", "model.layers.0.mlp.up_proj.weight");
    expect_bad_input(cli("quantize " + bad.string() + " -o " + out + " --group-size 32"), "mlp.up_proj");
  }
  SUBCASE("a group size that does not divide the input dimension") {
    expect_bad_input(cli("quantize " + ck.string() + " -o " + out + " --group-size 48"), "48");
  }
  SUBCASE("an empty calibration file") {
    write_bytes(dir / "empty.txt", "");
    std::ofstream(dir / "ok" / "ids.txt") << "";
    expect_bad_input(cli("quantize " + ck.string() + " -o " + out + " --method gptq --group-size 32 --calib-tokens " +
                         (dir / "empty.txt").string()),
                     "empty.txt");
  }
  SUBCASE("a calibration stream shorter than one window") {
    std::ofstream(dir / "short.txt") << "1 2 3 4 5";
    expect_bad_input(cli("prune " + ck.string() + " -o " + out + " --method wanda --seqlen 16 --calib-tokens " +
                         (dir / "short.txt").string()),
                     "fewer than one window");
  }
  SUBCASE("sparsity outside [0, 1) and N >= M") {
    CHECK(cli("prune " + ck.string() + " -o " + out + " --sparsity 1.0").code == 2);
    CHECK(cli("prune " + ck.string() + " -o " + out + " --pattern 4:2").code == 2);
  }
  SUBCASE("output equal to the input, and an unwritable directory") {
    auto r = cli("quantize " + ck.string() + " -o " + ck.string() + " --group-size 32");
    CHECK(r.code == 2);
    CHECK(r.out.find("output path is the input path") != std::string::npos);
    expect_bad_input(cli("quantize " + ck.string() + " -o " + (dir / "no" / "x.llmc").string() + " --group-size 32"),
                     "does not exist");
  }
  CHECK_FALSE(fs::exists(out));
  for (auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
  // and the happy path works: quantize, then evaluate against the original on token ids
  std::ofstream(dir / "ids.txt") << "3 9 27 17 51 25 11 33 35 41 59 49 19 57 43 1 3 9 27 17 51 25 11 33 35 41";
  auto q = cli("quantize " + ck.string() + " -o " + out + " --group-size 32");
  CHECK(q.code == 0);
  CHECK(fs::exists(out));
  auto e = cli("eval " + out + " --tokens " + (dir / "ids.txt").string() + " --ctx 8 --reference " + ck.string());
  CHECK(e.code == 0);
}
