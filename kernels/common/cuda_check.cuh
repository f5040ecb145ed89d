// The one CUDA error helper of kernels/: a failed call becomes errc::device naming the call and CUDA's error
// name and text; the sticky last error is cleared so that the next call starts clean.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "util/status.h"

namespace razor::cu {

inline status cuda_error(cudaError_t e, const char* what) {
  std::string msg = std::string("CUDA ") + what + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
  cudaGetLastError();
  return make_error(errc::device, msg);
}

// Device memory freed on scope exit (the host entry points' scratch buffers).
template <class T>
struct device_ptr {
  T* p = nullptr;
  device_ptr() = default;
  device_ptr(const device_ptr&) = delete;
  device_ptr& operator=(const device_ptr&) = delete;
  ~device_ptr() {
    if (p) cudaFree(p);
  }
};

}  // namespace razor::cu

// Return cuda_error(e, what) from the enclosing function (status or result<T>) when `call` fails.
#define RZ_CU(call, what)                                            \
  do {                                                               \
    const cudaError_t rz_cu_e_ = (call);                             \
    if (rz_cu_e_ != cudaSuccess) return ::razor::cu::cuda_error(rz_cu_e_, what); \
  } while (0)
// RZ_CU with the call's own text as `what`.
#define RZ_CU_CALL(call) RZ_CU(call, #call)
// The same for the launch just made (cudaGetLastError).
#define RZ_CU_LAUNCH(what) RZ_CU(cudaGetLastError(), what)
