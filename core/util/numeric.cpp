#include "util/numeric.h"

#include <array>

namespace razor {

float f16_to_f32(uint16_t h) {
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
    // infinity, or NaN made quiet with its payload kept (as ggml's GGML_FP16_TO_FP32 and F16C do)
    out = sign | 0x7f800000u | (mant << 13) | (mant ? 0x00400000u : 0u);
  } else {
    out = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(out);
}

uint16_t f32_to_f16(float f) {
  // Round to nearest even, the same result as the F16C instruction vcvtps2ph with mode 0.
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t au = u & 0x7fffffffu;
  if (au > 0x7f800000u) return uint16_t(sign | 0x7e00u);  // NaN: canonical quiet NaN, as ggml
  if (au >= 0x477ff000u) {  // rounds to >= 65520: infinity
    return uint16_t(sign | 0x7c00u);
  }
  if (au < 0x38800000u) {  // below the smallest normal f16 (2^-14): subnormal or zero
    if (au < 0x33000000u) return uint16_t(sign);  // < 2^-25 rounds to zero (ties to even -> 0)
    const uint32_t exp = au >> 23;
    const uint32_t mant = (au & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exp;  // 14 + (113 - exp) ... position of the f16 subnormal lsb
    const uint32_t q = mant >> (shift - 0);
    // value = mant * 2^(exp-150); f16 subnormal lsb = 2^-24 -> q = mant >> (126 - exp)
    uint32_t res = q;
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

namespace {
float fp8_e4m3_decode(uint8_t v) {
  const uint32_t sign = (v & 0x80u) ? 1u : 0u;
  const uint32_t exp = (v >> 3) & 0xfu;
  const uint32_t mant = v & 0x7u;
  float r;
  if (exp == 0xf && mant == 0x7) {
    r = std::nanf("");
  } else if (exp == 0) {
    r = std::ldexp(float(mant) / 8.0f, -6);
  } else {
    r = std::ldexp(1.0f + float(mant) / 8.0f, int(exp) - 7);
  }
  return sign ? -r : r;
}
// All 256 values, decoded once: the read path of a 122B FP8 checkpoint converts every weight through it.
const std::array<float, 256>& fp8_e4m3_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[size_t(i)] = fp8_e4m3_decode(uint8_t(i));
    return t;
  }();
  return table;
}
}  // namespace

float fp8_e4m3_to_f32(uint8_t v) { return fp8_e4m3_table()[v]; }

uint8_t f32_to_fp8_e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
  const float a = std::fabs(f);
  const auto& t = fp8_e4m3_table();
  if (a >= t[0x7e]) return uint8_t(sign | 0x7e);  // saturates at 448 (the format has no infinity)
  // Codes 0x00..0x7e are the non-negative values in increasing order: the nearest, ties to the even code
  // (an even mantissa).
  uint8_t lo = 0, hi = 0x7e;
  while (hi - lo > 1) {
    const uint8_t mid = uint8_t((lo + hi) / 2);
    (t[mid] <= a ? lo : hi) = mid;
  }
  const float dl = a - t[lo], dh = t[hi] - a;
  const uint8_t code = dl < dh ? lo : dh < dl ? hi : ((lo & 1) ? hi : lo);
  return uint8_t(sign | code);
}

}  // namespace razor
