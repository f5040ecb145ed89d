// The k-quants' scale searches, one copy for the CPU quantizers (the ground truth) and the CUDA packer
// (kernels/ggml/k_quants.cu calls them on register arrays). Each performs the float32 operations of the ggml
// helper it names in the same order (products left to right, as C evaluates `w*x*l`), which is what makes
// our bytes equal ggml's; the CPU side is compiled without FMA contraction (quants_internal.h) and the
// kernels with --fmad=false, so both round alike. N (the group length: 8, 16 or 32) is a template argument
// so that nvcc unrolls the loops and keeps the arrays in registers.
#pragma once
#if !defined(__CUDACC__)
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#endif
#include <math.h>
#include <stdint.h>

#include "ggml/common.h"

namespace razor::ggml {

// The largest magnitude of x[0..N) (returned) and the element that has it, sign kept (*max; the first on ties).
template <int N>
RAZOR_HD float signed_abs_max(const float* x, float* max) {
  float amax = 0.0f;
  *max = 0.0f;
  RAZOR_UNROLL
  for (int i = 0; i < N; ++i) {
    const float ax = fabsf(x[i]);
    if (ax > amax) {
      amax = ax;
      *max = x[i];
    }
  }
  return amax;
}

template <int N, class T>
RAZOR_HD void zero_levels(T* L) {
  RAZOR_UNROLL
  for (int i = 0; i < N; ++i) L[i] = 0;
}

// Symmetric levels q in [-nmax, nmax-1], weights w (null: x*x), scale refined over 18 trial inverse scales
// (make_qx_quants, rmse_type 1). L[i] = q + nmax. Returns the scale.
template <int N>
RAZOR_HD float fit_symmetric(int nmax, const float* x, const float* w, int8_t* L) {
  float max = 0.0f;
  if (signed_abs_max<N>(x, &max) < k_group_eps) {
    zero_levels<N>(L);
    return 0.0f;
  }
  float iscale = float(-nmax) / max;
  float sumlx = 0.0f, suml2 = 0.0f;
  RAZOR_UNROLL
  for (int i = 0; i < N; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = int8_t(l + nmax);
    const float wi = w ? w[i] : x[i] * x[i];
    sumlx += wi * x[i] * float(l);
    suml2 += wi * float(l) * float(l);
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  int8_t trial[N];
  RAZOR_NO_UNROLL
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    iscale = -(float(nmax) + 0.1f * float(step)) / max;
    sumlx = suml2 = 0.0f;
    RAZOR_UNROLL
    for (int i = 0; i < N; ++i) {
      const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      trial[i] = int8_t(l);
      const float wi = w ? w[i] : x[i] * x[i];
      sumlx += wi * x[i] * float(l);
      suml2 += wi * float(l) * float(l);
    }
    if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
      RAZOR_UNROLL
      for (int i = 0; i < N; ++i) L[i] = int8_t(trial[i] + nmax);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Symmetric levels with the x*x-weighted coordinate-descent refinement (make_q3_quants, do_rmse).
template <int N>
RAZOR_HD float fit_symmetric_descent(int nmax, const float* x, int8_t* L) {
  float max = 0.0f;
  if (signed_abs_max<N>(x, &max) < k_group_eps) {
    zero_levels<N>(L);
    return 0.0f;
  }
  const float iscale = float(-nmax) / max;
  float sumlx = 0.0f, suml2 = 0.0f;
  RAZOR_UNROLL
  for (int i = 0; i < N; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  RAZOR_NO_UNROLL
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    RAZOR_UNROLL
    for (int i = 0; i < N; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * float(L[i]);
      if (slx > 0.0f) {
        float sl2 = suml2 - w * float(L[i]) * float(L[i]);
        const int nl = clamp_int(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (nl != L[i]) {
          slx += w * x[i] * float(nl);
          sl2 += w * float(nl) * float(nl);
          if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = int8_t(nl);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  RAZOR_UNROLL
  for (int i = 0; i < N; ++i) L[i] = int8_t(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Affine levels q in [0, nmax] with a non-positive offset: x ~ scale*q - the_min. First trial from the range,
// then nstep+1 trial scales. V3 false: make_qkx2_quants, where `mad` selects weighted |error| instead of
// squared error; V3 true: make_qkx3_quants (the guarded level computation; `mad` unused). w must not be
// null. Returns the scale, writes the_min (>= 0).
template <int N, bool V3>
RAZOR_HD float fit_affine(int nmax, const float* x, const float* w, uint8_t* L, float* the_min, float rmin,
                          float rdelta, int nstep, bool mad) {
  float min = x[0], max = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  RAZOR_UNROLL
  for (int i = 1; i < N; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0.0f) min = 0.0f;
  if (V3 ? (max <= min) : (max == min)) {
    zero_levels<N>(L);
    *the_min = -min;
    return 0.0f;
  }
  float iscale = float(nmax) / (max - min);
  float scale = 1.0f / iscale;
  float best_error = 0.0f;
  RAZOR_UNROLL
  for (int i = 0; i < N; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = uint8_t(clamp_int(l, 0, nmax));
    const float diff = scale * float(L[i]) + min - x[i];
    const float e = (!V3 && mad) ? fabsf(diff) : diff * diff;
    best_error += w[i] * e;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  uint8_t trial[N];
  RAZOR_NO_UNROLL
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * float(step) + float(nmax)) / (max - min);
    float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
    RAZOR_UNROLL
    for (int i = 0; i < N; ++i) {
      int l;
      if (V3) {
        // min is the best offset so far and may sit at or near max: v can be inf or nan
        const float v = iscale * (x[i] - min);
        l = v > 0.0f ? nearest_int(min_of(v, float(nmax))) : 0;
      } else {
        l = clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax);
      }
      trial[i] = uint8_t(l);
      const float wl = w[i] * float(l);
      sum_l += wl;
      sum_l2 += wl * float(l);
      sum_xl += wl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0.0f) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0.0f) {
        this_min = 0.0f;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0.0f;
      RAZOR_UNROLL
      for (int i = 0; i < N; ++i) {
        const float diff = this_scale * float(trial[i]) + this_min - x[i];
        const float e = (!V3 && mad) ? fabsf(diff) : diff * diff;
        cur_error += w[i] * e;
      }
      if (cur_error < best_error) {
        RAZOR_UNROLL
        for (int i = 0; i < N; ++i) L[i] = trial[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Non-negative levels q in [0, nmax] for non-negative x (the super-block scales / mins), weights w
// (make_qp_quants). Returns the scale.
template <int N>
RAZOR_HD float fit_positive(int nmax, const float* x, uint8_t* L, const float* w) {
  float max = 0.0f;
  RAZOR_UNROLL
  for (int i = 0; i < N; ++i) max = max_of(max, x[i]);
  if (max < k_group_eps) {
    zero_levels<N>(L);
    return 0.0f;
  }
  float iscale = float(nmax) / max;
  RAZOR_UNROLL
  for (int i = 0; i < N; ++i) L[i] = uint8_t(nearest_int(iscale * x[i]));
  const float scale = 1.0f / iscale;
  float best_mse = 0.0f;
  RAZOR_UNROLL
  for (int i = 0; i < N; ++i) {
    const float diff = x[i] - scale * float(L[i]);
    best_mse += w[i] * diff * diff;
  }
  RAZOR_NO_UNROLL
  for (int step = -4; step <= 4; ++step) {
    if (step == 0) continue;
    const float iscale_t = (0.1f * float(step) + float(nmax)) / max;
    const float scale_t = 1.0f / iscale_t;
    float mse = 0.0f;
    RAZOR_UNROLL
    for (int i = 0; i < N; ++i) {
      const int l = min_of(nmax, nearest_int(iscale_t * x[i]));
      const float diff = x[i] - scale_t * float(l);
      mse += w[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_t;
    }
  }
  float sumlx = 0.0f, suml2 = 0.0f;
  RAZOR_UNROLL
  for (int i = 0; i < N; ++i) {
    const int l = min_of(nmax, nearest_int(iscale * x[i]));
    L[i] = uint8_t(l);
    sumlx += w[i] * x[i] * float(l);
    suml2 += w[i] * float(l) * float(l);
  }
  RAZOR_NO_UNROLL
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    RAZOR_UNROLL
    for (int i = 0; i < N; ++i) {
      float slx = sumlx - w[i] * x[i] * float(L[i]);
      float sl2 = suml2 - w[i] * float(L[i]) * float(L[i]);
      if (slx > 0.0f && sl2 > 0.0f) {
        const int nl = min_of(nmax, nearest_int(x[i] * sl2 / slx));
        if (nl != L[i]) {
          slx += w[i] * x[i] * float(nl);
          sl2 += w[i] * float(nl) * float(nl);
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = uint8_t(nl);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

}  // namespace razor::ggml
