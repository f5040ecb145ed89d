#include <cuda_runtime.h>

#include "kernels/cuda_info.h"

namespace razor::cu {

bool built_with_cuda() { return true; }

std::vector<device_info> devices(std::string* why_none) {
  std::vector<device_info> out;
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why_none) *why_none = cudaGetErrorString(e);
    cudaGetLastError();
    return out;
  }
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    out.push_back({i, p.name, p.totalGlobalMem, p.multiProcessorCount, p.major, p.minor});
  }
  if (out.empty() && why_none) *why_none = "no CUDA device";
  return out;
}

}  // namespace razor::cu
