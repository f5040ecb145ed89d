#include "jobs/gpu_telemetry.h"

#include <dlfcn.h>

#include <chrono>
#include <vector>

namespace razor::jobs {

namespace {

// The ABI-stable subset of nvml.h we call (types and layouts as NVML has shipped them since CUDA 10).
using nvml_return = int;  // nvmlReturn_t; 0 = NVML_SUCCESS
using nvml_device = struct nvml_device_st*;
constexpr nvml_return kNvmlSuccess = 0;
constexpr nvml_return kNvmlInsufficientSize = 7;
constexpr unsigned kNvmlTemperatureGpu = 0;
constexpr unsigned kNameBuffer = 96;  // NVML_DEVICE_NAME_V2_BUFFER_SIZE

struct nvml_utilization {
  unsigned gpu, memory;
};
struct nvml_memory {
  unsigned long long total, free, used;
};
// nvmlProcessInfo_v1_t, which the unversioned nvmlDeviceGetComputeRunningProcesses fills.
struct nvml_process_info {
  unsigned pid;
  unsigned long long used_gpu_memory;
};

}  // namespace

struct gpu_telemetry::api {
  void* lib = nullptr;
  nvml_return (*init)() = nullptr;
  nvml_return (*shutdown)() = nullptr;
  nvml_return (*count)(unsigned*) = nullptr;
  nvml_return (*handle)(unsigned, nvml_device*) = nullptr;
  nvml_return (*name)(nvml_device, char*, unsigned) = nullptr;
  nvml_return (*util)(nvml_device, nvml_utilization*) = nullptr;
  nvml_return (*mem)(nvml_device, nvml_memory*) = nullptr;
  nvml_return (*temp)(nvml_device, unsigned, unsigned*) = nullptr;
  nvml_return (*power)(nvml_device, unsigned*) = nullptr;
  nvml_return (*procs)(nvml_device, unsigned*, nvml_process_info*) = nullptr;
  const char* (*error_string)(nvml_return) = nullptr;
  bool ready = false;

  std::string err(const char* fn, nvml_return r) const {
    return std::string(fn) + ": " + (error_string ? error_string(r) : ("error " + std::to_string(r)));
  }
};

gpu_telemetry::gpu_telemetry(const std::string& library) : api_(std::make_unique<api>()) {
  api_->lib = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!api_->lib) {
    const char* e = dlerror();
    why_ = e ? e : (library + ": cannot be loaded");
    return;
  }
  auto sym = [&](auto& fp, const char* name) {
    fp = reinterpret_cast<std::remove_reference_t<decltype(fp)>>(dlsym(api_->lib, name));
    if (!fp && why_.empty()) why_ = library + ": no symbol " + name;
  };
  sym(api_->init, "nvmlInit_v2");
  sym(api_->shutdown, "nvmlShutdown");
  sym(api_->count, "nvmlDeviceGetCount_v2");
  sym(api_->handle, "nvmlDeviceGetHandleByIndex_v2");
  sym(api_->name, "nvmlDeviceGetName");
  sym(api_->util, "nvmlDeviceGetUtilizationRates");
  sym(api_->mem, "nvmlDeviceGetMemoryInfo");
  sym(api_->temp, "nvmlDeviceGetTemperature");
  sym(api_->power, "nvmlDeviceGetPowerUsage");
  sym(api_->procs, "nvmlDeviceGetComputeRunningProcesses");
  sym(api_->error_string, "nvmlErrorString");
  if (!why_.empty()) return;
  if (nvml_return r = api_->init(); r != kNvmlSuccess) {
    why_ = api_->err("nvmlInit_v2", r);
    return;
  }
  api_->ready = true;
}

gpu_telemetry::~gpu_telemetry() {
  if (api_->ready && api_->shutdown) api_->shutdown();
  if (api_->lib) dlclose(api_->lib);
}

bool gpu_telemetry::available() const { return api_->ready; }

nlohmann::json gpu_telemetry::sample() const {
  using nlohmann::json;
  json devices = json::array();
  if (api_->ready) {
    unsigned n = 0;
    if (api_->count(&n) != kNvmlSuccess) n = 0;
    for (unsigned i = 0; i < n; ++i) {
      nvml_device d = nullptr;
      if (api_->handle(i, &d) != kNvmlSuccess) continue;
      json g = {{"index", i}, {"name", nullptr}, {"util_gpu", nullptr}, {"util_mem", nullptr},
                {"mem_used", nullptr}, {"mem_total", nullptr}, {"temp_c", nullptr}, {"power_w", nullptr},
                {"procs", json::array()}};
      char name[kNameBuffer] = {};
      if (api_->name(d, name, kNameBuffer) == kNvmlSuccess) g["name"] = std::string(name);
      nvml_utilization u{};
      if (api_->util(d, &u) == kNvmlSuccess) {
        g["util_gpu"] = u.gpu;
        g["util_mem"] = u.memory;
      }
      nvml_memory m{};
      if (api_->mem(d, &m) == kNvmlSuccess) {
        g["mem_used"] = m.used;
        g["mem_total"] = m.total;
      }
      unsigned t = 0;
      if (api_->temp(d, kNvmlTemperatureGpu, &t) == kNvmlSuccess) g["temp_c"] = t;
      unsigned mw = 0;
      if (api_->power(d, &mw) == kNvmlSuccess) g["power_w"] = mw / 1000.0;
      // Per-process memory: ask with a buffer, grow once when NVML says it is too small.
      std::vector<nvml_process_info> pi(16);
      unsigned np = unsigned(pi.size());
      nvml_return r = api_->procs(d, &np, pi.data());
      if (r == kNvmlInsufficientSize) {
        pi.resize(np + 8);
        np = unsigned(pi.size());
        r = api_->procs(d, &np, pi.data());
      }
      if (r == kNvmlSuccess)
        for (unsigned k = 0; k < np && k < pi.size(); ++k)
          g["procs"].push_back({{"pid", pi[k].pid}, {"mem_used", pi[k].used_gpu_memory}});
      devices.push_back(std::move(g));
    }
  }
  double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  return {{"t", "gpu"}, {"time", now}, {"devices", std::move(devices)}};
}

}  // namespace razor::jobs
