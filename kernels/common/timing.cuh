// Kernel timing for the benchmarks' helpers (fake_quant_bench, ggml_quant_bench): CUDA events around each run
// on the legacy default stream.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "util/status.h"

namespace razor::cu {

// `warmup` untimed runs of fn, a device synchronisation, then the milliseconds of each of `iters` runs
// (at least one), sorted ascending. fn's error, or errc::device for a CUDA failure.
result<std::vector<double>> time_runs(const std::function<status()>& fn, int warmup, int iters);

// The current device's index (*index) and name, for the benchmarks' reports.
result<std::string> current_device(int* index);

}  // namespace razor::cu
