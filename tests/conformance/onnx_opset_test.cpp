// ONNX op forms that the backend node tests of onnx 1.12 do not cover: axes and split sizes as
// attributes (before opset 13/18) and as inputs, Slice's opset-1 attributes, Clip's opset-6
// attributes, opset 18's uneven Split. References are computed independently in the test.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "runtime/session.hpp"

using namespace llmc;

namespace {

Tensor random_f32(Shape shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-3, 3);
  std::vector<float> v(shape_numel(shape));
  for (auto& x : v) x = u(rng);
  return Tensor::from_f32(std::move(shape), v);
}

// Runs one node over the given inputs (named i0, i1, ...; empty tensors are omitted inputs).
std::vector<Tensor> run_node(Node n, const std::vector<Tensor>& ins, size_t outs = 1) {
  Model m;
  m.source = "test";
  m.graph.opsets = {{"", 17}};
  std::map<std::string, Tensor> feeds;
  for (size_t i = 0; i < ins.size(); ++i) {
    if (!ins[i].defined()) {
      n.inputs.push_back("");
      continue;
    }
    const std::string name = "i" + std::to_string(i);
    n.inputs.push_back(name);
    m.graph.inputs.push_back({name, ins[i].dtype(), ins[i].shape()});
    feeds[name] = ins[i];
  }
  for (size_t o = 0; o < outs; ++o) {
    n.outputs.push_back("o" + std::to_string(o));
    m.graph.outputs.push_back({n.outputs.back(), DType::F32, {}});
  }
  if (n.name.empty()) n.name = "n0";
  m.graph.nodes.push_back(n);
  runtime::Session s(m);
  auto r = s.run(feeds);
  std::vector<Tensor> res;
  for (size_t o = 0; o < outs; ++o) res.push_back(r.at("o" + std::to_string(o)));
  return res;
}

Tensor i64(std::vector<int64_t> v) { return Tensor::from_i64({static_cast<int64_t>(v.size())}, v); }

}  // namespace

TEST_CASE("Split: sizes as attribute, as input, and opset 18's uneven equal split") {
  const Tensor x = random_f32({2, 7}, 1);
  const auto xv = x.f32_values();
  auto check_parts = [&](const std::vector<Tensor>& parts, const std::vector<int64_t>& sizes) {
    int64_t at = 0;
    REQUIRE(parts.size() == sizes.size());
    for (size_t p = 0; p < sizes.size(); ++p) {
      CHECK(parts[p].shape() == Shape{2, sizes[p]});
      const auto v = parts[p].f32_values();
      for (int r = 0; r < 2; ++r)
        for (int64_t j = 0; j < sizes[p]; ++j) CHECK(v[r * sizes[p] + j] == xv[r * 7 + at + j]);
      at += sizes[p];
    }
  };
  Node attr{"Split", "", "", {}, {}, {{"axis", int64_t{1}}, {"split", std::vector<int64_t>{2, 4, 1}}}};
  check_parts(run_node(attr, {x}, 3), {2, 4, 1});
  Node input{"Split", "", "", {}, {}, {{"axis", int64_t{-1}}}};
  check_parts(run_node(input, {x, i64({5, 2})}, 2), {5, 2});
  Node equal{"Split", "", "", {}, {}, {{"axis", int64_t{1}}, {"num_outputs", int64_t{3}}}};
  check_parts(run_node(equal, {x}, 3), {3, 3, 1});
}

TEST_CASE("Squeeze and Unsqueeze: axes as attribute (opset < 13) and as input") {
  const Tensor x = random_f32({3, 1, 4, 1}, 2);
  CHECK(run_node({"Squeeze", "", "", {}, {}, {{"axes", std::vector<int64_t>{-1}}}}, {x})[0].shape() == Shape{3, 1, 4});
  CHECK(run_node({"Squeeze", "", "", {}, {}, {}}, {x, i64({1})})[0].shape() == Shape{3, 4, 1});
  CHECK(run_node({"Squeeze", "", "", {}, {}, {}}, {x})[0].shape() == Shape{3, 4});
  CHECK(run_node({"Unsqueeze", "", "", {}, {}, {{"axes", std::vector<int64_t>{0, -1}}}}, {x})[0].shape() ==
        Shape{1, 3, 1, 4, 1, 1});
  const Tensor u = run_node({"Unsqueeze", "", "", {}, {}, {}}, {x, i64({2})})[0];
  CHECK(u.shape() == Shape{3, 1, 1, 4, 1});
  CHECK(u.f32_values() == x.f32_values());
}

TEST_CASE("ReduceMean/ReduceSum: axes as attribute and as input, keepdims, noop_with_empty_axes") {
  const Tensor x = random_f32({2, 3, 4}, 3);
  const auto xv = x.f32_values();
  auto mean_axis1 = [&](int i, int k) {
    double s = 0;
    for (int j = 0; j < 3; ++j) s += xv[i * 12 + j * 4 + k];
    return s / 3;
  };
  for (bool as_input : {false, true}) {
    Node n{"ReduceMean", "", "", {}, {}, {{"keepdims", int64_t{0}}}};
    if (!as_input) n.attrs["axes"] = std::vector<int64_t>{-2};
    const Tensor y = as_input ? run_node(n, {x, i64({1})})[0] : run_node(n, {x})[0];
    REQUIRE(y.shape() == Shape{2, 4});
    const auto yv = y.f32_values();
    for (int i = 0; i < 2; ++i)
      for (int k = 0; k < 4; ++k) CHECK(std::fabs(yv[i * 4 + k] - mean_axis1(i, k)) < 1e-6);
  }
  // no axes: reduce everything, keeping rank 3
  const Tensor all = run_node({"ReduceSum", "", "", {}, {}, {}}, {x})[0];
  CHECK(all.shape() == Shape{1, 1, 1});
  double s = 0;
  for (float v : xv) s += v;
  CHECK(std::fabs(all.f32_values()[0] - s) < 1e-5);
  // noop_with_empty_axes passes the input through
  const Tensor same = run_node({"ReduceSum", "", "", {}, {}, {{"noop_with_empty_axes", int64_t{1}}}}, {x})[0];
  CHECK(same.f32_values() == xv);
}

TEST_CASE("Slice: opset-1 attributes and opset-10 inputs with negative steps") {
  const Tensor x = random_f32({4, 6}, 4);
  const auto xv = x.f32_values();
  Node a{"Slice", "", "", {}, {}, {{"starts", std::vector<int64_t>{1, -4}}, {"ends", std::vector<int64_t>{3, 1000}},
                                   {"axes", std::vector<int64_t>{0, 1}}}};
  const Tensor y = run_node(a, {x})[0];
  REQUIRE(y.shape() == Shape{2, 4});
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) CHECK(y.f32_values()[i * 4 + j] == xv[(1 + i) * 6 + 2 + j]);
  // x[::-1, 5:0:-2]
  const Tensor z = run_node({"Slice", "", "", {}, {}, {}},
                            {x, i64({-1, 5}), i64({INT64_MIN, 0}), i64({0, 1}), i64({-1, -2})})[0];
  REQUIRE(z.shape() == Shape{4, 3});
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) CHECK(z.f32_values()[i * 3 + j] == xv[(3 - i) * 6 + 5 - 2 * j]);
}

TEST_CASE("Clip: opset-6 attributes and opset-11 inputs") {
  const Tensor x = random_f32({50}, 5);
  const auto xv = x.f32_values();
  const Tensor a = run_node({"Clip", "", "", {}, {}, {{"min", -1.0}, {"max", 0.5}}}, {x})[0];
  const Tensor b = run_node({"Clip", "", "", {}, {}, {}}, {x, Tensor(), Tensor::scalar_f32(0.5f)})[0];
  for (int i = 0; i < 50; ++i) {
    CHECK(a.f32_values()[i] == std::min(std::max(xv[i], -1.0f), 0.5f));
    CHECK(b.f32_values()[i] == std::min(xv[i], 0.5f));
  }
}

TEST_CASE("Gelu (opset 20, absent from onnx 1.12's test data): erf and tanh forms") {
  const Tensor x = random_f32({64}, 6);
  const auto xv = x.f32_values();
  for (const char* approx : {"none", "tanh"}) {
    const auto y = run_node({"Gelu", "", "", {}, {}, {{"approximate", std::string(approx)}}}, {x})[0].f32_values();
    for (int i = 0; i < 64; ++i) {
      const double v = xv[i];
      const double ref = std::string(approx) == "none"
                             ? 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)))
                             : 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
      CHECK(std::fabs(y[i] - ref) <= 1e-6 * (1 + std::fabs(ref)));
    }
  }
}

TEST_CASE("MatMul: numpy batch broadcasting and 1-D operands") {
  const Tensor a = random_f32({2, 1, 3, 4}, 7), b = random_f32({5, 4, 2}, 8);
  const auto av = a.f32_values(), bv = b.f32_values();
  const Tensor y = run_node({"MatMul", "", "", {}, {}, {}}, {a, b})[0];
  REQUIRE(y.shape() == Shape{2, 5, 3, 2});
  const auto yv = y.f32_values();
  for (int p = 0; p < 2; ++p)
    for (int q = 0; q < 5; ++q)
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 2; ++j) {
          double ref = 0;
          for (int k = 0; k < 4; ++k) ref += static_cast<double>(av[(p * 3 + i) * 4 + k]) * bv[(q * 4 + k) * 2 + j];
          CHECK(std::fabs(yv[((p * 5 + q) * 3 + i) * 2 + j] - ref) < 1e-5);
        }
  // [4] x [5, 4, 2] -> [5, 2]; [2, 1, 3, 4] x [4] -> [2, 1, 3]
  const Tensor v = random_f32({4}, 9);
  const auto vv = v.f32_values();
  const Tensor l = run_node({"MatMul", "", "", {}, {}, {}}, {v, b})[0];
  REQUIRE(l.shape() == Shape{5, 2});
  for (int q = 0; q < 5; ++q)
    for (int j = 0; j < 2; ++j) {
      double ref = 0;
      for (int k = 0; k < 4; ++k) ref += static_cast<double>(vv[k]) * bv[(q * 4 + k) * 2 + j];
      CHECK(std::fabs(l.f32_values()[q * 2 + j] - ref) < 1e-5);
    }
  const Tensor r = run_node({"MatMul", "", "", {}, {}, {}}, {a, v})[0];
  REQUIRE(r.shape() == Shape{2, 1, 3});
  for (int i = 0; i < 6; ++i) {
    double ref = 0;
    for (int k = 0; k < 4; ++k) ref += static_cast<double>(av[i * 4 + k]) * vv[k];
    CHECK(std::fabs(r.f32_values()[i] - ref) < 1e-5);
  }
}

TEST_CASE("Integer Add and Mul wrap modulo 2^32 like ONNX Runtime") {
  Tensor a(DType::I32, {2}), b(DType::I32, {2});
  a.mutable_data<int32_t>()[0] = 2147483647, a.mutable_data<int32_t>()[1] = -2147483647 - 1;
  b.mutable_data<int32_t>()[0] = 1, b.mutable_data<int32_t>()[1] = 3;
  const Tensor s = run_node({"Add", "", "", {}, {}, {}}, {a, b})[0];
  CHECK(s.data<int32_t>()[0] == -2147483647 - 1);
  const Tensor m = run_node({"Mul", "", "", {}, {}, {}}, {a, b})[0];
  CHECK(m.data<int32_t>()[1] == static_cast<int32_t>(static_cast<uint32_t>(0x80000000u) * 3u));
}
