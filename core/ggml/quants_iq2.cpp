// iq2_xxs (2.0625 bits per weight), iq2_xs (2.3125) and iq2_s (2.5625): each group of 8 magnitudes is a
// point of a grid of 256, 512 or 1024 points (grids.h; three levels per coordinate), the signs of 8
// elements either one of 128 even-parity patterns (iq2_xxs, iq2_xs: ksigns) or a free byte (iq2_s), and
// the scales are 4 bits per 32 (iq2_xxs) or per 16 (iq2_xs, iq2_s) under one fp16 super-block scale.
// Block layouts: blocks.h. The quantizers repeat ggml's quantize_row_iq2_{xxs,xs,s}_impl operation for
// operation: a search over trial scales in which every group is rounded to levels and, off the grid,
// replaced by the best of its nearest grid points (grid_search.h).
//
// ggml requires importance weights for iq2_xxs and iq2_xs (the type table's `required`; quants.cpp
// refuses null weights before these run); iq2_s uses 0.25*sigma2 + x^2 without them.
#include "ggml/quants_internal.h"

#include "ggml/grids.h"

namespace razor::ggml::detail {

namespace {

constexpr int k_max_q = 3;             // levels per coordinate in the quantizer's rounding (0..2)
constexpr float k_iq2s_eps = 1e-8f;    // ggml GROUP_MAX_EPS_IQ2_S

struct iq2_grid {
  grid_search search;
  std::vector<uint8_t> bytes;  // npoints x 8: the stored magnitudes (ggml's iq2*_grid)
};

iq2_grid make_grid(const uint16_t* kgrid, int npoints, int nwant) {
  iq2_grid g;
  g.search = build_grid_search(kgrid, npoints, 8, 2, k_max_q - 1, nwant);
  g.bytes.resize(size_t(npoints) * 8);
  for (size_t i = 0; i < g.bytes.size(); ++i) g.bytes[i] = iq2_byte[g.search.levels[i]];
  return g;
}

// ggml's neighbour depth (nwant in iq2xs_init_impl): 2 distances for iq2_xxs / iq2_xs, 1 for iq2_s.
const iq2_grid& grid_xxs() {
  static const iq2_grid g = make_grid(kgrid_iq2xxs, 256, 2);
  return g;
}
const iq2_grid& grid_xs() {
  static const iq2_grid g = make_grid(kgrid_iq2xs, 512, 2);
  return g;
}
const iq2_grid& grid_s() {
  static const iq2_grid g = make_grid(kgrid_iq2s, 1024, 1);
  return g;
}

// The levels of a group at inverse scale id: nearest_int(0.5*(id*x - 1)) clamped to 0..2.
inline void round_group(const float* xval, float id, int8_t* L) {
  for (int i = 0; i < 8; ++i) {
    const int l = nearest_int(0.5f * (id * xval[i] - 1.0f));
    L[i] = int8_t(max_of(0, min_of(k_max_q - 1, l)));
  }
}

// Magnitudes and signs of a group of 8 whose sign pattern must have even parity (iq2_xxs, iq2_xs): an
// odd count of negatives flips the element of least weight*x^2. Returns the 7-bit ksigns index.
uint8_t even_signs(const float* xb, const float* weight, float* xval) {
  int nflip = 0;
  uint8_t s = 0;
  for (int i = 0; i < 8; ++i) {
    if (xb[i] >= 0) {
      xval[i] = xb[i];
    } else {
      xval[i] = -xb[i];
      ++nflip;
      s = uint8_t(s | (1u << i));
    }
  }
  if (nflip % 2) {
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
    s = uint8_t(s ^ (1u << imin));
  }
  return s & 127;
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

// The common sub-block search of iq2_xs and iq2_s (16 elements, two groups of 8; ggml's loops over
// trial scales -9..9 and the re-placement of off-grid groups). xval, weight, waux: the sub-block.
// Returns the scale; L receives on-grid levels.
float search_16(const grid_search& g, const float* xval, const float* weight, const float* waux, float max,
                int8_t* L) {
  int8_t Laux[16];
  bool on_grid[2] = {true, true}, on_grid_aux[2];
  float best = 0.0f;
  float scale = max / float(2 * k_max_q - 1);
  for (int step = -9; step <= 9; ++step) {
    const float id = (float(2 * k_max_q - 1) + float(step) * 0.1f) / max;
    const float this_scale = 1.0f / id;
    for (int k = 0; k < 2; ++k) {
      round_group(xval + 8 * k, id, Laux + 8 * k);
      const int code = g.code_of(Laux + 8 * k);
      on_grid_aux[k] = g.code_to_point[size_t(code)] >= 0;
      if (!on_grid_aux[k]) best_grid_point<8>(g, code, xval + 8 * k, waux + 8 * k, this_scale, Laux + 8 * k);
    }
    float sumqx, sumq2;
    fit_sums(16, weight, xval, Laux, &sumqx, &sumq2);
    if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
      scale = sumqx / sumq2;
      best = scale * sumqx;
      std::memcpy(L, Laux, 16);
      on_grid[0] = on_grid_aux[0];
      on_grid[1] = on_grid_aux[1];
    }
  }
  const int off_grid = (on_grid[0] ? 0 : 1) + (on_grid[1] ? 0 : 1);
  if (off_grid > 0 && scale > 0.0f) {
    const float id = 1.0f / scale;
    for (int k = 0; k < 2; ++k) {
      if (on_grid[k]) continue;
      round_group(xval + 8 * k, id, L + 8 * k);
      const int code = g.code_of(L + 8 * k);
      if (g.code_to_point[size_t(code)] < 0) best_grid_point<8>(g, code, xval + 8 * k, waux + 8 * k, scale, L + 8 * k);
    }
    float sumqx, sumq2;
    fit_sums(16, weight, xval, L, &sumqx, &sumq2);
    if (sumq2 > 0.0f) scale = sumqx / sumq2;
  }
  return scale;
}

// The 4-bit scale of a sub-block against the super-block scale d = max_scale/31.
inline int scale_code(float id, float scale) {
  return max_of(0, min_of(15, nearest_int(0.5f * (id * scale - 1.0f))));
}

}  // namespace

// ---- iq2_xxs ----------------------------------------------------------------------------------------

void quantize_row_iq2_xxs(const float* x, void* vy, int64_t n, const float* qw) {
  const grid_search& g = grid_xxs().search;
  auto* y = static_cast<block_iq2_xxs*>(vy);
  float scales[qk_k / 32], weight[32], xval[32], waux[32];
  int8_t L[32] = {}, Laux[32];
  uint8_t block_signs[4];

  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float* xbl = x + qk_k * b;
    uint32_t q2[2 * (qk_k / 32)] = {};
    y[b].d = f32_to_fp16(0.0f);
    float sumx2 = 0.0f;
    for (int i = 0; i < qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = sumx2 / float(qk_k);
    float max_scale = 0.0f;

    for (int ib = 0; ib < qk_k / 32; ++ib) {
      const float* xb = xbl + 32 * ib;
      const float* qb = qw + qk_k * b + 32 * ib;
      for (int i = 0; i < 32; ++i) weight[i] = qb[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
      for (int i = 0; i < 32; ++i) waux[i] = std::sqrt(weight[i]);
      for (int k = 0; k < 4; ++k) block_signs[k] = even_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k);
      float max = xval[0];
      for (int i = 1; i < 32; ++i) max = max_of(max, xval[i]);
      if (max < k_group_eps) {
        scales[ib] = 0.0f;
        std::memset(L, 0, sizeof L);
        continue;
      }
      // a first scale from the magnitudes (levels 0..3 of make_qp_quants), then trials around it
      float scale = fit_positive(32, k_max_q + 1, xval, reinterpret_cast<uint8_t*>(L), weight);
      const float eff_max = scale * float(k_max_q);
      if (eff_max <= 0.0f) {
        scales[ib] = 0.0f;
        std::memset(L, 0, sizeof L);
        continue;
      }
      float best = 0.0f;
      for (int step = -6; step <= 6; ++step) {
        const float id = (float(2 * k_max_q - 1) + float(step) * 0.1f) / eff_max;
        const float this_scale = 1.0f / id;
        for (int k = 0; k < 4; ++k) {
          round_group(xval + 8 * k, id, Laux + 8 * k);
          const int code = g.code_of(Laux + 8 * k);
          if (g.code_to_point[size_t(code)] < 0)
            best_grid_point<8>(g, code, xval + 8 * k, waux + 8 * k, this_scale, Laux + 8 * k);
        }
        float sumqx, sumq2;
        fit_sums(32, weight, xval, Laux, &sumqx, &sumq2);
        if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
          scale = sumqx / sumq2;
          best = scale * sumqx;
          std::memcpy(L, Laux, sizeof L);
        }
      }
      // every group re-placed at the chosen scale, then the scale refit
      if (scale > 0.0f) {
        const float id = 1.0f / scale;
        for (int k = 0; k < 4; ++k) {
          int8_t lv[8];
          round_group(xval + 8 * k, id, lv);
          const int code = g.code_of(lv);
          int point = g.code_to_point[size_t(code)];
          if (point < 0) point = best_grid_point<8>(g, code, xval + 8 * k, waux + 8 * k, scale, L + 8 * k);
          for (int i = 0; i < 8; ++i) L[8 * k + i] = g.levels[size_t(point) * 8 + size_t(i)];
        }
        float sumqx, sumq2;
        fit_sums(32, weight, xval, L, &sumqx, &sumq2);
        if (sumq2 > 0.0f) scale = sumqx / sumq2;
      }
      if (scale < 0.0f) {  // cannot happen with non-negative xval; kept as ggml keeps it
        scale = -scale;
        for (int k = 0; k < 4; ++k) block_signs[k] = uint8_t(~block_signs[k] & 127);
      }
      for (int k = 0; k < 4; ++k) {
        // on the grid here: either the code was, or best_grid_point put it there
        const int point = g.code_to_point[size_t(g.code_of(L + 8 * k))];
        q2[2 * ib] |= uint32_t(point) << (8 * k);
        q2[2 * ib + 1] |= uint32_t(block_signs[k]) << (7 * k);
      }
      scales[ib] = scale;
      max_scale = max_of(max_scale, scale);
    }

    if (max_scale == 0.0f) {
      std::memset(y[b].qs, 0, sizeof y[b].qs);
      continue;
    }
    const float d = max_scale / 31.0f;
    y[b].d = f32_to_fp16(d);
    const float id = 1.0f / d;
    for (int ib = 0; ib < qk_k / 32; ++ib) q2[2 * ib + 1] |= uint32_t(scale_code(id, scales[ib])) << 28;
    for (int i = 0; i < qk_k / 8; ++i) y[b].qs[i] = uint16_t(q2[i / 2] >> (16 * (i % 2)));
  }
}

void dequantize_row_iq2_xxs(const void* vx, float* y, int64_t n) {
  const iq2_grid& g = grid_xxs();
  const auto* x = static_cast<const block_iq2_xxs*>(vx);
  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float d = fp16_to_f32(x[b].d);
    for (int ib = 0; ib < qk_k / 32; ++ib) {
      const uint16_t* q = x[b].qs + 4 * ib;
      const uint32_t idx = uint32_t(q[0]) | (uint32_t(q[1]) << 16);
      const uint32_t sgn = uint32_t(q[2]) | (uint32_t(q[3]) << 16);
      const float db = d * (0.5f + float(sgn >> 28)) * 0.25f;
      for (int l = 0; l < 4; ++l, y += 8) {
        const uint8_t* mag = &g.bytes[size_t((idx >> (8 * l)) & 255) * 8];
        const uint8_t s = ksigns(int((sgn >> (7 * l)) & 127));
        for (int j = 0; j < 8; ++j) y[j] = db * float(mag[j]) * ((s & (1u << j)) ? -1.0f : 1.0f);
      }
    }
  }
}

// ---- iq2_xs -----------------------------------------------------------------------------------------

void quantize_row_iq2_xs(const float* x, void* vy, int64_t n, const float* qw) {
  const grid_search& g = grid_xs().search;
  auto* y = static_cast<block_iq2_xs*>(vy);
  float scales[qk_k / 16], weight[16], xval[16], waux[16];
  int8_t L[16];
  uint8_t block_signs[2];

  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float* xbl = x + qk_k * b;
    uint16_t q2[2 * (qk_k / 16)] = {};
    y[b].d = f32_to_fp16(0.0f);
    std::memset(y[b].scales, 0, sizeof y[b].scales);
    float sumx2 = 0.0f;
    for (int i = 0; i < qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = sumx2 / float(qk_k);
    float max_scale = 0.0f;

    for (int ib = 0; ib < qk_k / 16; ++ib) {
      const float* xb = xbl + 16 * ib;
      const float* qb = qw + qk_k * b + 16 * ib;
      for (int i = 0; i < 16; ++i) weight[i] = qb[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
      for (int i = 0; i < 16; ++i) waux[i] = std::sqrt(weight[i]);
      for (int k = 0; k < 2; ++k) block_signs[k] = even_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k);
      float max = xval[0];
      for (int i = 1; i < 16; ++i) max = max_of(max, xval[i]);
      std::memset(L, 0, sizeof L);
      if (max < k_group_eps) {
        scales[ib] = 0.0f;
        continue;
      }
      float scale = search_16(g, xval, weight, waux, max, L);
      if (scale < 0.0f) {
        scale = -scale;
        for (int k = 0; k < 2; ++k) block_signs[k] = uint8_t(~block_signs[k] & 127);
      }
      for (int k = 0; k < 2; ++k) {
        const int point = g.code_to_point[size_t(g.code_of(L + 8 * k))];
        q2[2 * ib + k] = uint16_t(point | (block_signs[k] << 9));
      }
      scales[ib] = scale;
      max_scale = max_of(max_scale, scale);
    }

    if (max_scale == 0.0f) {
      std::memset(y[b].qs, 0, sizeof y[b].qs);
      continue;
    }
    const float d = max_scale / 31.0f;
    y[b].d = f32_to_fp16(d);
    const float id = 1.0f / d;
    for (int ib = 0; ib < qk_k / 16; ++ib) {
      const int l = scale_code(id, scales[ib]);
      if (ib % 2 == 0)
        y[b].scales[ib / 2] = uint8_t(l);
      else
        y[b].scales[ib / 2] |= uint8_t(l << 4);
    }
    std::memcpy(y[b].qs, q2, sizeof y[b].qs);
  }
}

void dequantize_row_iq2_xs(const void* vx, float* y, int64_t n) {
  const iq2_grid& g = grid_xs();
  const auto* x = static_cast<const block_iq2_xs*>(vx);
  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float d = fp16_to_f32(x[b].d);
    for (int ib = 0; ib < qk_k / 32; ++ib) {
      const float db[2] = {d * (0.5f + float(x[b].scales[ib] & 0xf)) * 0.25f,
                           d * (0.5f + float(x[b].scales[ib] >> 4)) * 0.25f};
      for (int l = 0; l < 4; ++l, y += 8) {
        const uint16_t q = x[b].qs[4 * ib + l];
        const uint8_t* mag = &g.bytes[size_t(q & 511) * 8];
        const uint8_t s = ksigns(q >> 9);
        for (int j = 0; j < 8; ++j) y[j] = db[l / 2] * float(mag[j]) * ((s & (1u << j)) ? -1.0f : 1.0f);
      }
    }
  }
}

// ---- iq2_s ------------------------------------------------------------------------------------------

void quantize_row_iq2_s(const float* x, void* vy, int64_t n, const float* qw) {
  const grid_search& g = grid_s().search;
  auto* y = static_cast<block_iq2_s*>(vy);
  float scales[qk_k / 16], weight[16], xval[16], waux[16];
  int8_t L[16];
  uint8_t block_signs[2];

  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float* xbl = x + qk_k * b;
    std::memset(&y[b], 0, sizeof y[b]);
    y[b].d = f32_to_fp16(0.0f);
    float sumx2 = 0.0f;
    for (int i = 0; i < qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = 2.0f * sumx2 / float(qk_k);
    float max_scale = 0.0f;

    for (int ib = 0; ib < qk_k / 16; ++ib) {
      const float* xb = xbl + 16 * ib;
      if (qw) {
        const float* qb = qw + qk_k * b + 16 * ib;
        for (int i = 0; i < 16; ++i) weight[i] = qb[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
      } else {
        for (int i = 0; i < 16; ++i) weight[i] = 0.25f * sigma2 + xb[i] * xb[i];
      }
      for (int i = 0; i < 16; ++i) waux[i] = std::sqrt(weight[i]);
      // free signs: one bit per element
      for (int k = 0; k < 2; ++k) {
        uint8_t s = 0;
        for (int i = 0; i < 8; ++i) {
          const float v = xb[8 * k + i];
          if (v >= 0) {
            xval[8 * k + i] = v;
          } else {
            xval[8 * k + i] = -v;
            s = uint8_t(s | (1u << i));
          }
        }
        block_signs[k] = s;
      }
      float max = xval[0];
      for (int i = 1; i < 16; ++i) max = max_of(max, xval[i]);
      std::memset(L, 0, sizeof L);
      if (max < k_iq2s_eps) {
        scales[ib] = 0.0f;
        continue;
      }
      float scale = search_16(g, xval, weight, waux, max, L);
      if (scale < 0.0f) {
        scale = -scale;
        for (int k = 0; k < 2; ++k) block_signs[k] = uint8_t(~block_signs[k]);
      }
      for (int k = 0; k < 2; ++k) {
        const int point = g.code_to_point[size_t(g.code_of(L + 8 * k))];
        const int i8 = 2 * ib + k;
        y[b].qs[i8] = uint8_t(point & 255);
        y[b].qh[i8 / 4] |= uint8_t((point >> 8) << (2 * (i8 % 4)));
        y[b].qs[qk_k / 8 + i8] = block_signs[k];
      }
      scales[ib] = scale;
      max_scale = max_of(max_scale, scale);
    }

    if (max_scale == 0.0f) continue;
    const float d = max_scale / 31.0f;
    y[b].d = f32_to_fp16(d * 0.9875f);
    const float id = 1.0f / d;
    for (int ib = 0; ib < qk_k / 16; ++ib) {
      const int l = scale_code(id, scales[ib]);
      if (ib % 2 == 0)
        y[b].scales[ib / 2] = uint8_t(l);
      else
        y[b].scales[ib / 2] |= uint8_t(l << 4);
    }
  }
}

void dequantize_row_iq2_s(const void* vx, float* y, int64_t n) {
  const iq2_grid& g = grid_s();
  const auto* x = static_cast<const block_iq2_s*>(vx);
  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float d = fp16_to_f32(x[b].d);
    const uint8_t* qs = x[b].qs;
    const uint8_t* signs = qs + qk_k / 8;
    for (int ib = 0; ib < qk_k / 32; ++ib, qs += 4, signs += 4) {
      const float db[2] = {d * (0.5f + float(x[b].scales[ib] & 0xf)) * 0.25f,
                           d * (0.5f + float(x[b].scales[ib] >> 4)) * 0.25f};
      for (int l = 0; l < 4; ++l, y += 8) {
        const int idx = qs[l] | ((x[b].qh[ib] << (8 - 2 * l)) & 0x300);
        const uint8_t* mag = &g.bytes[size_t(idx) * 8];
        for (int j = 0; j < 8; ++j) y[j] = db[l / 2] * float(mag[j]) * ((signs[l] & (1u << j)) ? -1.0f : 1.0f);
      }
    }
  }
}

}  // namespace razor::ggml::detail
