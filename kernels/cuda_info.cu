#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/cuda_check.cuh"
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

result<double> pinned_h2d_gbps(size_t bytes) {
  void* hbuf = nullptr;
  void* dbufp = nullptr;
  RZ_CU_CALL(cudaMallocHost(&hbuf, bytes));
  std::memset(hbuf, 1, bytes);
  cudaError_t e = cudaMalloc(&dbufp, bytes);
  if (e != cudaSuccess) {
    cudaFreeHost(hbuf);
    return cuda_error(e, "cudaMalloc (h2d)");
  }
  cudaMemcpy(dbufp, hbuf, bytes, cudaMemcpyHostToDevice);  // warm-up
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    cudaMemcpy(dbufp, hbuf, bytes, cudaMemcpyHostToDevice);
    cudaDeviceSynchronize();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(bytes) / s / 1e9);
  }
  e = cudaGetLastError();
  cudaFree(dbufp);
  cudaFreeHost(hbuf);
  if (e != cudaSuccess) return cuda_error(e, "h2d copy");
  return best;
}

}  // namespace razor::cu
