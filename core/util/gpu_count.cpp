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

}  // namespace razor
