#include "util/gpu_count.h"

#include <dlfcn.h>

namespace razor {

int cuda_driver_device_count(std::string* why_none) {
  auto none = [&](std::string why) {
    if (why_none) *why_none = std::move(why);
    return 0;
  };
  // The handle is kept for the process (closing the driver library after cuInit is not supported).
  static void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return none("no NVIDIA driver (libcuda.so.1 not found)");
  // CUresult cuInit(unsigned int), CUresult cuDeviceGetCount(int*); CUDA_SUCCESS is 0 (the driver ABI).
  using init_fn = int (*)(unsigned);
  using count_fn = int (*)(int*);
  auto init = reinterpret_cast<init_fn>(dlsym(lib, "cuInit"));
  auto count = reinterpret_cast<count_fn>(dlsym(lib, "cuDeviceGetCount"));
  if (!init || !count) return none("libcuda.so.1 lacks cuInit / cuDeviceGetCount");
  if (const int e = init(0); e != 0) return none("cuInit failed (CUresult " + std::to_string(e) + ")");
  int n = 0;
  if (const int e = count(&n); e != 0) return none("cuDeviceGetCount failed (CUresult " + std::to_string(e) + ")");
  if (n <= 0) return none("no CUDA device");
  return n;
}

std::optional<uint64_t> nvml_memory_used_bytes(std::string* why_none) {
  auto none = [&](std::string why) -> std::optional<uint64_t> {
    if (why_none) *why_none = std::move(why);
    return std::nullopt;
  };
  static void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return none("no NVIDIA driver (libnvidia-ml.so.1 not found)");
  // nvmlReturn_t is an int (NVML_SUCCESS = 0); nvmlMemory_t = {total, free, used} as unsigned long long.
  struct nvml_memory {
    unsigned long long total, free, used;
  };
  using init_fn = int (*)();
  using count_fn = int (*)(unsigned*);
  using handle_fn = int (*)(unsigned, void**);
  using memory_fn = int (*)(void*, nvml_memory*);
  auto init = reinterpret_cast<init_fn>(dlsym(lib, "nvmlInit_v2"));
  auto shutdown = reinterpret_cast<init_fn>(dlsym(lib, "nvmlShutdown"));
  auto count = reinterpret_cast<count_fn>(dlsym(lib, "nvmlDeviceGetCount_v2"));
  auto handle = reinterpret_cast<handle_fn>(dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
  auto memory = reinterpret_cast<memory_fn>(dlsym(lib, "nvmlDeviceGetMemoryInfo"));
  if (!init || !shutdown || !count || !handle || !memory) return none("libnvidia-ml.so.1 lacks the NVML calls needed");
  if (const int e = init(); e != 0) return none("nvmlInit failed (nvmlReturn " + std::to_string(e) + ")");
  unsigned n = 0;
  uint64_t used = 0;
  int e = count(&n);
  for (unsigned i = 0; e == 0 && i < n; ++i) {
    void* dev = nullptr;
    nvml_memory m{};
    if ((e = handle(i, &dev)) == 0 && (e = memory(dev, &m)) == 0) used += m.used;
  }
  shutdown();
  if (e != 0) return none("NVML failed (nvmlReturn " + std::to_string(e) + ")");
  return used;
}

}  // namespace razor
