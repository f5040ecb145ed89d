#include "util/numeric.h"

#include <array>

namespace razor {

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
