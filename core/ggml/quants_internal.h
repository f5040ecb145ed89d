// Internal to razor_ggml: the shared scalar helpers of the quantizers and the per-type row functions.
// Include this first in every quantizer source: it turns off floating-point contraction, because an
// FMA changes rounding and ggml's reference code is compiled without one.
#pragma once
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "ggml/blocks.h"
#include "util/numeric.h"

namespace razor::ggml::detail {

// ggml's nearest_int: adds 1.5*2^23 so the float unit rounds to nearest even, then reads the integer
// back from the mantissa. Valid for |v| <= 2^22; we reproduce it bit for bit outside that range too.
inline int nearest_int(float v) {
  const float s = v + 12582912.f;
  const int32_t i = std::bit_cast<int32_t>(s);
  return (i & 0x007fffff) - 0x00400000;
}

inline float fp16_to_f32(half h) { return razor::f16_to_f32(h); }
inline half f32_to_fp16(float f) { return razor::f32_to_f16(f); }

template <class T>
inline T max_of(T a, T b) { return a > b ? a : b; }  // ggml's MAX(a, b)
template <class T>
inline T min_of(T a, T b) { return a < b ? a : b; }  // ggml's MIN(a, b)

inline constexpr float k_group_eps = 1e-15f;  // ggml GROUP_MAX_EPS: a group below this is all zero

// Scale searches shared by the k-quants (quant_search.cpp). Each mirrors one of ggml's helpers
// operation for operation; the comment names it.

// Symmetric levels q in [-nmax, nmax-1], weights w (null: x*x), scale refined over 18 trial inverse
// scales (make_qx_quants, rmse_type 1). L[i] = q + nmax. Returns the scale.
float fit_symmetric(int n, int nmax, const float* x, const float* w, int8_t* L);
// Symmetric levels with the x*x-weighted coordinate-descent refinement (make_q3_quants, do_rmse).
float fit_symmetric_descent(int n, int nmax, const float* x, int8_t* L);
// Affine levels q in [0, nmax] with a non-positive offset: x ~ scale*q - the_min. First trial from the
// range, then nstep+1 trial scales; `mad` selects weighted |error| instead of squared error
// (make_qkx2_quants). Returns the scale, writes the_min (>= 0).
float fit_affine_v2(int n, int nmax, const float* x, const float* w, uint8_t* L, float* the_min,
                    float rmin, float rdelta, int nstep, bool mad);
// As fit_affine_v2 with the guarded level computation of make_qkx3_quants (w must not be null).
float fit_affine_v3(int n, int nmax, const float* x, const float* w, uint8_t* L, float* the_min,
                    float rmin, float rdelta, int nstep);
// Non-negative levels q in [0, nmax] for non-negative x (the super-block scales / mins), weights w
// (make_qp_quants). Returns the scale.
float fit_positive(int n, int nmax, const float* x, uint8_t* L, const float* w);

// Lane-parallel forms (quant_search_lanes.cpp): several independent groups at once, bit-identical to
// calling the scalar function on each. Group g is x[g*n .. g*n+n) (n <= 32); results per group.
// fit_affine_x8: 8 groups of fit_affine_v2 (v3 false) or fit_affine_v3 (v3 true); nstep >= 1.
void fit_affine_x8(int n, int nmax, const float* x, const float* w, uint8_t* L, float* mins, float* scales,
                   float rmin, float rdelta, int nstep, bool mad, bool v3);
// fit_symmetric_x16: 16 groups of fit_symmetric; w may be null (x*x).
void fit_symmetric_x16(int n, int nmax, const float* x, const float* w, int8_t* L, float* scales);
// Tests: run the lane forms on the baseline ISA even where AVX2 is available (both must match).
void force_baseline_lanes(bool on);

// Row functions. `x` is one row of n elements (n a multiple of the block size), `qw` its importance
// weights or null; each writes n / block_size blocks.
void quantize_row_q8_0(const float* x, void* y, int64_t n, const float* qw);
void quantize_row_q4_0(const float* x, void* y, int64_t n, const float* qw);
void quantize_row_iq4_nl(const float* x, void* y, int64_t n, const float* qw);
void quantize_row_iq4_xs(const float* x, void* y, int64_t n, const float* qw);
void quantize_row_q2_k(const float* x, void* y, int64_t n, const float* qw);
void quantize_row_q3_k(const float* x, void* y, int64_t n, const float* qw);
void quantize_row_q4_k(const float* x, void* y, int64_t n, const float* qw);
void quantize_row_q5_k(const float* x, void* y, int64_t n, const float* qw);
void quantize_row_q6_k(const float* x, void* y, int64_t n, const float* qw);
void quantize_row_iq3_xxs(const float* x, void* y, int64_t n, const float* qw);
// The k-quants' scalar ground truth (one sub-block at a time); the functions above use the lane forms.
void quantize_row_q2_k_scalar(const float* x, void* y, int64_t n, const float* qw);
void quantize_row_q3_k_scalar(const float* x, void* y, int64_t n, const float* qw);
void quantize_row_q4_k_scalar(const float* x, void* y, int64_t n, const float* qw);
void quantize_row_q5_k_scalar(const float* x, void* y, int64_t n, const float* qw);
void quantize_row_q6_k_scalar(const float* x, void* y, int64_t n, const float* qw);

void dequantize_row_q8_0(const void* x, float* y, int64_t n);
void dequantize_row_q4_0(const void* x, float* y, int64_t n);
void dequantize_row_iq4_nl(const void* x, float* y, int64_t n);
void dequantize_row_iq4_xs(const void* x, float* y, int64_t n);
void dequantize_row_q2_k(const void* x, float* y, int64_t n);
void dequantize_row_q3_k(const void* x, float* y, int64_t n);
void dequantize_row_q4_k(const void* x, float* y, int64_t n);
void dequantize_row_q5_k(const void* x, float* y, int64_t n);
void dequantize_row_q6_k(const void* x, float* y, int64_t n);
void dequantize_row_iq3_xxs(const void* x, float* y, int64_t n);

}  // namespace razor::ggml::detail
