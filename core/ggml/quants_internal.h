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
#include <optional>

#include "ggml/blocks.h"
#include "ggml/common.h"
#include "ggml/grid_search.h"
#include "ggml/quant_search.h"
#include "ggml/types.h"
#include "util/numeric.h"

namespace razor::ggml::detail {

// nearest_int, max_of / min_of / clamp_int, fp16_to_f32 / f32_to_fp16 and the group epsilons are in
// ggml/common.h; the scalar scale searches (fit_symmetric, fit_symmetric_descent, fit_affine, fit_positive)
// in ggml/quant_search.h. Both are shared with the CUDA packer (kernels/ggml/).

// Lane-parallel forms (quant_search_lanes.cpp): several independent groups at once, bit-identical to
// calling the scalar function on each. Group g is x[g*n .. g*n+n) (n <= 32); results per group.
// fit_affine_x8: 8 groups of fit_affine<n, v3>; nstep >= 1.
void fit_affine_x8(int n, int nmax, const float* x, const float* w, uint8_t* L, float* mins, float* scales,
                   float rmin, float rdelta, int nstep, bool mad, bool v3);
// fit_symmetric_x16: 16 groups of fit_symmetric; w may be null (x*x).
void fit_symmetric_x16(int n, int nmax, const float* x, const float* w, int8_t* L, float* scales);
// Tests: run the lane forms on the baseline ISA even where AVX2 is available (both must match).
void force_baseline_lanes(bool on);

// The grid quantizers' shared steps (iq2_*, iq3_*).

// The 8 sign bits of ksigns index i (0..127): i and its parity in bit 7 (ggml's ksigns_iq2xs).
inline uint8_t ksigns(int i) { return uint8_t(i | ((std::popcount(unsigned(i)) & 1) << 7)); }

// Importance weights of n elements: qw * sqrt(sigma2 + x^2), or x^2 without an imatrix (qb null).
// The super-block scale of the grid quantizers (iq2_*, iq3_*): d = max_scale / 31, stored as fp16(d * stored)
// (ggml's per-type correction, 1 where there is none; d * 1 is exactly d), and 1/d for the sub-block scale
// codes. False, writing nothing, when every sub-block scale is zero.
inline bool grid_superblock_scale(float max_scale, float stored, half* d_out, float* id_out) {
  if (max_scale == 0.0f) return false;
  const float d = max_scale / 31.0f;
  *d_out = f32_to_fp16(d * stored);
  *id_out = 1.0f / d;
  return true;
}

// ggml's sigma2 for the importance weights of a super-block: factor * (sum of x*x over its qk_k elements) / qk_k
// (factor 1 for iq2_xxs / iq2_xs, 2 for the others; 1 * s is exactly s).
inline float superblock_sigma2(const float* xbl, float factor) {
  float sumx2 = 0.0f;
  for (int i = 0; i < qk_k; ++i) sumx2 += xbl[i] * xbl[i];
  return factor * sumx2 / float(qk_k);
}

// The largest of v[0..n) (ggml's `max = xval[0]; for ... MAX(max, xval[i])`).
inline float max_value(const float* v, int n) {
  float max = v[0];
  for (int i = 1; i < n; ++i) max = max_of(max, v[i]);
  return max;
}

inline void imatrix_weights(int n, const float* xb, const float* qb, float sigma2, float* weight) {
  if (qb) {
    for (int i = 0; i < n; ++i) weight[i] = qb[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
  } else {
    for (int i = 0; i < n; ++i) weight[i] = xb[i] * xb[i];
  }
}

// Magnitudes and sign byte of a group of 8 whose signs are stored freely (iq2_s, iq3_s).
inline uint8_t free_signs(const float* xb, float* xval) {
  uint8_t s = 0;
  for (int i = 0; i < 8; ++i) {
    if (xb[i] >= 0) {
      xval[i] = xb[i];
    } else {
      xval[i] = -xb[i];
      s = uint8_t(s | (1u << i));
    }
  }
  return s;
}

// Magnitudes and signs of a group of 8 whose sign pattern must have even parity (iq2_xxs, iq2_xs,
// iq3_xxs): an odd count of negatives flips the element of least weight*x^2. Returns the 7-bit ksigns
// index.
inline uint8_t even_signs(const float* xb, const float* weight, float* xval) {
  const uint8_t s = free_signs(xb, xval);
  if (std::popcount(unsigned(s)) % 2 == 0) return s & 127;
  int imin = 0;
  float min = weight[0] * xb[0] * xb[0];
  for (int i = 1; i < 8; ++i) {
    const float ax = weight[i] * xb[i] * xb[i];
    if (ax < min) {
      min = ax;
      imin = i;
    }
  }
  xval[imin] = -xval[imin];
  return uint8_t(s ^ (1u << imin)) & 127;
}

// The importance weights of a group of n (imatrix_weights) and their square roots, by which the grid
// quantizers' nearest-point search weighs.
inline void group_weights(int n, const float* xb, const float* qb, float sigma2, float* weight, float* waux) {
  imatrix_weights(n, xb, qb, sigma2, weight);
  for (int i = 0; i < n; ++i) waux[i] = std::sqrt(weight[i]);
}

// The magnitudes of a group of n (xval) with a sign byte per 8 (even_signs when `even`, else free_signs) and
// the largest magnitude (returned).
inline float group_magnitudes(int n, const float* xb, const float* weight, bool even, float* xval, uint8_t* signs) {
  for (int k = 0; k < n / 8; ++k)
    signs[k] = even ? even_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k) : free_signs(xb + 8 * k, xval + 8 * k);
  return max_value(xval, n);
}

// The levels of a group of N at inverse scale id: nearest_int(0.5*(id*x - 1)) clamped to 0..MaxL.
template <int N, int MaxL>
inline void round_group(const float* xval, float id, int8_t* L) {
  for (int i = 0; i < N; ++i) {
    const int l = nearest_int(0.5f * (id * xval[i] - 1.0f));
    L[i] = int8_t(max_of(0, min_of(MaxL, l)));
  }
}

// sum w*x*q and sum w*q*q over n elements, q = 2L+1 (the fit of a scale to the levels).
inline void fit_sums(int n, const float* weight, const float* xval, const int8_t* L, float* sumqx, float* sumq2) {
  float sx = 0.0f, s2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float w = weight[i];
    const float q = float(2 * L[i] + 1);
    sx += w * xval[i] * q;
    s2 += w * q * q;
  }
  *sumqx = sx;
  *sumq2 = s2;
}

// The code of a sub-block scale against the super-block scale 1/id: nearest_int(0.5*(id*s - 1)) clamped
// to 0..max_code (15 for the iq2 / iq3 types, 7 for iq1).
inline int scale_code(float id, float scale, int max_code = 15) {
  return max_of(0, min_of(max_code, nearest_int(0.5f * (id * scale - 1.0f))));
}

// The 4-bit sub-block scale codes of n sub-blocks against the super-block scale 1/id, two a byte (the
// even sub-block in the low nibble).
inline void scale_nibbles(float id, const float* scales, int n, uint8_t* out) {
  for (int ib = 0; ib < n; ib += 2) out[ib / 2] = uint8_t(scale_code(id, scales[ib]) | (scale_code(id, scales[ib + 1]) << 4));
}

// Sub-block scale code i of those packed by scale_nibbles.
inline int scale_nibble(const uint8_t* packed, int i) { return (packed[i / 2] >> (4 * (i % 2))) & 0xf; }

// One group of 8 of a grid type (iq2_*, iq3_*) as its dequantizer reads it: the sub-block scale, the 8 stored
// magnitudes (the grid bytes of one 8-coordinate point, iq2, or of two 4-coordinate points, iq3) and the
// sign byte (bit j: element j is negative).
struct grid_group {
  float db;
  const uint8_t* lo;  // magnitudes of elements 0..3
  const uint8_t* hi;  // and of 4..7
  uint8_t signs;
};

// The dequantization of every grid type: element j of a group is db * magnitude j, negated where its sign
// bit is set; group(block, d, k) decodes group k (0 .. qk_k/8 - 1) of a block whose super-block scale is d.
template <class Block, class Group>
void dequantize_grid_row(const void* vx, float* y, int64_t n, Group group) {
  const auto* x = static_cast<const Block*>(vx);
  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float d = fp16_to_f32(x[b].d);
    for (int k = 0; k < qk_k / 8; ++k, y += 8) {
      const grid_group q = group(x[b], d, k);
      for (int j = 0; j < 4; ++j) {
        y[j] = q.db * float(q.lo[j]) * ((q.signs & (1u << j)) ? -1.0f : 1.0f);
        y[j + 4] = q.db * float(q.hi[j]) * ((q.signs & (1u << (j + 4))) ? -1.0f : 1.0f);
      }
    }
  }
}

// The super-block loop every grid quantizer (iq2_*, iq3_*) runs, sub-blocks of SB. Per sub-block: its
// importance weights (weights(xb, qb, sigma2, weight), qb null without an imatrix) and their square roots;
// the magnitudes and a sign byte per 8 (group_magnitudes); the levels cleared; then, unless the largest
// magnitude is below eps (ggml's `max == 0` tests are eps = the smallest subnormal), the scale search
// fit(max, xval, weight, waux, L) (the scale with on-grid levels in L, or nullopt for a sub-block it finds
// empty); a negative scale made positive with every sign flipped, as ggml keeps it though the magnitudes
// are non-negative; and store(block, ib, slot, L, signs) for the slot-th non-empty sub-block. Then the
// super-block scale (grid_superblock_scale) and finish(block, id, scales), or, when every scale is 0,
// the grid indices zeroed where ggml does so (clear_if_empty).
struct grid_row_type {
  float sigma2_factor;  // superblock_sigma2's factor
  bool even;            // sign patterns of even parity (ksigns) or a free byte
  float eps;
  float stored;         // the super-block scale's correction
  bool clear_if_empty;
};

template <int SB, class Block, class Weights, class Fit, class Store, class Finish>
void grid_row(const grid_row_type& t, const float* x, Block* y, int64_t n, const float* qw, Weights weights, Fit fit,
              Store store, Finish finish) {
  float scales[qk_k / SB], weight[SB], xval[SB], waux[SB];
  int8_t L[SB];
  uint8_t signs[SB / 8];
  for (int64_t b = 0; b < n / qk_k; ++b) {
    std::memset(&y[b], 0, sizeof y[b]);
    y[b].d = f32_to_fp16(0.0f);
    const float* xbl = x + qk_k * b;
    const float sigma2 = superblock_sigma2(xbl, t.sigma2_factor);
    float max_scale = 0.0f;
    int slot = 0;
    for (int ib = 0; ib < qk_k / SB; ++ib) {
      const float* xb = xbl + SB * ib;
      weights(xb, qw ? qw + qk_k * b + SB * ib : nullptr, sigma2, weight);
      for (int i = 0; i < SB; ++i) waux[i] = std::sqrt(weight[i]);
      const float max = group_magnitudes(SB, xb, weight, t.even, xval, signs);
      std::memset(L, 0, sizeof L);
      scales[ib] = 0.0f;
      if (max < t.eps) continue;
      const std::optional<float> fitted = fit(max, xval, weight, waux, L);
      if (!fitted) continue;
      float scale = *fitted;
      if (scale < 0.0f) {
        scale = -scale;
        for (int k = 0; k < SB / 8; ++k) signs[k] = uint8_t(~signs[k] & (t.even ? 127 : 255));
      }
      store(y[b], ib, slot++, L, signs);
      scales[ib] = scale;
      max_scale = max_of(max_scale, scale);
    }
    float id;
    if (!grid_superblock_scale(max_scale, t.stored, &y[b].d, &id)) {
      if (t.clear_if_empty) std::memset(y[b].qs, 0, sizeof y[b].qs);
      continue;
    }
    finish(y[b], id, scales);
  }
}

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

// One sub-block's scale search of the grid quantizers (ggml's quantize_row_iq{2,3}_*_impl). Trial inverse
// scales id = (2*MaxQ-1 + step*t.step) / t.denom, step in [-t.nsteps, t.nsteps]: every group of N rounded
// to levels 0..MaxQ-1 and, off the grid, replaced by its best nearby point at that trial scale; the best
// weighted fit wins (the first on ties; t.scale0 when none fits). Then the groups that were off the grid in
// that fit (every group with t.replace_all; even when none was off, with t.always) are re-placed at its
// scale and the scale is refit. xval, weight: the NG*N magnitudes and weights; waux: sqrt(weight). L: on
// input the levels kept when no trial fits, on return on-grid levels. Returns the scale.
struct grid_trials {
  int nsteps;
  float step;
  float denom;
  float scale0;
  bool on_grid_init;  // whether groups count as on the grid when no trial fits
  bool replace_all;
  bool always;
};

// The last step of fit_grid_scale, after the trials chose `scale` and the levels L: the groups off the grid
// in that fit (every group with t.replace_all; even when none was off, with t.always) re-placed at the
// chosen scale, then the scale refit to them. Returns the scale.
template <int N, int NG, int MaxQ>
float replace_off_grid(const grid_search& g, const float* xval, const float* weight, const float* waux,
                       const grid_trials& t, const bool* on_grid, float scale, int8_t* L) {
  constexpr int n = N * NG;
  int off_grid = 0;
  for (int k = 0; k < NG; ++k) off_grid += on_grid[k] ? 0 : 1;
  if ((off_grid > 0 || t.always) && scale > 0.0f) {
    const float id = 1.0f / scale;
    for (int k = 0; k < NG; ++k) {
      if (on_grid[k] && !t.replace_all) continue;
      int8_t lv[N];
      round_group<N, MaxQ - 1>(xval + N * k, id, lv);
      const int code = g.code_of(lv);
      int point = g.code_to_point[size_t(code)];
      if (point < 0) point = best_grid_point<N>(g, code, xval + N * k, waux + N * k, scale, L + N * k);
      for (int i = 0; i < N; ++i) L[N * k + i] = g.levels[size_t(point) * N + size_t(i)];
    }
    float sumqx, sumq2;
    fit_sums(n, weight, xval, L, &sumqx, &sumq2);
    if (sumq2 > 0.0f) scale = sumqx / sumq2;
  }
  return scale;
}

template <int N, int NG, int MaxQ>
float fit_grid_scale(const grid_search& g, const float* xval, const float* weight, const float* waux,
                     const grid_trials& t, int8_t* L) {
  constexpr int n = N * NG;
  int8_t Laux[n];
  bool on_grid[NG], on_grid_aux[NG];
  float best = 0.0f;
  float scale = t.scale0;
  for (int k = 0; k < NG; ++k) on_grid[k] = t.on_grid_init;
  for (int step = -t.nsteps; step <= t.nsteps; ++step) {
    const float id = (float(2 * MaxQ - 1) + float(step) * t.step) / t.denom;
    const float this_scale = 1.0f / id;
    for (int k = 0; k < NG; ++k) {
      round_group<N, MaxQ - 1>(xval + N * k, id, Laux + N * k);
      const int code = g.code_of(Laux + N * k);
      on_grid_aux[k] = g.code_to_point[size_t(code)] >= 0;
      if (!on_grid_aux[k]) best_grid_point<N>(g, code, xval + N * k, waux + N * k, this_scale, Laux + N * k);
    }
    float sumqx, sumq2;
    fit_sums(n, weight, xval, Laux, &sumqx, &sumq2);
    if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
      scale = sumqx / sumq2;
      best = scale * sumqx;
      std::memcpy(L, Laux, n);
      std::memcpy(on_grid, on_grid_aux, sizeof on_grid);
    }
  }
  return replace_off_grid<N, NG, MaxQ>(g, xval, weight, waux, t, on_grid, scale, L);
}

// The candidate lists of a grid_search with 4 coordinates whose every code is in range (the iq3 grids),
// for the lane form of the scale search. Every code has a list: its candidates in search order, or for a
// code on the grid its own point alone, so that the search takes the same steps for every group. An entry
// names a point by its levels, byte i = 8*i + l_i (the index of (coordinate, level) in the search's
// table of per-coordinate distance terms).
struct grid_lists {
  std::vector<int32_t> begin;     // per code (+1): its list is entries[begin[code] .. begin[code+1])
  std::vector<uint32_t> entries;
};

inline grid_lists build_grid_lists(const grid_search& g) {
  grid_lists r;
  const size_t ncodes = g.code_to_point.size();
  auto entry = [&](int point) {
    uint32_t e = 0;
    for (int i = 0; i < 4; ++i) e |= uint32_t(8 * i + g.levels[size_t(point) * 4 + size_t(i)]) << (8 * i);
    return e;
  };
  r.begin.reserve(ncodes + 1);
  for (size_t code = 0; code < ncodes; ++code) {
    r.begin.push_back(int32_t(r.entries.size()));
    if (g.code_to_point[code] >= 0) r.entries.push_back(entry(g.code_to_point[code]));
    for (int c = g.cand_begin[code]; c < g.cand_begin[code + 1]; ++c) r.entries.push_back(entry(g.candidates[size_t(c)]));
  }
  r.begin.push_back(int32_t(r.entries.size()));
  return r;
}

// fit_grid_scale<4, 8, 8> (the iq3 grids: 8 groups of 4, levels 0..7, at most 16 steps either side) with
// the trial scales side by side in vector lanes (quant_search_lanes.cpp); bit-identical to it.
float fit_grid_scale_lanes(const grid_search& g, const grid_lists& lists, const float* xval, const float* weight,
                           const float* waux, const grid_trials& t, int8_t* L);

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
