// Kernel timeline through CUPTI (cuda_trace.hpp).
#include "runtime/cuda/cuda_trace.hpp"

#include <cuda_runtime_api.h>
#include <cxxabi.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>

#include "kernels/cuda/cuda_check.hpp"
#include "runtime/bench.hpp"
#include "runtime/ir/error.hpp"

#ifdef LLMC_HAVE_CUPTI
#include <cupti.h>
#include <dlfcn.h>
#endif

namespace llmc::runtime {

namespace {

#ifdef LLMC_HAVE_CUPTI
// The trace being recorded (one at a time). CUPTI may hand buffers back from a thread of its own.
std::mutex g_mutex;
std::vector<TracedKernel>* g_sink = nullptr;

// The CUPTI functions used here, from the library opened on first use.
struct Cupti {
  decltype(&cuptiActivityRegisterCallbacks) register_callbacks;
  decltype(&cuptiActivityEnable) enable;
  decltype(&cuptiActivityDisable) disable;
  decltype(&cuptiActivityFlushAll) flush_all;
  decltype(&cuptiActivityGetNextRecord) next_record;
  decltype(&cuptiGetResultString) result_string;
};
const Cupti& cupti() {
  static const Cupti api = [] {
    void* lib = dlopen(LLMC_CUPTI_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libcupti.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
      throw Error(std::string("kernel trace: cannot open CUPTI (") + LLMC_CUPTI_LIBRARY +
                      ", then libcupti.so): install the CUDA Toolkit's CUPTI or add its folder to LD_LIBRARY_PATH",
                  ErrorKind::Runtime);
    auto sym = [lib](const char* name) {
      void* f = dlsym(lib, name);
      if (!f) throw Error(std::string("kernel trace: CUPTI has no ") + name, ErrorKind::Runtime);
      return f;
    };
    Cupti c;
    c.register_callbacks = reinterpret_cast<decltype(c.register_callbacks)>(sym("cuptiActivityRegisterCallbacks"));
    c.enable = reinterpret_cast<decltype(c.enable)>(sym("cuptiActivityEnable"));
    c.disable = reinterpret_cast<decltype(c.disable)>(sym("cuptiActivityDisable"));
    c.flush_all = reinterpret_cast<decltype(c.flush_all)>(sym("cuptiActivityFlushAll"));
    c.next_record = reinterpret_cast<decltype(c.next_record)>(sym("cuptiActivityGetNextRecord"));
    c.result_string = reinterpret_cast<decltype(c.result_string)>(sym("cuptiGetResultString"));
    return c;
  }();
  return api;
}

void check_cupti(CUptiResult r, const char* what) {
  if (r == CUPTI_SUCCESS) return;
  const char* s = nullptr;
  cupti().result_string(r, &s);
  throw Error(std::string("kernel trace: CUPTI ") + what + ": " + (s ? s : "unknown error"), ErrorKind::Runtime);
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  constexpr size_t kBytes = 8u << 20;
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBytes));
  *size = *buffer ? kBytes : 0;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  const std::lock_guard<std::mutex> lock(g_mutex);
  CUpti_Activity* rec = nullptr;
  while (g_sink && cupti().next_record(buffer, valid, &rec) == CUPTI_SUCCESS) {
    if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && rec->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
    TracedKernel t;
    t.name = kernel_short_name(k->name);
    t.start = k->start;
    t.end = k->end;
    t.launch = k->correlationId;
    g_sink->push_back(std::move(t));
  }
  std::free(buffer);
}
#endif

}  // namespace

std::string kernel_short_name(const char* mangled) {
  if (!mangled) return "?";
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> d(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), &std::free);
  std::string s = status == 0 && d ? d.get() : mangled;
  // the argument list: from the first '(' outside template arguments that does not open
  // "(anonymous namespace)"
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<') ++depth;
    if (s[i] == '>') --depth;
    if (s[i] == '(' && depth == 0 && s.compare(i, 21, "(anonymous namespace)") != 0) {
      s.resize(i);
      break;
    }
  }
  if (s.rfind("void ", 0) == 0) s.erase(0, 5);
  // the qualification before the name (outside template arguments)
  depth = 0;
  size_t start = 0;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i] == '<') ++depth;
    if (s[i] == '>') --depth;
    if (depth == 0 && s[i] == ':' && s[i + 1] == ':') start = i + 2;
  }
  return s.substr(start);
}

bool kernel_trace_available() {
#ifdef LLMC_HAVE_CUPTI
  return true;
#else
  return false;
#endif
}

void require_kernel_trace() {
  if (!kernel_trace_available())
    throw Error("kernel trace: this llmcompress was built without CUPTI (CMake did not find CUDA::cupti)",
                ErrorKind::Usage);
}

std::vector<TracedKernel> trace_kernels(const std::function<void()>& run) {
#ifdef LLMC_HAVE_CUPTI
  static bool registered = false;
  if (!registered) {
    check_cupti(cupti().register_callbacks(buffer_requested, buffer_completed), "registering buffers");
    registered = true;
  }
  std::vector<TracedKernel> out;
  LLMC_CUDA_CHECK(cudaDeviceSynchronize());
  auto set_sink = [](std::vector<TracedKernel>* v) {
    const std::lock_guard<std::mutex> lock(g_mutex);
    g_sink = v;
  };
  set_sink(&out);
  try {
    check_cupti(cupti().enable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "enabling kernel records");
    run();
    LLMC_CUDA_CHECK(cudaDeviceSynchronize());
    check_cupti(cupti().disable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "disabling kernel records");
    check_cupti(cupti().flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED), "flushing records");
  } catch (...) {
    cupti().disable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    set_sink(nullptr);
    throw;
  }
  set_sink(nullptr);
  std::sort(out.begin(), out.end(), [](const TracedKernel& a, const TracedKernel& b) { return a.start < b.start; });
  return out;
#else
  (void)run;
  require_kernel_trace();
  return {};
#endif
}

StepTrace split_steps(const std::vector<TracedKernel>& kernels) {
  std::map<uint32_t, std::vector<const TracedKernel*>> by_launch;
  for (const TracedKernel& k : kernels) by_launch[k.launch].push_back(&k);
  std::map<size_t, int64_t> sizes;  // kernels per launch → launches
  for (auto& [id, ks] : by_launch) ++sizes[ks.size()];
  size_t step_size = 0;
  int64_t most = 0;
  for (auto& [n, c] : sizes)
    if (c > most || (c == most && n > step_size)) step_size = n, most = c;
  StepTrace t;
  struct Acc {
    std::vector<double> count, device, exposed;
  };
  std::map<std::string, Acc> acc;
  std::vector<double> step_us;
  for (auto& [id, ks] : by_launch) {
    if (ks.size() != step_size) continue;
    std::sort(ks.begin(), ks.end(), [](const TracedKernel* a, const TracedKernel* b) { return a->start < b->start; });
    std::map<std::string, std::array<double, 3>> step;  // count, device, exposed (ns)
    uint64_t prev_end = 0;  // the latest end so far
    for (const TracedKernel* k : ks) {
      auto& s = step[k->name];
      s[0] += 1;
      s[1] += static_cast<double>(k->end - k->start);
      const uint64_t from = prev_end ? prev_end : k->start;
      s[2] += k->end > from ? static_cast<double>(k->end - from) : 0.0;
      prev_end = std::max(prev_end, k->end);
    }
    step_us.push_back(static_cast<double>(prev_end - ks.front()->start) * 1e-3);
    for (auto& [name, s] : step) {
      Acc& a = acc[name];
      a.count.push_back(s[0]);
      a.device.push_back(s[1] * 1e-3);
      a.exposed.push_back(s[2] * 1e-3);
    }
    ++t.steps;
  }
  t.step_us = median(step_us);
  for (auto& [name, a] : acc)
    t.kinds.push_back({name, static_cast<int64_t>(median(a.count)), median(a.device), median(a.exposed)});
  std::sort(t.kinds.begin(), t.kinds.end(), [](const StepShare& a, const StepShare& b) {
    return a.exposed_us != b.exposed_us ? a.exposed_us > b.exposed_us : a.kernel < b.kernel;
  });
  return t;
}

}  // namespace llmc::runtime
