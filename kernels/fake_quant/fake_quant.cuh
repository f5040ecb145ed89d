// Internal to kernels/fake_quant/: what the host entry points (host.cu) call in the kernels' file (kernels.cu).
#pragma once
#include <cuda_runtime.h>

#include "kernels/fake_quant_cuda.h"

namespace razor::cu {

struct dacc {  // device-side statistics accumulator
  unsigned long long groups;
  unsigned long long hist[kFqMaxRatios];
  double sq_err;
  double sq_ref;
  unsigned long long checksum;
};

// errc::invalid_argument for a group length that does not divide cols, or bad integer-mode ratios / qmax.
status fq_check_params(const fq_kernel_params& p, size_t cols);
// Launches the kernel for p on device rows (in may equal out), asynchronously on st; acc: statistics or null.
// legacy: the half-warp kernel for every group length (the benchmark's before/after).
status fq_launch(const uint16_t* in, uint16_t* out, size_t rows, size_t cols, const fq_kernel_params& p, dacc* acc,
                 cudaStream_t st, bool legacy = false);

}  // namespace razor::cu
