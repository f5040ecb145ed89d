// The per-element math of the seed's asymmetric quantizers (rtn_asym, and GPTQ's column step), one copy for the
// CPU reference (core/quant/methods.cpp) and a later batched CUDA GPTQ: util/hd.h's RAZOR_HD, so nvcc compiles the
// same functions for the device. Host-only otherwise (no cuda_runtime.h).
//
//   params of a group g (values w_0..w_{n-1}):  s = max(max(g) - min(g), 1e-8) / (2^bits - 1),  z = rint(-min(g) / s)
//   fake-quant of one value:                    q = clamp(rint(w / s) + z, 0, 2^bits - 1),    w' = (q - z) * s
// (moe_ptq.rtn_asym; rint = round half to even, torch.round). All float32.
//
// GPTQ's column step on ONE row (rows are independent once Hinv is known, which is what makes the CPU loop cache
// friendly and the GPU version one thread block per row tile): at column i of a lazy block [i1, i2) with the
// upper Cholesky factor U of H^-1 (row i of U is h[i..]),
//   q = fake(w_i),  e = (w_i - q) / U_ii,  w_j -= e * U_ij for j in (i, i2),  and e is kept for the block update
//   w_j -= sum_k e_k * U_kj (k in [i1, i2), j >= i2) once the block is done.
#pragma once
#include <math.h>
#include <stdint.h>

#include "util/hd.h"

namespace razor::cu {

struct asym_params {
  float scale = 1.0f;
  float zero = 0.0f;
  float maxq = 7.0f;  // 2^bits - 1
};

// The seed's per-group parameters from the group's minimum and maximum.
RAZOR_HD asym_params asym_params_from_range(float lo, float hi, int bits) {
  asym_params p;
  p.maxq = float((1u << bits) - 1u);
  float range = hi - lo;
  p.scale = (range > 1e-8f ? range : 1e-8f) / p.maxq;
  p.zero = rintf(-lo / p.scale);
  return p;
}

// Parameters of n values read with a stride (1 for a row's group).
RAZOR_HD asym_params asym_params_of(const float* w, int64_t n, int64_t stride, int bits) {
  float lo = w[0], hi = w[0];
  for (int64_t i = 1; i < n; ++i) {
    float v = w[i * stride];
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  return asym_params_from_range(lo, hi, bits);
}

// The quantization level of one value (0 .. maxq).
RAZOR_HD float asym_level(float w, const asym_params& p) {
  float q = rintf(w / p.scale) + p.zero;
  return q < 0.0f ? 0.0f : (q > p.maxq ? p.maxq : q);
}

// The end of GPTQ's lazy block that starts at i1 (block B, group G, cols columns): i1 + B, cut at the start of a
// group that begins inside the block and would end after it (its params must see every earlier error, which a lazy
// block has not yet pushed past its end). With the seed's group 128 = block 128 no block is cut. One copy for the
// CPU loop and the CUDA host loop.
RAZOR_HD int64_t gptq_block_end(int64_t i1, int64_t B, int64_t G, int64_t cols) {
  int64_t i2 = i1 + B < cols ? i1 + B : cols;
  for (int64_t g = (i1 / G + 1) * G; g < i2; g += G)
    if (g + G > i2) return g;
  return i2;
}

// Quantize + dequantize one value.
RAZOR_HD float asym_fake(float w, const asym_params& p) { return (asym_level(w, p) - p.zero) * p.scale; }

// GPTQ's step at column i of one row: quantizes w[i] into *q, returns the scaled error e and applies it to the
// rest of the lazy block, w[i+1 .. end) -= e * u[i+1 .. end) (u = row i of U, indexed like w).
RAZOR_HD float gptq_column_step(float* w, const float* u, int64_t i, int64_t end, const asym_params& p, float* q) {
  float qi = asym_fake(w[i], p);
  *q = qi;
  float e = (w[i] - qi) / u[i];
  for (int64_t j = i + 1; j < end; ++j) w[j] -= e * u[j];
  return e;
}

}  // namespace razor::cu
