// The CPU-only build: the same host API as kernels/*.cu, answering "no GPU".
#include "kernels/cuda_info.h"

namespace razor::cu {

bool built_with_cuda() { return false; }

std::vector<device_info> devices(std::string* why_none) {
  if (why_none) *why_none = "built without CUDA";
  return {};
}

}  // namespace razor::cu
