// gpt-oss's clamped SwiGLU of one expert unit, one copy for the CPU reference engine (core/engine/model_runner.cpp
// moe_block) and the GPU engine (kernels/engine/layer_ops.cuh k_swiglu_oss): util/hd.h's RAZOR_HD, so nvcc compiles
// the same function for the device. Host-only otherwise (no cuda_runtime.h).
//   g = min(gate, limit), u = clamp(up, -limit, limit), act = g sigmoid(alpha g) (u + 1), alpha = 1.702
// (transformers' GptOssExperts; the biases are added to gate and up before the call).
#pragma once
#include <math.h>

#include "util/hd.h"

namespace razor::cu {

constexpr float k_gpt_oss_alpha = 1.702f;

RAZOR_HD float gpt_oss_swiglu(float gate, float up, float limit) {
  const float g = limit < gate ? limit : gate;   // std::min(gate, limit)
  const float lo = up < -limit ? -limit : up;     // std::max(up, -limit)
  const float u = limit < lo ? limit : lo;        // std::min(lo, limit)
  return g / (1.0f + expf(-k_gpt_oss_alpha * g)) * (u + 1.0f);
}

}  // namespace razor::cu
