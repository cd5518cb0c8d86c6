// ONNX import/export: round trips (inline and external data), TensorProto field decoding checked
// against messages built directly with libonnx's classes, legacy Softmax semantics against a
// float64 reference, and the bad-input errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#ifdef LLMC_HAVE_ONNX
#include <onnx/onnx_pb.h>
#endif

#include "formats/onnx.hpp"
#include "runtime/session.hpp"
#include "tests/test_util.hpp"

using namespace llmc;

#ifndef LLMC_HAVE_ONNX
TEST_CASE("ONNX support is compiled out: reading says so") {
  try {
    formats::read_onnx("model.onnx");
    FAIL("read_onnx did not throw");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("built without ONNX support") != std::string::npos);
  }
}
#else
namespace fs = std::filesystem;

namespace {

Tensor random_tensor(DType dt, Shape shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  Tensor f(DType::F32, shape);
  for (int64_t i = 0; i < f.numel(); ++i) f.mutable_data<float>()[i] = 4 * nd(rng);
  return dt == DType::Bool ? f.to(DType::F32).reshaped(shape).to(DType::Bool) : f.to(dt);
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

bool same_attr(const AttrValue& a, const AttrValue& b) {
  if (a.index() != b.index()) return false;
  if (auto* t = std::get_if<Tensor>(&a)) return same_tensor(*t, std::get<Tensor>(b));
  return std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Tensor>) return false;
        else return x == std::get<T>(b);
      },
      a);
}

void check_same_model(const Model& a, const Model& b) {
  const Graph &ga = a.graph, &gb = b.graph;
  REQUIRE(ga.nodes.size() == gb.nodes.size());
  for (size_t i = 0; i < ga.nodes.size(); ++i) {
    const Node &x = ga.nodes[i], &y = gb.nodes[i];
    CHECK(x.op == y.op);
    CHECK(x.domain == y.domain);
    CHECK(x.name == y.name);
    CHECK(x.inputs == y.inputs);
    CHECK(x.outputs == y.outputs);
    REQUIRE(x.attrs.size() == y.attrs.size());
    for (auto& [k, v] : x.attrs) {
      REQUIRE(y.attrs.count(k));
      CHECK_MESSAGE(same_attr(v, y.attrs.at(k)), "attribute " << k << " of " << x.name);
    }
  }
  auto same_vi = [](const std::vector<ValueInfo>& p, const std::vector<ValueInfo>& q) {
    if (p.size() != q.size()) return false;
    for (size_t i = 0; i < p.size(); ++i)
      if (p[i].name != q[i].name || p[i].dtype != q[i].dtype || p[i].shape != q[i].shape) return false;
    return true;
  };
  CHECK(same_vi(ga.inputs, gb.inputs));
  CHECK(same_vi(ga.outputs, gb.outputs));
  CHECK(ga.opsets == gb.opsets);
  REQUIRE(ga.weights.size() == gb.weights.size());
  for (auto& [k, w] : ga.weights) {
    REQUIRE(gb.weights.count(k));
    CHECK_MESSAGE(same_tensor(w, gb.weights.at(k)), "weight " << k);
  }
  CHECK(a.metadata == b.metadata);
  CHECK(b.arch == "onnx");
}

// A graph that uses every attribute type and several weight dtypes, both sides of the 1 KiB
// external-data threshold.
Model sample_model() {
  Model m;
  Graph& g = m.graph;
  g.opsets = {{"", 17}, {"com.example", 2}};
  g.inputs = {{"x", DType::F32, {-1, 8}}, {"ids", DType::I64, {3}}};
  g.outputs = {{"y", DType::F32, {-1, 64}}, {"e", DType::F32, {3, 64}}};
  g.weights["b"] = random_tensor(DType::F32, {8}, 1);            // 32 B: stays inline
  g.weights["w"] = random_tensor(DType::F32, {8, 64}, 2);        // 2 KiB: external
  g.weights["h"] = random_tensor(DType::F16, {600}, 3);          // 1200 B: external
  g.weights["q"] = random_tensor(DType::U8, {1500}, 4);          // external
  g.weights["mask"] = random_tensor(DType::Bool, {5}, 5);
  g.weights["emb"] = random_tensor(DType::F32, {10, 64}, 6);
  g.nodes.push_back(Node{"Add", "", "add0", {"x", "b"}, {"xb"}, {}});
  g.nodes.push_back(Node{"MatMul", "", "mm0", {"xb", "w"}, {"y"}, {}});
  g.nodes.push_back(Node{"Gather", "", "gather0", {"emb", "ids"}, {"e"}, {{"axis", int64_t{0}}}});
  g.nodes.push_back(Node{"Custom", "com.example", "custom0", {"h", "", "q", "mask"}, {"unused"},
                         {{"i", int64_t{-7}}, {"f", 0.25}, {"s", std::string("tanh")},
                          {"is", std::vector<int64_t>{3, -1, 5}}, {"fs", std::vector<double>{1.5, -2.0}},
                          {"ss", std::vector<std::string>{"a", "bc"}}, {"t", random_tensor(DType::I64, {2, 2}, 7)}}});
  m.metadata = {{"onnx.producer_name", "llmc-test"}, {"note", "round trip"}};
  return m;
}

void write_bytes(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("ONNX round trip keeps graph and weights, inline and with external data") {
  const fs::path dir = test::scratch_dir("onnx_roundtrip");
  const Model src = sample_model();
  formats::write_onnx(src, (dir / "a.onnx").string());
  const Model m1 = formats::read_onnx((dir / "a.onnx").string());
  // what the test built comes back bit for bit
  for (auto& [k, w] : src.graph.weights) CHECK_MESSAGE(same_tensor(w, m1.graph.weights.at(k)), k);
  CHECK(m1.graph.nodes.at(3).f("f", 0) == 0.25);
  CHECK(m1.metadata.at("note") == "round trip");

  formats::write_onnx(m1, (dir / "b.onnx").string(), false);
  formats::write_onnx(m1, (dir / "c.onnx").string(), true);
  CHECK(!fs::exists(dir / "b.onnx.data"));
  REQUIRE(fs::exists(dir / "c.onnx.data"));
  const Model m2 = formats::read_onnx((dir / "b.onnx").string());
  const Model m3 = formats::read_onnx((dir / "c.onnx").string());
  check_same_model(m1, m2);
  check_same_model(m1, m3);
  // large tensors live in the data file, borrowed from its mapping; small ones stay inline
  CHECK(fs::file_size(dir / "c.onnx") < 1500);
  CHECK(fs::file_size(dir / "c.onnx.data") >= 2048 + 1200 + 1500 + 2560);
  CHECK(m3.graph.weights.at("w").readonly());
  // no temporaries are left behind by the atomic writers
  int files = 0;
  for (auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  CHECK(files == 4);

  // the models compute the same thing
  Model run_src = src;
  run_src.graph.nodes.pop_back();
  formats::write_onnx(run_src, (dir / "r.onnx").string(), true);
  const Model r = formats::read_onnx((dir / "r.onnx").string());
  runtime::Session s(r);
  const Tensor x = random_tensor(DType::F32, {4, 8}, 11);
  auto out = s.run({{"x", x}, {"ids", Tensor::from_i64({3}, {9, 0, 4})}});
  const auto xv = x.f32_values(), bv = src.graph.weights.at("b").f32_values(), wv = src.graph.weights.at("w").f32_values();
  const auto y = out.at("y").f32_values();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 64; ++j) {
      double ref = 0;
      for (int k = 0; k < 8; ++k) ref += (static_cast<double>(xv[i * 8 + k]) + bv[k]) * wv[k * 64 + j];
      CHECK(std::fabs(y[i * 64 + j] - ref) <= 1e-4 * (1 + std::fabs(ref)));
    }
  const auto ev = out.at("e").f32_values(), emb = src.graph.weights.at("emb").f32_values();
  CHECK(std::equal(ev.begin(), ev.begin() + 64, emb.begin() + 9 * 64));
}

TEST_CASE("ONNX round trip of the backend test models") {
  const fs::path root = "/usr/share/libonnx-testdata/data/node";
  if (!fs::is_directory(root)) {
    MESSAGE("skipping: " << root << " not found (libonnx-testdata)");
    return;
  }
  const fs::path dir = test::scratch_dir("onnx_roundtrip_node");
  std::vector<fs::path> dirs;
  for (auto& e : fs::directory_iterator(root)) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  int n = 0;
  // every third model keeps the fsyncs of the atomic writer to a few seconds
  for (size_t i = 0; i < dirs.size(); i += 3) {
    Model m;
    try {
      m = formats::read_onnx((dirs[i] / "model.onnx").string());
    } catch (const Error&) {
      continue;  // subgraphs, strings, sequences: not importable, covered by their own errors
    }
    formats::write_onnx(m, (dir / "m.onnx").string(), true);
    Model back = formats::read_onnx((dir / "m.onnx").string());
    m.metadata.erase("onnx.producer_version");
    back.metadata.erase("onnx.producer_version");
    check_same_model(m, back);
    ++n;
  }
  CHECK(n > 230);
}

TEST_CASE("ONNX typed data fields decode as the spec maps them") {
  const fs::path dir = test::scratch_dir("onnx_typed");
  onnx::ModelProto mp;
  mp.set_ir_version(8);
  mp.add_opset_import()->set_version(17);
  auto* g = mp.mutable_graph();
  auto add = [&](const char* name, int type, std::vector<int64_t> dims) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    for (auto d : dims) t->add_dims(d);
    return t;
  };
  auto* f = add("f", onnx::TensorProto::FLOAT, {2, 2});
  for (float v : {1.5f, -2.25f, 3e-8f, 7.0f}) f->add_float_data(v);
  auto* d = add("d", onnx::TensorProto::DOUBLE, {3});
  for (double v : {0.1, -1e300, 2.5}) d->add_double_data(v);
  auto* i = add("i", onnx::TensorProto::INT64, {2});
  for (int64_t v : {int64_t{1} << 60, int64_t{-3}}) i->add_int64_data(v);
  auto* h = add("h", onnx::TensorProto::FLOAT16, {2});
  for (int v : {0x3c00, 0xc500}) h->add_int32_data(v);  // 1.0 and -5.0 as f16 bit patterns
  auto* b = add("b", onnx::TensorProto::BOOL, {3});
  for (int v : {1, 0, 1}) b->add_int32_data(v);
  auto* s = add("s", onnx::TensorProto::INT8, {2});
  for (int v : {-128, 127}) s->add_int32_data(v);
  auto* u = add("u", onnx::TensorProto::UINT32, {1});
  u->add_uint64_data(4000000000u);
  auto* r = add("r", onnx::TensorProto::INT32, {2});
  int32_t raw[2] = {-5, 1 << 30};
  r->set_raw_data(raw, sizeof raw);
  write_bytes(dir / "t.onnx", mp.SerializeAsString());

  const Model m = formats::read_onnx((dir / "t.onnx").string());
  const auto& w = m.graph.weights;
  CHECK(w.at("f").shape() == Shape{2, 2});
  CHECK(w.at("f").f32_values() == std::vector<float>{1.5f, -2.25f, 3e-8f, 7.0f});
  CHECK(w.at("d").data<double>()[1] == -1e300);
  CHECK(w.at("i").i64_values() == std::vector<int64_t>{int64_t{1} << 60, -3});
  CHECK(w.at("h").f32_values() == std::vector<float>{1.0f, -5.0f});
  CHECK(w.at("b").dtype() == DType::Bool);
  CHECK(w.at("b").i64_values() == std::vector<int64_t>{1, 0, 1});
  CHECK(w.at("s").i64_values() == std::vector<int64_t>{-128, 127});
  CHECK(w.at("u").data<uint32_t>()[0] == 4000000000u);
  CHECK(w.at("r").i64_values() == std::vector<int64_t>{-5, 1 << 30});

  // a typed field whose count does not match the dims is an error naming the tensor
  f->add_float_data(8.0f);
  write_bytes(dir / "bad.onnx", mp.SerializeAsString());
  const std::string e = error_of([&] { formats::read_onnx((dir / "bad.onnx").string()); });
  CHECK(e.find("initializer 'f'") != std::string::npos);
  CHECK(e.find("5 values") != std::string::npos);
}

TEST_CASE("ONNX Softmax before opset 13 normalises the flattened 2-D view") {
  const fs::path dir = test::scratch_dir("onnx_softmax_legacy");
  const Tensor x = random_tensor(DType::F32, {2, 3, 4}, 21);
  const auto xv = x.f32_values();
  for (int64_t opset : {11, 13}) {
    Model m;
    m.graph.opsets = {{"", opset}};
    m.graph.inputs = {{"x", DType::F32, {2, 3, 4}}};
    m.graph.outputs = {{"y", DType::F32, {2, 3, 4}}};
    m.graph.nodes.push_back(Node{"Softmax", "", "sm", {"x"}, {"y"}, {{"axis", int64_t{1}}}});
    const std::string path = (dir / ("softmax" + std::to_string(opset))).replace_extension(".onnx").string();
    formats::write_onnx(m, path);
    const Model r = formats::read_onnx(path);
    runtime::Session s(r);
    const auto y = s.run({{"x", x}}).at("y").f32_values();
    // opset 11: each batch row of 12 values sums to 1; opset 13: each group of 3 along axis 1
    for (int b = 0; b < 2; ++b)
      for (int k = 0; k < 4; ++k)
        for (int j = 0; j < 3; ++j) {
          const int at = b * 12 + j * 4 + k;
          double sum = 0;
          if (opset == 11)
            for (int q = 0; q < 12; ++q) sum += std::exp(static_cast<double>(xv[b * 12 + q]));
          else
            for (int q = 0; q < 3; ++q) sum += std::exp(static_cast<double>(xv[b * 12 + q * 4 + k]));
          CHECK(std::fabs(y[at] - std::exp(static_cast<double>(xv[at])) / sum) < 1e-6);
        }
  }
}

TEST_CASE("ONNX bad input: not Protobuf") {
  const fs::path dir = test::scratch_dir("onnx_bad_proto");
  const std::string p = (dir / "notes.onnx").string();
  write_bytes(p, "This is a plain text file, not a serialized ModelProto.\n");
  const std::string e = error_of([&] { formats::read_onnx(p); });
  CHECK(e.rfind(p + ": not an ONNX model: ", 0) == 0);
  const std::string p2 = (dir / "empty_message.onnx").string();
  write_bytes(p2, std::string("\x08\x07", 2));  // a valid message: ir_version 7, but no graph
  CHECK(error_of([&] { formats::read_onnx(p2); }).rfind(p2 + ": not an ONNX model: no graph", 0) == 0);
}

TEST_CASE("ONNX bad input: a node input that nothing provides") {
  const fs::path dir = test::scratch_dir("onnx_bad_input");
  Model m = sample_model();
  m.graph.weights.erase("w");  // MatMul "mm0" now reads a missing initializer
  const std::string p = (dir / "m.onnx").string();
  formats::write_onnx(m, p);
  const std::string e = error_of([&] { formats::read_onnx(p); });
  CHECK(e.find(p) == 0);
  CHECK(e.find("node 'mm0'") != std::string::npos);
  CHECK(e.find("input 'w'") != std::string::npos);
}

TEST_CASE("ONNX bad input: an unsupported op fails at session construction") {
  const fs::path dir = test::scratch_dir("onnx_bad_op");
  Model m;
  m.graph.inputs = {{"x", DType::F32, {4}}};
  m.graph.outputs = {{"y", DType::F32, {4}}};
  m.graph.nodes.push_back(Node{"Relu", "", "ok", {"x"}, {"r"}, {}});
  m.graph.nodes.push_back(Node{"FancyNewOp", "", "mystery_node", {"r"}, {"y"}, {}});
  const std::string p = (dir / "m.onnx").string();
  formats::write_onnx(m, p);
  const Model r = formats::read_onnx(p);
  const std::string e = error_of([&] { runtime::Session s(r); });
  CHECK(e.find("FancyNewOp") != std::string::npos);
  CHECK(e.find("mystery_node") != std::string::npos);
  CHECK(e.find(p) != std::string::npos);
}

TEST_CASE("ONNX bad input: external data file missing or too short") {
  const fs::path dir = test::scratch_dir("onnx_bad_external");
  const std::string p = (dir / "m.onnx").string();
  formats::write_onnx(sample_model(), p, true);
  const fs::path data = dir / "m.onnx.data";
  const auto size = fs::file_size(data);
  fs::resize_file(data, size - 100);
  std::string e = error_of([&] { formats::read_onnx(p); });
  CHECK(e.find(p) == 0);
  CHECK(e.find("too short") != std::string::npos);
  CHECK(e.find("initializer '") != std::string::npos);
  fs::remove(data);
  e = error_of([&] { formats::read_onnx(p); });
  CHECK(e.find("m.onnx.data' is missing") != std::string::npos);
  CHECK(e.find("initializer '") != std::string::npos);
}

TEST_CASE("ONNX serialized tensors (node test data files)") {
  const fs::path dir = test::scratch_dir("onnx_tensor");
  onnx::TensorProto t;
  t.set_data_type(onnx::TensorProto::INT64);
  t.add_dims(3);
  for (int64_t v : {4, -9, 1 << 20}) t.add_int64_data(v);
  write_bytes(dir / "t.pb", t.SerializeAsString());
  const Tensor r = formats::read_onnx_tensor((dir / "t.pb").string());
  CHECK(r.i64_values() == std::vector<int64_t>{4, -9, 1 << 20});
  t.set_data_type(onnx::TensorProto::STRING);
  write_bytes(dir / "s.pb", t.SerializeAsString());
  CHECK(error_of([&] { formats::read_onnx_tensor((dir / "s.pb").string()); }).find("string tensors are not supported") !=
        std::string::npos);
}

#endif  // LLMC_HAVE_ONNX
