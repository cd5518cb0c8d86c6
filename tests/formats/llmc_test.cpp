// The .llmc container for compressed weights: every layout (INT4/INT8, symmetric or not, act-order,
// a short last group) survives write → read bit for bit, the tensors have the shapes docs/format.md
// gives (read back through the plain safetensors reader), and the file is deterministic.
#include <doctest/doctest.h>

#include <fstream>
#include <random>

#include "formats/llmc.hpp"
#include "formats/safetensors.hpp"
#include "tests/test_util.hpp"

using namespace llmc;

namespace {

QuantizedWeight random_weight(int bits, bool sym, int64_t rows, int64_t cols, int64_t gs, bool act_order,
                              uint32_t seed) {
  std::mt19937 rng(seed);
  QuantizedWeight w = QuantizedWeight::allocate(bits, rows, cols, gs, sym);
  std::uniform_int_distribution<int> qd(w.qmin(), w.qmax()), zd(0, (1 << bits) - 1);
  std::uniform_real_distribution<float> sd(0.001f, 0.05f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) w.set_q(r, c, qd(rng));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < w.n_groups(); ++g) {
      w.scales[r * w.n_groups() + g] = f32_to_f16(sd(rng));
      if (!sym) w.set_zero(r, g, zd(rng));
    }
  if (act_order) {
    std::vector<int32_t> perm(cols);
    for (int64_t j = 0; j < cols; ++j) perm[j] = static_cast<int32_t>(j);
    std::shuffle(perm.begin(), perm.end(), rng);
    w.g_idx.resize(cols);
    for (int64_t j = 0; j < cols; ++j) w.g_idx[perm[j]] = static_cast<int32_t>(j / w.group_len());
  }
  w.validate("w");
  return w;
}

std::string file_bytes(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

struct Layout {
  std::string name;
  int bits;
  bool sym;
  int64_t rows, cols, gs;
  bool act_order;
};

}  // namespace

TEST_CASE(".llmc stores quantized weights bit for bit, short last groups included") {
  const Layout layouts[] = {
      {"w4_sym_ragged", 4, true, 7, 200, 64, false},      // 3·64 + 8, odd rows: nibbles straddle rows
      {"w4_asym_g128", 4, false, 5, 576, 128, false},     // 4·128 + 64 (SmolLM2 hidden size)
      {"w4_asym_actorder", 4, false, 6, 576, 128, true},  // act-order over a short last group
      {"w8_asym_ragged", 8, false, 3, 200, 64, false},
      {"w8_sym_channel", 8, true, 4, 96, 0, false},
      {"w4_sym_even", 4, true, 4, 256, 32, false},        // a layout that version-1 readers always knew
  };
  Model m;
  m.arch = "llama";
  m.config = {{"model_type", "llama"}};
  m.tokenizer = nullptr;
  m.source = "in-memory";
  uint32_t seed = 40;
  for (const Layout& l : layouts) m.graph.quantized[l.name] = random_weight(l.bits, l.sym, l.rows, l.cols, l.gs, l.act_order, ++seed);
  m.graph.weights["dense"] = Tensor::from_f32({2, 3}, {1.5f, -2.0f, 0.25f, 3.0f, 0.0f, -0.125f});

  auto dir = test::scratch_dir("llmc_format");
  const std::string p1 = (dir / "a.llmc").string(), p2 = (dir / "b.llmc").string();
  formats::write_llmc(m, p1);
  formats::write_llmc(m, p2);
  CHECK(file_bytes(p1) == file_bytes(p2));

  Model back = formats::read_llmc(p1);
  REQUIRE(back.graph.quantized.size() == m.graph.quantized.size());
  for (const Layout& l : layouts) {
    CAPTURE(l.name);
    const QuantizedWeight& a = m.graph.quantized.at(l.name);
    const QuantizedWeight& b = back.graph.quantized.at(l.name);
    CHECK(b.bits == a.bits);
    CHECK(b.rows == a.rows);
    CHECK(b.cols == a.cols);
    CHECK(b.group_len() == a.group_len());
    CHECK(b.n_groups() == a.n_groups());
    CHECK(b.symmetric == a.symmetric);
    CHECK(b.packed == a.packed);
    CHECK(b.scales == a.scales);
    CHECK(b.zeros == a.zeros);
    CHECK(b.g_idx == a.g_idx);
  }
  CHECK(back.graph.weights.at("dense").f32_values() == m.graph.weights.at("dense").f32_values());

  // the tensors as a plain safetensors reader sees them (docs/format.md)
  auto st = formats::read_safetensors(p1);
  for (const Layout& l : layouts) {
    CAPTURE(l.name);
    const int64_t groups = l.gs == 0 ? 1 : (l.cols + l.gs - 1) / l.gs;  // ⌈cols / group_size⌉
    const Tensor& sc = st.tensors.at(l.name + ".scales");
    CHECK(sc.dtype() == DType::F16);
    CHECK(sc.shape() == Shape{l.rows, groups});
    const int64_t n = l.rows * l.cols;
    CHECK(st.tensors.at(l.name + ".qweight").nbytes() == static_cast<size_t>(l.bits == 4 ? (n + 1) / 2 : n));
    if (!l.sym)
      CHECK(st.tensors.at(l.name + ".zeros").nbytes() ==
            static_cast<size_t>(l.bits == 4 ? (l.rows * groups + 1) / 2 : l.rows * groups));
    CHECK(st.tensors.count(l.name + ".g_idx") == (l.act_order ? 1u : 0u));
  }
  const auto q = nlohmann::json::parse(st.metadata.at("llmc.quantized"));
  CHECK(q.at("w4_asym_g128").at("group_size") == 128);
  CHECK(q.at("w8_sym_channel").at("group_size") == 96);
}
