// ONNX backend node tests (Debian's libonnx-testdata) for every ONNX op the CPU runtime claims:
// each single-node test model is run on its stored inputs and compared to its stored outputs
// with ONNX's own tolerances (onnx/backend/test/runner: rtol 1e-3, atol 1e-7).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#ifdef LLMC_HAVE_ONNX
#include <onnx/onnx_pb.h>
#endif

#include "formats/onnx.hpp"
#include "runtime/session.hpp"
#include "tests/conformance/onnx_exclusions.hpp"

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

fs::path testdata_dir() {
  const char* v = std::getenv("LLMC_ONNX_TESTDATA");
  return v ? fs::path(v) : fs::path("/usr/share/libonnx-testdata/data/node");
}

// The op of a single-node test model, read straight from the Protobuf (independent of our
// importer, which may reject the models of ops we do not claim). Empty for multi-node models.
std::pair<std::string, std::string> single_op(const fs::path& model) {
  std::ifstream in(model, std::ios::binary);
  onnx::ModelProto mp;
  if (!mp.ParseFromIstream(&in) || mp.graph().node_size() != 1) return {};
  const auto& n = mp.graph().node(0);
  return {n.domain(), n.op_type()};
}

// The ops of a multi-node model (ONNX's "_expanded" function tests) when all are claimed.
std::vector<std::string> all_claimed_ops(const fs::path& model, const runtime::KernelTable& kernels) {
  std::ifstream in(model, std::ios::binary);
  onnx::ModelProto mp;
  if (!mp.ParseFromIstream(&in) || mp.graph().node_size() < 2) return {};
  std::vector<std::string> ops;
  for (const auto& n : mp.graph().node()) {
    if (!kernels.count(runtime::kernel_key(n.domain(), n.op_type()))) return {};
    ops.push_back(n.op_type());
  }
  return ops;
}

// numpy.testing.assert_allclose(actual, expected, rtol, atol) with equal_nan; exact for ints.
std::string compare(const Tensor& got, const Tensor& want) {
  if (got.dtype() != want.dtype()) return "dtype " + dtype_name(got.dtype()) + ", expected " + dtype_name(want.dtype());
  if (got.shape() != want.shape()) return "shape " + shape_str(got.shape()) + ", expected " + shape_str(want.shape());
  if (is_float(want.dtype())) {
    const Tensor g = got.to(DType::F64), w = want.to(DType::F64);
    for (int64_t i = 0; i < w.numel(); ++i) {
      const double a = g.data<double>()[i], b = w.data<double>()[i];
      if (std::isnan(a) && std::isnan(b)) continue;
      if (std::isinf(b) && a == b) continue;
      if (!(std::fabs(a - b) <= 1e-7 + 1e-3 * std::fabs(b)))
        return "element " + std::to_string(i) + ": " + std::to_string(a) + ", expected " + std::to_string(b);
    }
    return "";
  }
  if (std::memcmp(got.raw(), want.raw(), want.nbytes()) != 0) {
    const auto g = got.i64_values(), w = want.i64_values();
    for (size_t i = 0; i < w.size(); ++i)
      if (g[i] != w[i]) return "element " + std::to_string(i) + ": " + std::to_string(g[i]) + ", expected " + std::to_string(w[i]);
    return "bytes differ";
  }
  return "";
}

// ONNX's test data stores bfloat16 tensors as their uint16 bit patterns (numpy has no bfloat16);
// read them back as the bfloat16 the model declares.
Tensor as_declared(Tensor t, DType declared) {
  if (declared == DType::BF16 && t.dtype() == DType::U16) return Tensor::borrow(DType::BF16, t.shape(), t.raw(), std::make_shared<Tensor>(t));
  return t;
}

// Runs every data set of one test directory; returns "" on success or the first mismatch.
std::string run_case(const fs::path& dir) {
  try {
    Model m = formats::read_onnx((dir / "model.onnx").string());
    runtime::Session s(m);
    std::vector<fs::path> sets;
    for (auto& e : fs::directory_iterator(dir))
      if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
    std::sort(sets.begin(), sets.end());
    if (sets.empty()) return "no test data sets";
    std::vector<ValueInfo> inputs;
    for (auto& vi : m.graph.inputs)
      if (!m.graph.weights.count(vi.name)) inputs.push_back(vi);
    for (auto& set : sets) {
      std::map<std::string, Tensor> feeds;
      for (size_t i = 0; fs::exists(set / ("input_" + std::to_string(i) + ".pb")); ++i) {
        if (i >= inputs.size()) return set.string() + ": more input files than graph inputs";
        feeds[inputs[i].name] =
            as_declared(formats::read_onnx_tensor((set / ("input_" + std::to_string(i) + ".pb")).string()), inputs[i].dtype);
      }
      auto out = s.run(feeds);
      for (size_t i = 0; i < m.graph.outputs.size(); ++i) {
        const fs::path f = set / ("output_" + std::to_string(i) + ".pb");
        if (!fs::exists(f)) continue;
        const ValueInfo& vi = m.graph.outputs[i];
        std::string why = compare(out.at(vi.name), as_declared(formats::read_onnx_tensor(f.string()), vi.dtype));
        if (!why.empty()) return set.filename().string() + " output '" + m.graph.outputs[i].name + "': " + why;
      }
    }
    return "";
  } catch (const std::exception& e) {
    return std::string("error: ") + e.what();
  }
}

struct OpCount {
  int passed = 0, excluded = 0, failed = 0;
};

}  // namespace

TEST_CASE("ONNX backend node tests pass for every claimed op") {
  const fs::path root = testdata_dir();
  if (!fs::is_directory(root)) {
    const std::string msg = "ONNX node test data not found at " + root.string() +
                            " (install Debian's libonnx-testdata or set LLMC_ONNX_TESTDATA)";
    if (std::getenv("LLMC_ALLOW_MISSING_TESTDATA")) {
      MESSAGE("skipping: " << msg);
      return;
    }
    FAIL(msg);
  }
  const auto t0 = std::chrono::steady_clock::now();
  const auto& kernels = runtime::cpu_kernels();
  const auto& excluded = test::onnx_exclusions();
  std::vector<fs::path> dirs;
  for (auto& e : fs::directory_iterator(root))
    if (e.is_directory() && e.path().filename().string().rfind("test_", 0) == 0) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());

  std::map<std::string, OpCount> per_op;
  std::set<std::string> seen;
  for (auto& d : dirs) {
    const std::string name = d.filename().string();
    auto [domain, op] = single_op(d / "model.onnx");
    if (op.empty() || !kernels.count(runtime::kernel_key(domain, op))) continue;
    seen.insert(name);
    OpCount& c = per_op[op];
    if (std::getenv("LLMC_VERBOSE")) std::fprintf(stderr, "%s\n", name.c_str());
    const std::string why = run_case(d);
    auto ex = excluded.find(name);
    if (ex != excluded.end()) {
      ++c.excluded;
      CHECK_MESSAGE(!why.empty(), name << " is excluded (" << ex->second << ") but passes: remove it from the table");
      continue;
    }
    if (why.empty()) {
      ++c.passed;
    } else {
      ++c.failed;
      FAIL_CHECK(name << " (" << op << "): " << why);
    }
  }
  for (auto& [name, reason] : excluded)
    CHECK_MESSAGE(seen.count(name), "exclusion '" << name << "' names no test of a claimed op");

  OpCount total;
  std::string table = "| op | passed | excluded |\n| --- | --- | --- |\n";
  for (auto& [op, c] : per_op) {
    total.passed += c.passed, total.excluded += c.excluded, total.failed += c.failed;
    table += "| " + op + " | " + std::to_string(c.passed) + " | " + std::to_string(c.excluded) + " |\n";
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("ONNX node tests: %zu claimed ops, %d passed, %d excluded, %d failed (%.1f s)\n", per_op.size(),
              total.passed, total.excluded, total.failed, secs);
  if (const char* md = std::getenv("LLMC_ONNX_OPS_TABLE")) {  // regenerates the table in docs/onnx-ops.md
    std::ofstream f(md);
    f << table << "| **total** | **" << total.passed << "** | **" << total.excluded << "** |\n\n";
    f << "| excluded test | reason |\n| --- | --- |\n";
    for (auto& [name, reason] : excluded) f << "| " << name << " | " << reason << " |\n";
  }
  CHECK(total.passed > 0);
}

TEST_CASE("ONNX multi-node backend tests (function expansions) whose ops are all claimed") {
  const fs::path root = testdata_dir();
  if (!fs::is_directory(root)) {
    if (std::getenv("LLMC_ALLOW_MISSING_TESTDATA")) return;  // the case above reports it
    FAIL("ONNX node test data not found at " << root);
  }
  const auto& excluded = test::onnx_exclusions();
  std::vector<fs::path> dirs;
  for (auto& e : fs::directory_iterator(root))
    if (e.is_directory() && e.path().filename().string().rfind("test_", 0) == 0) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  int passed = 0, skipped = 0;
  for (auto& d : dirs) {
    const std::string name = d.filename().string();
    if (all_claimed_ops(d / "model.onnx", runtime::cpu_kernels()).empty()) continue;
    const std::string why = run_case(d);
    if (excluded.count(name)) {
      ++skipped;
      CHECK_MESSAGE(!why.empty(), name << " is excluded but passes: remove it from the table");
      continue;
    }
    if (why.empty()) ++passed;
    else FAIL_CHECK(name << ": " << why);
  }
  std::printf("ONNX multi-node tests: %d passed, %d excluded\n", passed, skipped);
  CHECK(passed > 0);
}

#endif  // LLMC_HAVE_ONNX
