#include "common/timing.cuh"

#include <cuda_runtime.h>

#include <algorithm>

#include "common/cuda_check.cuh"

namespace razor::cu {

result<std::vector<double>> time_runs(const std::function<status()>& fn, int warmup, int iters) {
  struct events_t {
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    ~events_t() {
      if (e0) cudaEventDestroy(e0);
      if (e1) cudaEventDestroy(e1);
    }
  } ev;
  RZ_CU(cudaEventCreate(&ev.e0), "cudaEventCreate");
  RZ_CU(cudaEventCreate(&ev.e1), "cudaEventCreate");
  for (int i = 0; i < warmup; ++i) RAZOR_TRY(fn());
  RZ_CU(cudaDeviceSynchronize(), "warm-up");
  std::vector<double> ms;
  for (int i = 0; i < std::max(1, iters); ++i) {
    RZ_CU(cudaEventRecord(ev.e0), "event");
    RAZOR_TRY(fn());
    RZ_CU(cudaEventRecord(ev.e1), "event");
    RZ_CU(cudaEventSynchronize(ev.e1), "event sync");
    float t = 0;
    RZ_CU(cudaEventElapsedTime(&t, ev.e0, ev.e1), "event time");
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  return ms;
}

result<std::string> current_device(int* index) {
  cudaDeviceProp prop{};
  RZ_CU(cudaGetDevice(index), "cudaGetDevice");
  RZ_CU(cudaGetDeviceProperties(&prop, *index), "cudaGetDeviceProperties");
  return std::string(prop.name);
}

}  // namespace razor::cu
