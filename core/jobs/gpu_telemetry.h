// GPU telemetry through NVML, loaded at run time with dlopen("libnvidia-ml.so.1"): the worker links no
// NVIDIA library, and a machine without the driver simply has no samples. Only a small, ABI-stable subset
// of nvml.h is declared (in gpu_telemetry.cpp): nvmlInit_v2, nvmlDeviceGetCount_v2,
// nvmlDeviceGetHandleByIndex_v2, nvmlDeviceGetName, nvmlDeviceGetUtilizationRates, nvmlDeviceGetMemoryInfo,
// nvmlDeviceGetTemperature, nvmlDeviceGetPowerUsage, nvmlDeviceGetComputeRunningProcesses, nvmlErrorString
// (+ nvmlShutdown). NVML numbers devices in PCI order and ignores CUDA_VISIBLE_DEVICES.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace razor::jobs {

class gpu_telemetry {
 public:
  // Loads NVML; `library` is for tests (a path, or a name that does not exist).
  explicit gpu_telemetry(const std::string& library = "libnvidia-ml.so.1");
  ~gpu_telemetry();
  gpu_telemetry(const gpu_telemetry&) = delete;
  gpu_telemetry& operator=(const gpu_telemetry&) = delete;

  bool available() const;
  // Why there are no samples ("libnvidia-ml.so.1: cannot open shared object file", "nvmlInit_v2: ...").
  const std::string& why_unavailable() const { return why_; }
  // {"t":"gpu","time":<unix s>,"devices":[{"index","name","util_gpu","util_mem","mem_used","mem_total",
  //  "temp_c","power_w","procs":[{"pid","mem_used"}]}]}; a field NVML refuses for a device is null.
  nlohmann::json sample() const;

 private:
  struct api;
  std::unique_ptr<api> api_;
  std::string why_;
};

}  // namespace razor::jobs
