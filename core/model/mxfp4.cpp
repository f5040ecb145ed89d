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

void mxfp4_encode_block(const float* v, uint8_t* codes, uint8_t* scale) {
  float amax = 0.0f;
  for (int64_t i = 0; i < kMxfp4Block; ++i) amax = std::max(amax, std::fabs(v[i]));
  int e = 0;
  if (amax > 0.0f) {
    e = int(std::ceil(std::log2(double(amax) / 6.0)));
    while (std::ldexp(6.0, e) < double(amax)) ++e;  // log2's rounding
    e = std::clamp(e, -127, 127);
  }
  *scale = uint8_t(e + 127);
  const float inv = std::ldexp(1.0f, -e);
  for (int64_t i = 0; i < kMxfp4BlockBytes; ++i) codes[i] = 0;
  for (int64_t i = 0; i < kMxfp4Block; ++i) {
    const float x = v[i] * inv;
    uint8_t best = 0;
    float err = std::numeric_limits<float>::infinity();
    for (uint8_t c = 0; c < 16; ++c) {
      const float d = std::fabs(e2m1_to_f32(c) - x);
      if (d < err) err = d, best = c;
    }
    if (best == 8) best = 0;  // -0 -> 0
    codes[i / 2] |= uint8_t(i % 2 ? best << 4 : best);
  }
}

void mxfp4_hub_to_ggml(const uint8_t* codes, uint8_t scale, uint8_t* g) {
  auto code = [&](int64_t i) { return uint8_t(i % 2 ? codes[i / 2] >> 4 : codes[i / 2] & 15); };
  g[0] = scale;
  for (int64_t j = 0; j < kMxfp4BlockBytes; ++j) g[1 + j] = uint8_t(code(j) | (code(j + 16) << 4));
}

}  // namespace razor
