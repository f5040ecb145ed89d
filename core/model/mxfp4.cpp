#include "model/mxfp4.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace razor {

float e2m1_to_f32(uint8_t code) {
  static constexpr float kMagnitude[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  const float m = kMagnitude[code & 7];
  return (code & 8) ? -m : m;
}

float e8m0_to_f32(uint8_t s) {
  if (s == kE8m0Nan) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, int(s) - 127);  // 2^-127 is a float subnormal: exact
}

bool mxfp4_decode(const uint8_t* blocks, const uint8_t* scales, int64_t first, int64_t count, float* out) {
  for (int64_t i = 0; i < count;) {
    const int64_t e = first + i, b = e / kMxfp4Block;
    const uint8_t s = scales[b];
    if (s == kE8m0Nan) return false;
    const float scale = e8m0_to_f32(s);
    const uint8_t* codes = blocks + b * kMxfp4BlockBytes;
    const int64_t end = std::min(count, i + (b + 1) * kMxfp4Block - e);
    for (; i < end; ++i) {
      const int64_t j = (first + i) % kMxfp4Block;
      const uint8_t byte = codes[j / 2];
      out[i] = e2m1_to_f32(j % 2 ? uint8_t(byte >> 4) : uint8_t(byte & 15)) * scale;
    }
  }
  return true;
}

}  // namespace razor
