// IEEE binary16 <-> float32, bit-exact and host + device (util/hd.h): the CPU quantizers, the GGUF reader and
// the CUDA ggml packer all convert through these two functions. float -> f16 rounds to nearest even (the
// F16C instruction vcvtps2ph with mode 0, ggml's GGML_FP32_TO_FP16), subnormals included; NaN becomes the
// quiet NaN 0x7e00 with the sign kept. f16 -> float keeps a NaN's payload and sets the quiet bit (ggml's
// GGML_FP16_TO_FP32 and F16C). tests/ggml/test_ggml_fp16.cpp checks every half, every tie and the subnormals.
#pragma once
#include <cstdint>

#include "util/hd.h"

namespace razor {

RAZOR_HD float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t out;
  if (exp == 0) {
    if (mant == 0) {
      out = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      mant &= 0x3ffu;
      out = sign | (uint32_t(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    // infinity, or NaN made quiet with its payload kept
    out = sign | 0x7f800000u | (mant << 13) | (mant ? 0x00400000u : 0u);
  } else {
    out = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return bits_to_float(out);
}

RAZOR_HD uint16_t f32_to_f16(float f) {
  const uint32_t u = float_to_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t au = u & 0x7fffffffu;
  if (au > 0x7f800000u) return uint16_t(sign | 0x7e00u);  // NaN: canonical quiet NaN, as ggml
  if (au >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: infinity
  if (au < 0x38800000u) {  // below the smallest normal f16 (2^-14): subnormal or zero
    if (au < 0x33000000u) return uint16_t(sign);  // < 2^-25 rounds to zero (ties to even -> 0)
    // value = mant * 2^(exp-150); the f16 subnormal lsb is 2^-24, so q = mant >> (126 - exp)
    const uint32_t exp = au >> 23;
    const uint32_t mant = (au & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exp;
    uint32_t res = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (res & 1u))) ++res;
    return uint16_t(sign | res);
  }
  uint32_t res = ((au >> 13) - ((127 - 15) << 10));
  const uint32_t rem = au & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (res & 1u))) ++res;
  return uint16_t(sign | res);
}

}  // namespace razor
