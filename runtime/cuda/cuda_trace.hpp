// The kernels the device runs, with their start and end as the device saw them (CUPTI's activity
// records: launch overlap and graph replays as they happen, unlike timing kernels one by one),
// and the decode step's time split by kernel kind from them: what `llmcompress bench --trace`
// prints. Built where CMake finds CUPTI (CUDA::cupti), whose library is opened on the first trace,
// so llmcompress also runs where it is not installed; built without it, kernel_trace_available()
// is false and trace_kernels throws.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace llmc::runtime {

struct TracedKernel {
  std::string name;     // demangled, without its argument list
  uint64_t start = 0, end = 0;  // ns, device timestamps
  uint32_t launch = 0;  // CUPTI's correlation id: the API call (e.g. one graph launch) it came from
};

bool kernel_trace_available();
// Throws (a usage error) where kernel_trace_available() is false.
void require_kernel_trace();

// A kernel's name as the trace shows it: demangled, without its return type, qualification and
// argument list ("void ns::(anonymous namespace)::k<4, 1>(ns::Args)" → "k<4, 1>"); names that do
// not demangle stay as they are.
std::string kernel_short_name(const char* mangled);

// Every kernel the device runs while `run` executes (the device is synchronized before the
// records are read), in start order.
std::vector<TracedKernel> trace_kernels(const std::function<void()>& run);

// One kernel kind's share of a step (a group of kernels from one launch, e.g. a graph replay):
// medians over the steps of its count, its kernels' summed time on the device, and their summed
// exposed time, each kernel's end minus the end of the kernel before it in the step (the first:
// its whole duration), i.e. what it adds to the step's critical path.
struct StepShare {
  std::string kernel;
  int64_t per_step = 0;
  double device_us = 0, exposed_us = 0;
};
struct StepTrace {
  int64_t steps = 0;    // the launches that ran the step's most common kernel count
  double step_us = 0;   // median first start to last end
  std::vector<StepShare> kinds;  // by exposed time, largest first
};
StepTrace split_steps(const std::vector<TracedKernel>& kernels);

}  // namespace llmc::runtime
