#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "formats/hf_config.hpp"
#include "formats/safetensors.hpp"
#include "tests/test_util.hpp"

using namespace llmc;
using nlohmann::json;

namespace {

// Writes a safetensors file by hand (independently of the writer) from a header and data bytes.
std::string write_raw(const std::filesystem::path& p, const std::string& header, const std::string& data,
                      int64_t hlen_override = -1) {
  std::ofstream f(p, std::ios::binary);
  uint64_t hlen = hlen_override >= 0 ? static_cast<uint64_t>(hlen_override) : header.size();
  f.write(reinterpret_cast<const char*>(&hlen), 8);
  f << header << data;
  return p.string();
}

std::string error_of(const std::string& path) {
  try {
    formats::read_safetensors(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("safetensors: hand-written file reads zero-copy with the right values") {
  auto dir = test::scratch_dir("st_read");
  std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.125f, 7.0f, -9.5f};
  std::vector<int64_t> b = {5, -7, 1LL << 40};
  std::string data(reinterpret_cast<const char*>(a.data()), 24);
  data.append(reinterpret_cast<const char*>(b.data()), 24);
  json h = {{"a", {{"dtype", "F32"}, {"shape", {2, 3}}, {"data_offsets", {0, 24}}}},
            {"b", {{"dtype", "I64"}, {"shape", {3}}, {"data_offsets", {24, 48}}}},
            {"__metadata__", {{"format", "pt"}}}};
  auto path = write_raw(dir / "m.safetensors", h.dump(), data);
  auto f = formats::read_safetensors(path);
  REQUIRE(f.tensors.size() == 2);
  CHECK(f.tensors["a"].shape() == Shape{2, 3});
  CHECK(f.tensors["a"].readonly());
  CHECK(f.tensors["a"].f32_values() == a);
  CHECK(f.tensors["b"].i64_values() == b);
  CHECK(f.metadata["format"] == "pt");
  CHECK(f.order == std::vector<std::string>{"a", "b"});
}

TEST_CASE("safetensors: writer round trip for every dtype, atomically") {
  auto dir = test::scratch_dir("st_write");
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-3, 3);
  std::map<std::string, Tensor> ts;
  for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::I8, DType::U8, DType::I32, DType::I64, DType::Bool}) {
    Tensor f(DType::F32, {3, 5});
    for (int i = 0; i < 15; ++i) f.mutable_data<float>()[i] = dt == DType::Bool ? float(rng() % 2) : u(rng) * 10;
    ts["t_" + dtype_name(dt)] = f.to(dt);
  }
  auto path = (dir / "out.safetensors").string();
  formats::write_safetensors(path, ts, {{"k", "v"}});
  auto back = formats::read_safetensors(path);
  CHECK(back.metadata["k"] == "v");
  for (auto& [n, t] : ts) {
    REQUIRE(back.tensors.count(n));
    CHECK(back.tensors[n].dtype() == t.dtype());
    CHECK(std::memcmp(back.tensors[n].raw(), t.raw(), t.nbytes()) == 0);
  }
  // nothing else left in the directory (no temporary files)
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  CHECK(files == 1);
  // an unwritable destination fails cleanly
  CHECK_THROWS_AS(formats::write_safetensors((dir / "missing_dir" / "x.safetensors").string(), ts), Error);
}

TEST_CASE("safetensors: sharded checkpoint through the index") {
  auto dir = test::scratch_dir("st_shards");
  Tensor a = Tensor::from_f32({2}, {1.0f, 2.0f}), b = Tensor::from_f32({3}, {3.0f, 4.0f, 5.0f});
  formats::write_safetensors((dir / "model-00001-of-00002.safetensors").string(), {{"a", a}});
  formats::write_safetensors((dir / "model-00002-of-00002.safetensors").string(), {{"b", b}});
  json idx = {{"weight_map", {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}}}};
  std::ofstream(dir / "model.safetensors.index.json") << idx.dump();
  auto f = formats::read_safetensors_checkpoint(dir.string());
  CHECK(f.tensors["a"].f32_values() == a.f32_values());
  CHECK(f.tensors["b"].f32_values() == b.f32_values());
  idx["weight_map"]["c"] = "model-00002-of-00002.safetensors";
  std::ofstream(dir / "model.safetensors.index.json") << idx.dump();
  CHECK_THROWS_WITH_AS(formats::read_safetensors_checkpoint(dir.string()), doctest::Contains("'c'"), Error);
}

TEST_CASE("safetensors: bad input is refused with the file and the problem named") {
  auto dir = test::scratch_dir("st_bad");
  std::string data(32, '\x01');
  auto hdr = [](const std::string& dt, json shape, uint64_t b, uint64_t e) {
    return json{{"w", {{"dtype", dt}, {"shape", shape}, {"data_offsets", {b, e}}}}}.dump();
  };
  SUBCASE("header length past the end of the file") {
    auto p = write_raw(dir / "h.safetensors", hdr("F32", {8}, 0, 32), data, 1 << 20);
    auto e = error_of(p);
    CHECK(e.find(p) != std::string::npos);
    CHECK(e.find("past the end") != std::string::npos);
  }
  SUBCASE("out-of-range offsets") {
    auto e = error_of(write_raw(dir / "r.safetensors", hdr("F32", {16}, 0, 64), data));
    CHECK(e.find("'w'") != std::string::npos);
    CHECK(e.find("out of range") != std::string::npos);
  }
  SUBCASE("overlapping offsets") {
    json h = {{"a", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 16}}}},
              {"b", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {8, 24}}}}};
    auto e = error_of(write_raw(dir / "o.safetensors", h.dump(), std::string(24, '\x02')));
    CHECK(e.find("overlaps") != std::string::npos);
  }
  SUBCASE("unknown dtype") {
    auto e = error_of(write_raw(dir / "d.safetensors", hdr("F8_E9M9", {8}, 0, 32), data));
    CHECK(e.find("unknown dtype 'F8_E9M9'") != std::string::npos);
  }
  SUBCASE("shape x dtype != byte length") {
    auto e = error_of(write_raw(dir / "s.safetensors", hdr("F32", {3, 3}, 0, 32), data));
    CHECK(e.find("needs 36 bytes") != std::string::npos);
  }
  SUBCASE("too short and not JSON") {
    CHECK(error_of(write_raw(dir / "t.safetensors", "", "", 0)).find("JSON") != std::string::npos);
    std::ofstream(dir / "x.safetensors") << "abc";
    CHECK(error_of((dir / "x.safetensors").string()).find("too short") != std::string::npos);
  }
}

TEST_CASE("config.json: a missing required field is named") {
  auto dir = test::scratch_dir("cfg");
  json cfg = {{"model_type", "llama"}, {"hidden_size", 64}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
              {"vocab_size", 100}};
  std::ofstream(dir / "config.json") << cfg.dump();
  auto j = formats::read_hf_config((dir / "config.json").string());
  CHECK_THROWS_WITH_AS(formats::llama_config(j, "cfg.json"),
                       doctest::Contains("cfg.json: missing required field 'intermediate_size'"), Error);
  cfg["intermediate_size"] = 128;
  cfg["num_key_value_heads"] = 3;
  CHECK_THROWS_WITH_AS(formats::llama_config(cfg, "c"), doctest::Contains("not a multiple"), Error);
  cfg["num_key_value_heads"] = 2;
  auto c = formats::llama_config(cfg, "c");
  CHECK(c.head_dim == 16);
  CHECK(c.num_kv_heads == 2);
  std::ofstream(dir / "bad.json") << "{not json";
  CHECK_THROWS_WITH_AS(formats::read_hf_config((dir / "bad.json").string()), doctest::Contains("invalid JSON"), Error);
}
