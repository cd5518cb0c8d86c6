// GGUF reader tests: metadata of every value type, dequantization of every supported ggml type
// against gguf-py (fixtures from tests/fixtures/make_gguf_fixtures.py), and malformed files.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "formats/gguf.hpp"
#include "formats/gguf_llama.hpp"
#include "tests/test_util.hpp"

using namespace llmc;
using namespace llmc::formats;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path fixture(const std::string& name) { return test::fixtures_dir() / "gguf" / name; }

json load_json(const fs::path& p) { return json::parse(read_text_file(p.string())); }

std::vector<float> load_f32(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open " << p);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

std::string read_bytes(const fs::path& p) { return read_text_file(p.string()); }

void write_bytes(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary);
  out.write(s.data(), static_cast<std::streamsize>(s.size()));
}

GgufType type_from_manifest(const std::string& s) {
  static const std::map<std::string, GgufType> m = {
      {"UINT8", GgufType::U8},   {"INT8", GgufType::I8},       {"UINT16", GgufType::U16}, {"INT16", GgufType::I16},
      {"UINT32", GgufType::U32}, {"INT32", GgufType::I32},     {"FLOAT32", GgufType::F32}, {"BOOL", GgufType::Bool},
      {"STRING", GgufType::String}, {"ARRAY", GgufType::Array}, {"UINT64", GgufType::U64}, {"INT64", GgufType::I64},
      {"FLOAT64", GgufType::F64}};
  return m.at(s);
}

// Bitwise equality, so -0.0 and +0.0 differ and a NaN never passes.
bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0 && !std::isnan(a); }

// A minimal GGUF writer for malformed-file tests (gguf.md "File Structure").
struct Builder {
  std::string b;
  void u32(uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); }
  void u64(uint64_t v) { b.append(reinterpret_cast<const char*>(&v), 8); }
  void str(const std::string& s) { u64(s.size()); b += s; }
  void header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b += "GGUF";
    u32(version);
    u64(n_tensors);
    u64(n_kv);
  }
  void kv_str(const std::string& k, const std::string& v) { str(k); u32(8); str(v); }
  void kv_u32(const std::string& k, uint32_t v) { str(k); u32(4); u32(v); }
  void tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
    str(name);
    u32(static_cast<uint32_t>(dims.size()));
    for (auto d : dims) u64(d);
    u32(type);
    u64(offset);
  }
  void pad(size_t a = 32) { b.resize((b.size() + a - 1) / a * a, '\0'); }
  void data(size_t n, uint8_t seed) {
    for (size_t i = 0; i < n; ++i) b += static_cast<char>(seed + 37 * i);
  }
};

// One f32 [8] tensor named "w", 32 data bytes: the valid baseline the error cases bend.
Builder valid_file(uint32_t version = 3) {
  Builder g;
  g.header(version, 1, 1);
  g.kv_str("general.architecture", "test");
  g.tensor("w", {8}, 0, 0);
  g.pad();
  g.data(32, 3);
  return g;
}

std::string error_of(const std::string& bytes, const std::string& name) {
  auto p = test::scratch_dir("gguf_err") / name;
  write_bytes(p, bytes);
  try {
    read_gguf(p.string());
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("gguf: metadata of every value type matches what gguf-py wrote") {
  const json man = load_json(fixture("quants.json"));
  GgufFile f = read_gguf(fixture("quants.gguf").string());
  CHECK(f.version == 3);
  CHECK(f.alignment == 64);
  CHECK(f.data_offset % 64 == 0);
  size_t tokenizer_keys = 0;
  for (auto& [k, v] : f.metadata) tokenizer_keys += k.rfind("tokenizer.", 0) == 0;
  CHECK(tokenizer_keys == 9);
  CHECK(f.metadata.size() == man["metadata"].size() + tokenizer_keys);
  CHECK(f.metadata_order.size() == f.metadata.size());
  for (auto& [key, want] : man["metadata"].items()) {
    CAPTURE(key);
    REQUIRE(f.has(key));
    const GgufValue& v = f.at(key);
    CHECK(v.type == type_from_manifest(want["type"]));
    if (!want["elem_type"].is_null()) CHECK(v.elem_type == type_from_manifest(want["elem_type"]));
    if (v.type == GgufType::F32) {
      CHECK(static_cast<float>(v.value.get<double>()) == static_cast<float>(want["value"].get<double>()));
    } else if (v.type == GgufType::Array && v.elem_type == GgufType::F32) {
      REQUIRE(v.value.size() == want["value"].size());
      for (size_t i = 0; i < v.value.size(); ++i)
        CHECK(static_cast<float>(v.value[i].get<double>()) == static_cast<float>(want["value"][i].get<double>()));
    } else {
      CHECK(v.value == want["value"]);
    }
  }
  // typed getters
  CHECK(f.get_uint("test.u64") == 9223372036854775813ull);
  CHECK(f.get_int("test.i64") == -4611686018427387907ll);
  CHECK(f.get_int("test.i8") == -100);
  CHECK(f.get_uint("test.u32") == 4000000000ull);
  CHECK(static_cast<float>(f.get_float("test.f32")) == 0.1f);
  CHECK(f.get_float("test.f32") == 0.1);  // the shortest decimal of the f32, as documented
  CHECK(f.get_float("test.f64") == 3.141592653589793);
  CHECK(f.get_bool("test.bool_true"));
  CHECK_FALSE(f.get_bool("test.bool_false"));
  CHECK(f.get_string("test.string") == "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93");
  CHECK(f.get_string_array("test.array_str") == std::vector<std::string>{"a", "bc", "", "d\xc3\xa9" "f"});
  CHECK(f.get_int_array("test.array_i32") == std::vector<int64_t>{1, -2, 300000});
  CHECK(f.get_int_array("test.array_u8") == std::vector<int64_t>{0, 7, 255});
  CHECK(f.get_float_array("test.array_f64") == std::vector<double>{0.1, -2.5e-300});
  CHECK(f.metadata_json()["test.array_nested"] == json::parse("[[1,2],[3],[4,5,6]]"));
  CHECK(f.get_uint_or("test.absent", 17) == 17);
  // wrong kind and missing key name the key and the stored type
  CHECK_THROWS_WITH_AS(f.get_string("test.u8"), doctest::Contains("'test.u8' is u8, expected a string"), Error);
  CHECK_THROWS_WITH_AS(f.get_uint("test.i8"), doctest::Contains("'test.i8' is i8"), Error);
  CHECK_THROWS_WITH_AS(f.get_int_array("test.array_str"), doctest::Contains("array of string"), Error);
  CHECK_THROWS_WITH_AS(f.get_uint("nope"), doctest::Contains("'nope' is missing"), Error);
}

TEST_CASE("gguf: every supported type dequantizes bit-exactly like gguf-py") {
  // Exact equality is the right bar: every product d*scale*q is exact in f32 (see
  // gguf_dequant.hpp), so ggml, gguf-py (numpy f32) and this code round only the final add.
  const json man = load_json(fixture("quants.json"));
  GgufFile f = read_gguf(fixture("quants.gguf").string());
  REQUIRE(man["tensors"].size() == 9);
  for (auto& t : man["tensors"]) {
    const std::string name = t["name"];
    CAPTURE(name);
    const GgufTensorInfo& info = f.tensor(name);
    CHECK(info.type == t["ggml_type"].get<uint32_t>());
    CHECK(ggml_type_name(info.type) == t["type_name"].get<std::string>());
    CHECK(info.offset % f.alignment == 0);
    const Shape shape = t["shape"].get<Shape>();
    CHECK(info.shape() == shape);
    const std::vector<float> ref = load_f32(fixture("quants/" + name + ".f32"));
    REQUIRE(static_cast<int64_t>(ref.size()) == shape_numel(shape));
    CHECK(std::set<float>(ref.begin(), ref.end()).size() > ref.size() / 4);  // random, not constant

    Tensor got = gguf_tensor_f32(f, name);
    REQUIRE(got.dtype() == DType::F32);
    REQUIRE(got.shape() == shape);
    CHECK_FALSE(got.readonly());
    const float* g = got.data<float>();
    int64_t mismatches = 0;
    for (size_t i = 0; i < ref.size(); ++i) mismatches += !same_bits(g[i], ref[i]);
    CHECK(mismatches == 0);

    // gguf_tensor borrows the plain float types from the mapping and dequantizes the rest
    Tensor b = gguf_tensor(f, name);
    REQUIRE(b.shape() == shape);
    const bool plain = info.type == 0 || info.type == 1 || info.type == 30;
    CHECK(b.readonly() == plain);
    if (plain) {
      CHECK(b.raw() == static_cast<const void*>(f.tensor_data(info)));
      CHECK(b.dtype() == (info.type == 0 ? DType::F32 : info.type == 1 ? DType::F16 : DType::BF16));
    } else {
      CHECK(b.dtype() == DType::F32);
    }
    const std::vector<float> bv = b.f32_values();
    mismatches = 0;
    for (size_t i = 0; i < ref.size(); ++i) mismatches += !same_bits(bv[i], ref[i]);
    CHECK(mismatches == 0);
  }
}

TEST_CASE("gguf: dequantization splits over OpenMP blocks the same as serially") {
  // Many blocks (above the parallel threshold) assembled by repeating the fixture's blocks with
  // a per-copy twist of the quant bytes; each block must equal its own single-block result.
  GgufFile f = read_gguf(fixture("quants.gguf").string());
  for (const char* name : {"q4_0", "q4_1", "q8_0", "q4_k", "q5_k", "q6_k"}) {
    CAPTURE(name);
    const GgufTensorInfo& t = f.tensor(name);
    const GgmlTypeInfo* ti = ggml_type_info(t.type);
    const int64_t nb_src = t.numel() / ti->block_size, copies = 4096 / nb_src + 1;
    std::vector<uint8_t> buf;
    for (int64_t c = 0; c < copies; ++c)
      for (int64_t k = 0; k < nb_src; ++k) {
        const uint8_t* blk = f.tensor_data(t) + k * ti->type_size;
        size_t at = buf.size();
        buf.insert(buf.end(), blk, blk + ti->type_size);
        buf[at + ti->type_size / 2] ^= static_cast<uint8_t>(c * 29);  // a quant byte in every layout
      }
    const int64_t nb = copies * nb_src;
    std::vector<float> all(static_cast<size_t>(nb * ti->block_size)), one(static_cast<size_t>(ti->block_size));
    ggml_dequantize(t.type, buf.data(), all.data(), nb * ti->block_size);
    int64_t mismatches = 0;
    for (int64_t k = 0; k < nb; ++k) {
      ggml_dequantize(t.type, buf.data() + k * ti->type_size, one.data(), ti->block_size);
      mismatches += std::memcmp(one.data(), all.data() + k * ti->block_size, one.size() * 4) != 0;
    }
    CHECK(mismatches == 0);
  }
  std::vector<float> out(32);
  uint8_t junk[64] = {};
  CHECK_THROWS_WITH_AS(ggml_dequantize(2, junk, out.data(), 31), doctest::Contains("not a whole number of Q4_0 blocks"), Error);
  CHECK_THROWS_WITH_AS(ggml_dequantize(6, junk, out.data(), 32), doctest::Contains("Q5_0"), Error);
}

TEST_CASE("gguf: a version 2 file reads like version 3") {
  // v2 and v3 share the little-endian layout (v3 only added big-endian files).
  std::string bytes = read_bytes(fixture("quants.gguf"));
  bytes[4] = 2;
  auto p = test::scratch_dir("gguf_v2") / "quants_v2.gguf";
  write_bytes(p, bytes);
  GgufFile v2 = read_gguf(p.string());
  GgufFile v3 = read_gguf(fixture("quants.gguf").string());
  CHECK(v2.version == 2);
  CHECK(v2.metadata_json() == v3.metadata_json());
  REQUIRE(v2.tensors.size() == v3.tensors.size());
  for (size_t i = 0; i < v2.tensors.size(); ++i) {
    CHECK(v2.tensors[i].name == v3.tensors[i].name);
    CHECK(gguf_tensor_f32(v2, v2.tensors[i].name).f32_values() == gguf_tensor_f32(v3, v3.tensors[i].name).f32_values());
  }
}

TEST_CASE("gguf: the BPE tokenizer description") {
  const json man = load_json(fixture("quants.json"));
  GgufFile f = read_gguf(fixture("quants.gguf").string());
  CHECK(gguf_tokenizer_json(f) == man["tokenizer"]);
}

TEST_CASE("gguf: malformed files raise errors that name the problem") {
  // baseline reads
  auto ok = test::scratch_dir("gguf_ok") / "ok.gguf";
  write_bytes(ok, valid_file().b);
  CHECK(read_gguf(ok.string()).tensor("w").nbytes == 32);
  write_bytes(ok, valid_file(2).b);
  CHECK(read_gguf(ok.string()).version == 2);

  SUBCASE("bad magic") {
    std::string b = valid_file().b;
    b[0] = 'X';
    CHECK(error_of(b, "magic.gguf").find("bad magic") != std::string::npos);
    CHECK(error_of("GG", "short.gguf").find("bad magic") != std::string::npos);
  }
  SUBCASE("unsupported versions") {
    CHECK(error_of(valid_file(1).b, "v1.gguf").find("version 1") != std::string::npos);
    CHECK(error_of(valid_file(4).b, "v4.gguf").find("unsupported GGUF version 4") != std::string::npos);
    CHECK(error_of(valid_file(0x03000000u).b, "be.gguf").find("big-endian") != std::string::npos);
  }
  SUBCASE("truncated file: tensor data past the end names the tensor") {
    std::string b = valid_file().b;
    b.resize(b.size() - 1);
    std::string e = error_of(b, "trunc.gguf");
    CHECK(e.find("tensor 'w'") != std::string::npos);
    CHECK(e.find("past the end of the file") != std::string::npos);
    // the real fixture cut in its data section: the message names the first tensor that no longer fits
    std::string q = read_bytes(fixture("quants.gguf"));
    q.resize(q.size() - 100);
    e = error_of(q, "trunc_quants.gguf");
    CHECK(e.find("tensor 'q6_k'") != std::string::npos);
    CHECK(e.find("truncated") != std::string::npos);
  }
  SUBCASE("truncated file: inside the header and metadata") {
    std::string b = valid_file().b;
    for (size_t cut : {6, 20, 30, 40, 60}) {
      CAPTURE(cut);
      CHECK(error_of(b.substr(0, cut), "cut.gguf").find("past the end of the file") != std::string::npos);
    }
  }
  SUBCASE("unknown quantization type names the tensor and the id") {
    Builder g;
    g.header(3, 1, 0);
    g.tensor("blk.0.weird", {32}, 99, 0);
    g.pad();
    g.data(64, 1);
    std::string e = error_of(g.b, "type99.gguf");
    CHECK(e.find("tensor 'blk.0.weird'") != std::string::npos);
    CHECK(e.find("unknown ggml type id 99") != std::string::npos);
  }
  SUBCASE("a known type without a dequantizer names the tensor and the type") {
    Builder g;
    g.header(3, 1, 0);
    g.tensor("q5", {32, 2}, 6, 0);  // Q5_0: 2 blocks of 22 bytes
    g.pad();
    g.data(44, 1);
    auto p = test::scratch_dir("gguf_q5") / "q5.gguf";
    write_bytes(p, g.b);
    GgufFile f = read_gguf(p.string());
    CHECK(f.tensor("q5").nbytes == 44);
    CHECK_THROWS_WITH_AS(gguf_tensor_f32(f, "q5"), doctest::Contains("tensor 'q5': cannot dequantize ggml type Q5_0 (id 6)"), Error);
  }
  SUBCASE("a string length past the end") {
    Builder g;
    g.header(3, 0, 1);
    g.str("general.name");
    g.u32(8);
    g.u64(1000);
    g.b += "short";
    std::string e = error_of(g.b, "strlen.gguf");
    CHECK(e.find("metadata 'general.name'") != std::string::npos);
    CHECK(e.find("string length 1000") != std::string::npos);
    // and a key length past the end, and an array longer than the file
    Builder k;
    k.header(3, 0, 1);
    k.u64(1ull << 40);
    CHECK(error_of(k.b, "keylen.gguf").find("string length 1099511627776") != std::string::npos);
    Builder a;
    a.header(3, 0, 1);
    a.str("tokenizer.ggml.tokens");
    a.u32(9);
    a.u32(8);
    a.u64(1ull << 50);
    CHECK(error_of(a.b, "arr.gguf").find("array of 1125899906842624 string values runs past the end") != std::string::npos);
  }
  SUBCASE("n_dims > 4") {
    Builder g;
    g.header(3, 1, 0);
    g.tensor("big", {2, 2, 2, 2, 2}, 0, 0);
    g.pad();
    g.data(128, 1);
    std::string e = error_of(g.b, "ndims.gguf");
    CHECK(e.find("tensor 'big'") != std::string::npos);
    CHECK(e.find("n_dims 5 exceeds the maximum of 4") != std::string::npos);
  }
  SUBCASE("other inconsistencies") {
    Builder g;  // offset not a multiple of the alignment
    g.header(3, 1, 0);
    g.tensor("w", {8}, 0, 4);
    g.pad();
    g.data(64, 1);
    CHECK(error_of(g.b, "align.gguf").find("not a multiple of the alignment 32") != std::string::npos);
    Builder r;  // a row that is not a whole number of blocks
    r.header(3, 1, 0);
    r.tensor("q", {16}, 8, 0);
    r.pad();
    r.data(64, 1);
    CHECK(error_of(r.b, "rows.gguf").find("not a whole number of Q8_0 blocks") != std::string::npos);
    Builder d;  // duplicate key
    d.header(3, 0, 2);
    d.kv_u32("a.b", 1);
    d.kv_u32("a.b", 2);
    CHECK(error_of(d.b, "dup.gguf").find("duplicate metadata key 'a.b'") != std::string::npos);
    Builder t;  // unknown value type
    t.header(3, 0, 1);
    t.str("a.b");
    t.u32(13);
    CHECK(error_of(t.b, "vtype.gguf").find("unknown value type 13") != std::string::npos);
    Builder al;  // alignment not a power of two
    al.header(3, 0, 1);
    al.kv_u32("general.alignment", 48);
    CHECK(error_of(al.b, "al.gguf").find("not a power of two") != std::string::npos);
    Builder dt;  // duplicate tensor
    dt.header(3, 2, 0);
    dt.tensor("w", {8}, 0, 0);
    dt.tensor("w", {8}, 0, 32);
    dt.pad();
    dt.data(64, 1);
    CHECK(error_of(dt.b, "duptensor.gguf").find("duplicate tensor name 'w'") != std::string::npos);
  }
}
