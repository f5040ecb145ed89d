// How many CUDA devices this process would see, asked of the NVIDIA driver at run time (dlopen of
// libcuda.so.1, cuInit + cuDeviceGetCount), for code that must not link the CUDA runtime: core/eval/serve.cpp
// sizes vLLM's tensor parallelism with it, and eval sits beside, not above, kernels/ (docs/DEVELOPING.md).
// Why the driver and not libcudart or nvidia-smi: libcuda.so.1 comes with every NVIDIA driver, while a shared
// libcudart may be absent (razor links it statically); the driver honours CUDA_VISIBLE_DEVICES exactly as
// the runtime does, and nvidia-smi does not (and is a process to start).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace razor {

// The devices the driver reports; 0 with the reason in *why_none when there is no driver, it fails to
// initialise, or it reports none.
int cuda_driver_device_count(std::string* why_none = nullptr);

// GPU memory in use on every device of the machine, all processes together, from NVML (dlopen of
// libnvidia-ml.so.1, which comes with the driver; no CUDA context is made, so asking costs no GPU memory).
// nullopt with the reason when there is no driver or NVML fails. `razor eval --speed` records it beside the
// server's speed (eval/speed.h): on a machine that runs only the server it is the server's footprint.
std::optional<uint64_t> nvml_memory_used_bytes(std::string* why_none = nullptr);

}  // namespace razor
