// util/numeric.h's fp16 / bf16 conversions against ggml's GGML_FP32_TO_FP16 / GGML_FP16_TO_FP32 /
// GGML_FP32_TO_BF16 (exported as ggml_fp32_to_fp16 etc.), bit for bit: every half, every rounding tie,
// the subnormal range and random bit patterns.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "ggml_oracle.h"
#include "util/numeric.h"

namespace {

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }
float from_bits(uint32_t u) { return std::bit_cast<float>(u); }

}  // namespace

TEST(ggml_fp16, half_to_float_all_65536) {
  RAZOR_REQUIRE_ORACLE(o);
  for (uint32_t h = 0; h < 65536; ++h)
    ASSERT_EQ(bits(razor::f16_to_f32(uint16_t(h))), bits(o.fp16_to_fp32(uint16_t(h)))) << std::hex << h;
}

TEST(ggml_fp16, float_to_half_ties_and_neighbours) {
  RAZOR_REQUIRE_ORACLE(o);
  // For every finite half h: its value, the midpoint to the next half (a tie), and one float ulp
  // either side of both; with both signs.
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float lo = razor::f16_to_f32(uint16_t(h)), hi = razor::f16_to_f32(uint16_t(h + 1));
    const float mid = lo + (hi - lo) * 0.5f;  // exact: halves have 11 significant bits
    for (float v : {lo, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f), std::nextafter(lo, 1e9f)}) {
      ASSERT_EQ(razor::f32_to_f16(v), o.fp32_to_fp16(v)) << std::hexfloat << v;
      ASSERT_EQ(razor::f32_to_f16(-v), o.fp32_to_fp16(-v)) << std::hexfloat << -v;
    }
  }
}

TEST(ggml_fp16, float_to_half_subnormal_range_exhaustive) {
  RAZOR_REQUIRE_ORACLE(o);
  // Every float from 2^-26 up to 2^-13: all f16 subnormals, their rounding and the step to normals.
  for (uint32_t u = bits(0x1p-26f); u <= bits(0x1p-13f); ++u) {
    const float v = from_bits(u);
    if (razor::f32_to_f16(v) != o.fp32_to_fp16(v)) FAIL() << std::hexfloat << v;
  }
}

TEST(ggml_fp16, float_to_half_random_bits_and_specials) {
  RAZOR_REQUIRE_ORACLE(o);
  std::mt19937 rng(7);
  for (int i = 0; i < 4000000; ++i) {
    const float v = from_bits(rng());
    if (std::isnan(v)) continue;  // NaN payloads are checked below
    ASSERT_EQ(razor::f32_to_f16(v), o.fp32_to_fp16(v)) << std::hexfloat << v;
  }
  for (float v : {0.0f, -0.0f, INFINITY, -INFINITY, 65504.0f, 65519.996f, 65520.0f, 1e30f, 0x1p-24f, 0x1p-25f,
                  0x1.000002p-25f})
    EXPECT_EQ(razor::f32_to_f16(v), o.fp32_to_fp16(v)) << std::hexfloat << v;
  for (uint32_t nan : {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7fa00000u, 0x7fffffffu})
    EXPECT_EQ(razor::f32_to_f16(from_bits(nan)), o.fp32_to_fp16(from_bits(nan))) << std::hex << nan;
}

TEST(ggml_fp16, float_to_bf16_random_bits) {
  RAZOR_REQUIRE_ORACLE(o);
  std::mt19937 rng(8);
  for (int i = 0; i < 4000000; ++i) {
    const float v = from_bits(rng());
    ASSERT_EQ(razor::f32_to_bf16(v), o.fp32_to_bf16(v)) << std::hexfloat << v;
  }
  for (uint32_t u = 0; u < (1u << 20); ++u) {  // subnormals and the smallest normals
    ASSERT_EQ(razor::f32_to_bf16(from_bits(u)), o.fp32_to_bf16(from_bits(u))) << std::hex << u;
  }
}

// Every float: about a minute on one core. Run with --gtest_also_run_disabled_tests.
TEST(ggml_fp16, DISABLED_float_to_half_exhaustive) {
  RAZOR_REQUIRE_ORACLE(o);
  uint64_t ndiff = 0;
  for (uint64_t u = 0; u <= 0xffffffffull; ++u) {
    const float v = from_bits(uint32_t(u));
    if (razor::f32_to_f16(v) != o.fp32_to_fp16(v)) ++ndiff;
  }
  EXPECT_EQ(ndiff, 0u);
}
