// Scalar number formats: IEEE binary16, bfloat16 and FP8 E4M3 to and from float32, bit-exact.
// float -> bf16 and float -> f16 round to nearest even (as torch's .to(bfloat16) and ggml's
// GGML_FP32_TO_FP16 do), subnormals included. NaN stays NaN: float -> f16 gives the quiet NaN 0x7e00
// with the sign kept, f16 -> float keeps the payload and sets the quiet bit, bit-equal to ggml
// (tests/ggml/test_ggml_fp16.cpp checks every half, every rounding tie and the subnormal range).
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "util/half.h"  // f16_to_f32, f32_to_f16 (host + device)

namespace razor {

inline float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

inline uint16_t f32_to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// FP8 E4M3 (fn variant: no infinities, 0x7f/0xff are NaN), as stored by DeepSeek-V3 / Qwen FP8 checkpoints.
float fp8_e4m3_to_f32(uint8_t v);
// Nearest E4M3 value, ties to an even mantissa; beyond +-448 saturates to +-448 (no infinity); NaN -> 0x7f.
uint8_t f32_to_fp8_e4m3(float f);

}  // namespace razor
