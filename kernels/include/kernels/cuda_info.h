// Host-only view of the CUDA side (no cuda_runtime.h here). In a build without CUDA every query
// answers "no GPU" and every kernel entry point returns errc::device.
#pragma once
#include <string>
#include <vector>

#include "util/status.h"

namespace razor::cu {

struct device_info {
  int index = 0;
  std::string name;
  size_t total_memory = 0;
  int sm_count = 0;
  int cc_major = 0, cc_minor = 0;
};

bool built_with_cuda();
// Devices the CUDA runtime sees; empty with a reason when there is no driver or no GPU.
std::vector<device_info> devices(std::string* why_none = nullptr);
// Host -> device copy rate from page-locked memory over `bytes` (best of 3), in GB/s (the benchmarks).
result<double> pinned_h2d_gbps(size_t bytes);

}  // namespace razor::cu
