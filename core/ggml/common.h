// What the CPU quantizers (core/ggml) and the CUDA packer (kernels/ggml/) share, compiled by both the C++
// compiler and nvcc (util/hd.h), as ggml keeps ggml-common.h for C and CUDA: the block structs (blocks.h),
// ggml's constants and its scalar helpers. The CPU code is the ground truth; the kernels call these same
// functions, so there is one copy of each.
#pragma once
#include <stdint.h>

#include "ggml/blocks.h"
#include "util/half.h"
#include "util/hd.h"

namespace razor::ggml {

inline constexpr float k_group_eps = 1e-15f;        // ggml GROUP_MAX_EPS: a group below this is all zero
inline constexpr float k_group_eps_iq3 = 1e-8f;     // ggml GROUP_MAX_EPS_IQ3_XXS

// ggml's nearest_int: adds 1.5*2^23 so the float unit rounds to nearest even, then reads the integer
// back from the mantissa. Valid for |v| <= 2^22; we reproduce it bit for bit outside that range too.
RAZOR_HD int nearest_int(float v) {
  const float s = v + 12582912.f;
  return int(float_to_bits(s) & 0x007fffffu) - 0x00400000;
}

template <class T>
RAZOR_HD T max_of(T a, T b) { return a > b ? a : b; }  // ggml's MAX(a, b)
template <class T>
RAZOR_HD T min_of(T a, T b) { return a < b ? a : b; }  // ggml's MIN(a, b)
RAZOR_HD int clamp_int(int v, int lo, int hi) { return max_of(lo, min_of(hi, v)); }

RAZOR_HD float fp16_to_f32(half h) { return razor::f16_to_f32(h); }
RAZOR_HD half f32_to_fp16(float f) { return razor::f32_to_f16(f); }

// q4_K / q5_K: scale and min j (six bits each) into the 12 scale bytes (see blocks.h); the bytes start zeroed.
RAZOR_HD void pack_scale_min(uint8_t* s, int j, uint8_t ls, uint8_t lm) {
  if (j < 4) {
    s[j] = ls;
    s[j + 4] = lm;
  } else {
    s[j + 4] = uint8_t((ls & 0xf) | ((lm & 0xf) << 4));
    s[j - 4] |= uint8_t((ls >> 4) << 6);
    s[j] |= uint8_t((lm >> 4) << 6);
  }
}

// q3_K: six-bit scale j (0..15, stored + 32) into the 12 scale bytes (see blocks.h); the bytes start zeroed.
RAZOR_HD void pack_q3_scales(uint8_t* s, int j, int l) {
  if (j < 8)
    s[j] = uint8_t(l & 0xf);
  else
    s[j - 8] |= uint8_t((l & 0xf) << 4);
  l >>= 4;
  s[j % 4 + 8] |= uint8_t(l << (2 * (j / 4)));
}

// The 2-bit fields of 256 levels (q2_K and q3_K qs, q6_K qh): for each 128-half, byte l holds the fields of
// levels l, l+32, l+64, l+96 at shifts 0, 2, 4, 6. pack_2bit_byte is byte kq (0..63) of the 64; the field of
// a level is its value (plain), its bits 4..5 (q6_K's high bits) or q3_K's low two bits (the level minus 4
// when above 3).
enum class field2 { plain, q6_high, q3_low };
template <field2 F>
RAZOR_HD uint8_t field2_of(uint8_t v) {
  if constexpr (F == field2::q6_high) return uint8_t(v >> 4);
  else if constexpr (F == field2::q3_low) return uint8_t(int8_t(v) > 3 ? v - 4 : v);
  else return v;
}
template <field2 F = field2::plain>
RAZOR_HD uint8_t pack_2bit_byte(const uint8_t* L, int kq) {
  const uint8_t* Lp = L + (kq / 32) * 128;
  const int l = kq % 32;
  return uint8_t(field2_of<F>(Lp[l]) | (field2_of<F>(Lp[l + 32]) << 2) | (field2_of<F>(Lp[l + 64]) << 4) |
                 (field2_of<F>(Lp[l + 96]) << 6));
}

// Requantizing a sub-block of N against its stored scale d (the k-quants' last step): the level of x is
// nearest_int(x / d) clamped to [lo, hi] and stored minus lo (symmetric), or nearest_int((x + m) / d) clamped
// to [0, nmax] (affine, with the stored min m). ggml skips a sub-block whose d is 0: its levels stay.
template <int N, class T>
RAZOR_HD void requantize_symmetric(const float* x, float d, int lo, int hi, T* L) {
  if (d == 0.0f) return;
  RAZOR_UNROLL
  for (int i = 0; i < N; ++i) {
    const int l = nearest_int(x[i] / d);
    L[i] = T(max_of(lo, min_of(hi, l)) - lo);
  }
}
template <int N>
RAZOR_HD void requantize_affine(const float* x, float d, float m, int nmax, uint8_t* L) {
  if (d == 0.0f) return;
  RAZOR_UNROLL
  for (int i = 0; i < N; ++i) {
    const int l = nearest_int((x[i] + m) / d);
    L[i] = uint8_t(max_of(0, min_of(nmax, l)));
  }
}

}  // namespace razor::ggml
