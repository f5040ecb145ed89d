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
#include "ggml/grid_search.h"
#include "ggml/types.h"
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

// The grid quantizers' shared steps (iq2_*, iq3_*).

// The 8 sign bits of ksigns index i (0..127): i and its parity in bit 7 (ggml's ksigns_iq2xs).
inline uint8_t ksigns(int i) { return uint8_t(i | ((std::popcount(unsigned(i)) & 1) << 7)); }

// The best grid point for an off-grid group of N: smallest weighted squared distance sum_i w_i*(scale*q_i -
// xval_i)^2, the first of the code's candidates on ties, where q_i = value(level of coordinate i) (2l+1 for
// the iq2 / iq3 grids: ggml iq2_find_best_neighbour / iq3_find_best_neighbour; iq1's shifted values for
// iq1_find_best_neighbour2). The candidates' distances are computed side by side (vector lanes), each one
// with ggml's operations in ggml's order. Writes the point's levels to L; returns its grid index, or -1
// when no distance is below FLT_MAX (NaN or infinite inputs).
template <int N, class Value>
int best_grid_point_of(const grid_search& g, int code, const float* xval, const float* w, float scale, Value value,
                       int8_t* L) {
  constexpr int k_chunk = 512;  // longer than any list of ggml's grids (grid_search::max_candidates)
  const size_t b = size_t(g.cand_begin[size_t(code)]);
  const int nc = int(size_t(g.cand_begin[size_t(code) + 1]) - b);
  const int8_t* lt = g.cand_levels_t.data() + b * N;
  float best_d2 = 3.40282347e+38f;  // FLT_MAX
  int best = -1;
  float d2[k_chunk];
  for (int c0 = 0; c0 < nc; c0 += k_chunk) {
    const int c1 = min_of(nc, c0 + k_chunk);
    for (int c = c0; c < c1; ++c) d2[c - c0] = 0.0f;
    for (int i = 0; i < N; ++i) {
      const float xi = xval[i], wi = w[i];
      const int8_t* li = lt + i * nc;
      for (int c = c0; c < c1; ++c) {
        const float diff = scale * value(li[c]) - xi;
        d2[c - c0] += wi * diff * diff;
      }
    }
    for (int c = c0; c < c1; ++c) {
      if (d2[c - c0] < best_d2) {
        best_d2 = d2[c - c0];
        best = c;
      }
    }
  }
  if (best < 0) return -1;
  const int k = g.candidates[b + size_t(best)];
  for (int i = 0; i < N; ++i) L[i] = g.levels[size_t(k) * N + size_t(i)];
  return k;
}

// The iq2 / iq3 form: q = 2l+1 (ggml's stored grid points). Where no distance is finite (NaN input; ggml
// asserts) the first candidate is taken.
template <int N>
int best_grid_point(const grid_search& g, int code, const float* xval, const float* w, float scale, int8_t* L) {
  const int k = best_grid_point_of<N>(g, code, xval, w, scale, [](int8_t l) { return float(2 * l + 1); }, L);
  if (k >= 0) return k;
  const int first = g.candidates[size_t(g.cand_begin[size_t(code)])];
  for (int i = 0; i < N; ++i) L[i] = g.levels[size_t(first) * N + size_t(i)];
  return first;
}

// Row functions, declared from the type table (types.h names them). `x` is one row of n elements (n a
// multiple of the block size), `qw` its importance weights or null; each writes n / block_size blocks.
// The k-quants' `quantize` functions use the lane forms; their `reference` functions (..._scalar) are the
// scalar ground truth (one sub-block at a time).
#define RAZOR_X(ident, name, id, block, elems, weights, imatrix, fallback, ftype, gpu, q, dq, ref) \
  void q(const float* x, void* y, int64_t n, const float* qw);                                   \
  void ref(const float* x, void* y, int64_t n, const float* qw);                                 \
  void dq(const void* x, float* y, int64_t n);
RAZOR_GGML_TYPES(RAZOR_X)
#undef RAZOR_X

}  // namespace razor::ggml::detail
