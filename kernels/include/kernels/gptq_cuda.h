// Host-only view of GPTQ on the GPU, batched over experts of one shape (no cuda_runtime.h here). The algorithm and
// its precision choices are the CPU reference's (core/quant/methods.h, gptq): H = X^T X in double (cuBLAS batched
// DGEMM; tokens are zero-padded to the batch's largest count, which adds nothing to H), dead columns, damping
// (the mean of the diagonal summed in the CPU's order), A = J H J, a blocked Cholesky A = L L^T in double (our
// diagonal-block kernel, cuBLAS batched TRSM for the panel and batched DGEMM for the trailing update), M = L^-1
// (batched TRSM on the identity), U = J M J in float; then the column loop in float: one CUDA block per
// (expert, row tile) runs kernels/gptq.h's column step over a lazy block, and the block's trailing update is a
// batched SGEMM. Sums are ordered differently from the CPU's, so results equal the CPU's except where a rounding
// tie flips (tests/quant/test_gptq_gpu.cpp). In a build without CUDA every entry returns errc::device.
// Callers normally go through razor::quant::gptq_quantize_batch (the fallbacks: fewer than min tokens -> rtn-asym
// on the CPU, a failed Cholesky -> rtn-asym, reported per expert).
#pragma once
#include <cstdint>

#include "util/status.h"

namespace razor::cu {

struct gptq_batch_shape {
  int64_t rows = 0, cols = 0;  // every expert's W [rows x cols], row-major
  int bits = 3;                // 1..8
  int64_t group = 128;         // the effective group (divides cols; quant::effective_group)
  int64_t block = 128;         // lazy block, 1..cols
  double damp = 0.01;
};

struct gptq_expert_result {
  bool cholesky_failed = false;  // out[e] was not written (the caller falls back to rtn-asym)
  int64_t n_dead = 0;
};

// GPTQ of E experts: w[e] (rows*cols floats), tokens x[e] (ntok[e] x cols, ntok[e] >= 1), out[e] (rows*cols).
// Experts are processed in chunks that fit the device's free memory. errc::device on a CUDA / cuBLAS failure or
// without a device, errc::invalid_argument on bad shapes.
status gptq_batch_host(const gptq_batch_shape& s, int64_t E, const float* const* w, const float* const* x,
                       const int64_t* ntok, float* const* out, gptq_expert_result* res);

}  // namespace razor::cu
