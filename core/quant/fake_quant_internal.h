// Private to the seed's fake-quant (fake_quant_ref.cpp, fake_quant.cpp): the scalar reference's per-group
// operations, which the fast path calls for its tails and its ternary / single-ratio cases. Both files are
// compiled with -ffp-contract=off (CMakeLists.txt): every float32 operation here is one IEEE operation.
#pragma once
#include <cfenv>
#include <cmath>
#include <cstddef>

#include "quant/fake_quant.h"

namespace razor::quant::fq_detail {

// lane16 fold of 16 partial sums (the tree of fake_quant.h)
inline float fold16(const float* l) {
  float t[8], u[4], v[2];
  for (int i = 0; i < 8; ++i) t[i] = l[i] + l[i + 8];
  for (int i = 0; i < 4; ++i) u[i] = t[i] + t[i + 4];
  for (int i = 0; i < 2; ++i) v[i] = u[i] + u[i + 2];
  return v[0] + v[1];
}

// max|w| propagating NaN (torch.amax)
inline float amax_ref(const float* w, size_t n) {
  float m = 0.0f;
  bool nan = false;
  for (size_t i = 0; i < n; ++i) {
    const float a = std::fabs(w[i]);
    if (a != a) nan = true;
    else if (a > m) m = a;
  }
  return nan ? std::numeric_limits<float>::quiet_NaN() : m;
}

// clamp(x, lo, hi) as torch.clamp: NaN stays NaN
inline float clamp_ref(float r, float lo, float hi) {
  r = r < lo ? lo : r;
  return r > hi ? hi : r;
}

inline float scale_of(float ratio, float amax, float qmax) {
  const float s = (ratio * amax) / qmax;
  return s > 0.0f ? s : 1.0f;  // torch.where(scale > 0, scale, 1): NaN -> 1 as well
}

inline float q_int_ref(float w, float s, float qmax) {
  return clamp_ref(std::nearbyint(w / s), -qmax, qmax) * s;
}

inline float sign_ref(float w) { return float(w > 0.0f) - float(w < 0.0f); }  // sign(+-0) = +0

inline int group_int_ref(const float* w, float* q, size_t n, const fq_plan& pl, float* err_out) {
  const float amax = amax_ref(w, n);
  const float qmax = pl.qmax;
  int best = 0;
  float best_err = 0.0f;
  // absmax (one candidate) needs no error unless the caller asks for it
  const int n_eval = (pl.n_ratios > 1 || err_out) ? pl.n_ratios : 0;
  for (int c = 0; c < n_eval; ++c) {
    const float s = scale_of(pl.ratios[size_t(c)], amax, qmax);
    float lanes[16] = {};
    for (size_t i = 0; i < n; ++i) {
      const float d = q_int_ref(w[i], s, qmax) - w[i];
      lanes[i & 15] += d * d;
    }
    const float e = fold16(lanes);
    if (c == 0 || e < best_err) {
      best = c;
      best_err = e;
    }
  }
  const float s = scale_of(pl.ratios[size_t(best)], amax, qmax);
  for (size_t i = 0; i < n; ++i) q[i] = q_int_ref(w[i], s, qmax);
  if (err_out) *err_out = best_err;
  return best;
}

inline float group_ternary_ref(const float* w, float* q, size_t n) {
  float lanes[16] = {};
  for (size_t i = 0; i < n; ++i) lanes[i & 15] += std::fabs(w[i]);
  const float mean = fold16(lanes) / float(n);
  const float thr = 0.75f * mean;
  float kl[16] = {};
  uint64_t cnt = 0;
  for (size_t i = 0; i < n; ++i) {
    const float a = std::fabs(w[i]);
    const float m = a > thr ? 1.0f : 0.0f;
    kl[i & 15] += a * m;
    cnt += a > thr;
  }
  const float kept = fold16(kl);
  const float alpha = cnt > 0 ? kept / float(cnt) : amax_ref(w, n);
  for (size_t i = 0; i < n; ++i) {
    const float m = std::fabs(w[i]) > thr ? 1.0f : 0.0f;
    q[i] = (sign_ref(w[i]) * m) * alpha;
  }
  return thr;
}

struct round_guard {  // rint / nearbyint / vrndscale follow the current mode: make it FE_TONEAREST
  int old = std::fegetround();
  round_guard() {
    if (old != FE_TONEAREST) std::fesetround(FE_TONEAREST);
  }
  ~round_guard() {
    if (old != FE_TONEAREST) std::fesetround(old);
  }
};

}  // namespace razor::quant::fq_detail
