// iq3_xxs (3.0625 bits per weight) and iq3_s (3.4375). Each group of 4 magnitudes is a point of a grid
// (grids.h: 256 points for iq3_xxs, 512 for iq3_s), each 32 weights share a 4-bit scale under one fp16
// super-block scale. iq3_xxs stores the signs of 8 elements as one of 128 even-parity patterns (ksigns)
// and its grid bytes as 8l+4 (l = 7 stores 62); iq3_s stores a free sign bit per element, 9-bit grid
// indices and the points 2l+1 themselves. Block layouts: blocks.h.
//
// ggml's quantizers (quantize_row_iq3_xxs_impl, quantize_row_iq3_s_impl) round each group to levels and,
// off the grid, search the grid points at the 2 (iq3_xxs) or 3 (iq3_s) smallest squared distances
// (grid_search.h); we repeat them operation for operation.
#include "ggml/quants_internal.h"

#include "ggml/grids.h"

namespace razor::ggml::detail {

namespace {

constexpr float k_iq3_eps = 1e-8f;   // ggml GROUP_MAX_EPS_IQ3_XXS
constexpr int k_max_q = 8;           // levels per coordinate

struct iq3_grid {
  grid_search search;
  std::vector<uint8_t> bytes;  // npoints x 4: the stored magnitudes (ggml's iq3xxs_grid / iq3s_grid)
};

const iq3_grid& grid_xxs() {
  static const iq3_grid g = [] {
    iq3_grid r{build_grid_search(kgrid_iq3xxs, 256, 4, 3, 7, 2), {}};
    for (int8_t l : r.search.levels) r.bytes.push_back(l == 7 ? uint8_t(62) : uint8_t(8 * l + 4));
    return r;
  }();
  return g;
}

const iq3_grid& grid_s() {
  static const iq3_grid g = [] {
    iq3_grid r{build_grid_search(kgrid_iq3s, 512, 4, 3, 7, 3), {}};
    for (int8_t l : r.search.levels) r.bytes.push_back(uint8_t(2 * l + 1));
    return r;
  }();
  return g;
}

// The levels of a group of 4 at inverse scale id: nearest_int(0.5*(id*x - 1)) clamped to 0..7.
inline void round_group(const float* xval, float id, int8_t* L) {
  for (int i = 0; i < 4; ++i) {
    const int l = nearest_int(0.5f * (id * xval[i] - 1.0f));
    L[i] = int8_t(max_of(0, min_of(k_max_q - 1, l)));
  }
}

// sum w*x*q and sum w*q*q over 32 elements, q = 2L+1.
inline void fit_sums(const float* weight, const float* xval, const int8_t* L, float* sumqx, float* sumq2) {
  float sx = 0.0f, s2 = 0.0f;
  for (int i = 0; i < 32; ++i) {
    const float q = float(2 * L[i] + 1);
    sx += weight[i] * xval[i] * q;
    s2 += weight[i] * q * q;
  }
  *sumqx = sx;
  *sumq2 = s2;
}

// The search of one sub-block of 32 (8 groups of 4) shared by iq3_xxs and iq3_s: `nsteps` trial inverse
// scales on each side of 15/max, 0.2 apart; the best fit's off-grid groups are re-placed at its scale
// (iq3_s: every group, as ggml leaves the on-grid test commented out there) and the scale refit.
// on_grid_init: the assumed state before any trial fits (true for iq3_xxs, false for iq3_s).
float search_32(const grid_search& g, const float* xval, const float* weight, const float* waux, float max,
                int nsteps, bool on_grid_init, bool replace_all, int8_t* L) {
  int8_t Laux[32];
  bool on_grid[8], on_grid_aux[8];
  float best = 0.0f;
  float scale = max / float(2 * k_max_q - 1);
  for (int k = 0; k < 8; ++k) on_grid[k] = on_grid_init;
  for (int step = -nsteps; step <= nsteps; ++step) {
    const float id = (float(2 * k_max_q - 1) + float(step) * 0.2f) / max;
    const float this_scale = 1.0f / id;
    for (int k = 0; k < 8; ++k) {
      round_group(xval + 4 * k, id, Laux + 4 * k);
      const int code = g.code_of(Laux + 4 * k);
      on_grid_aux[k] = g.code_to_point[size_t(code)] >= 0;
      if (!on_grid_aux[k]) best_grid_point<4>(g, code, xval + 4 * k, waux + 4 * k, this_scale, Laux + 4 * k);
    }
    float sumqx, sumq2;
    fit_sums(weight, xval, Laux, &sumqx, &sumq2);
    if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
      scale = sumqx / sumq2;
      best = scale * sumqx;
      std::memcpy(L, Laux, 32);
      std::memcpy(on_grid, on_grid_aux, sizeof on_grid);
    }
  }
  int off_grid = 0;
  for (int k = 0; k < 8; ++k) off_grid += on_grid[k] ? 0 : 1;
  if (off_grid > 0 && scale > 0.0f) {
    const float id = 1.0f / scale;
    for (int k = 0; k < 8; ++k) {
      if (on_grid[k] && !replace_all) continue;
      int8_t lv[4];
      round_group(xval + 4 * k, id, lv);
      const int code = g.code_of(lv);
      int point = g.code_to_point[size_t(code)];
      if (point < 0) point = best_grid_point<4>(g, code, xval + 4 * k, waux + 4 * k, scale, L + 4 * k);
      for (int i = 0; i < 4; ++i) L[4 * k + i] = g.levels[size_t(point) * 4 + size_t(i)];
    }
    float sumqx, sumq2;
    fit_sums(weight, xval, L, &sumqx, &sumq2);
    if (sumq2 > 0.0f) scale = sumqx / sumq2;
  }
  return scale;
}

// Importance weights of a sub-block of 32: qw * sqrt(sigma2 + x^2), or x^2 without an imatrix.
void sub_block_weights(const float* xb, const float* qb, float sigma2, float* weight, float* waux) {
  if (qb) {
    for (int i = 0; i < 32; ++i) weight[i] = qb[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
  } else {
    for (int i = 0; i < 32; ++i) weight[i] = xb[i] * xb[i];
  }
  for (int i = 0; i < 32; ++i) waux[i] = std::sqrt(weight[i]);
}

}  // namespace

// ---- iq3_xxs ----------------------------------------------------------------------------------------

void quantize_row_iq3_xxs(const float* x, void* vy, int64_t n, const float* qw) {
  const grid_search& g = grid_xxs().search;
  auto* y = static_cast<block_iq3_xxs*>(vy);

  float scales[qk_k / 32], weight[32], xval[32], waux[32];
  int8_t L[32];
  uint8_t block_signs[4];

  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float* xbl = x + qk_k * b;
    uint8_t q3[3 * qk_k / 8] = {};
    uint8_t* idx = q3;  // 64 grid indices
    uint8_t* scales_and_signs = q3 + qk_k / 4;  // 8 little-endian u32
    uint32_t sas[8] = {};
    y[b].d = f32_to_fp16(0.0f);

    float sumx2 = 0.0f;
    for (int i = 0; i < qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = 2.0f * sumx2 / float(qk_k);
    float max_scale = 0.0f;

    for (int ib = 0; ib < qk_k / 32; ++ib) {
      const float* xb = xbl + 32 * ib;
      sub_block_weights(xb, qw ? qw + qk_k * b + 32 * ib : nullptr, sigma2, weight, waux);

      // signs per 8: the pattern must have even parity, so an odd count flips the cheapest element
      for (int k = 0; k < 4; ++k) {
        int nflip = 0;
        uint8_t s = 0;
        for (int i = 0; i < 8; ++i) {
          const float v = xb[8 * k + i];
          if (v >= 0) {
            xval[8 * k + i] = v;
          } else {
            xval[8 * k + i] = -v;
            ++nflip;
            s = uint8_t(s | (1u << i));
          }
        }
        if (nflip % 2) {
          int imin = 0;
          float min = weight[8 * k] * xb[8 * k] * xb[8 * k];
          for (int i = 1; i < 8; ++i) {
            const float ax = weight[8 * k + i] * xb[8 * k + i] * xb[8 * k + i];
            if (ax < min) {
              min = ax;
              imin = i;
            }
          }
          xval[8 * k + imin] = -xval[8 * k + imin];
          s = uint8_t(s ^ (1u << imin));
        }
        block_signs[k] = s & 127;
      }
      float max = xval[0];
      for (int i = 1; i < 32; ++i) max = max_of(max, xval[i]);
      std::memset(L, 0, sizeof L);
      if (max < k_iq3_eps) {
        scales[ib] = 0.0f;
        continue;
      }
      float scale = search_32(g, xval, weight, waux, max, 15, true, false, L);
      if (scale < 0.0f) {  // cannot happen with non-negative xval; kept as ggml keeps it
        scale = -scale;
        for (int k = 0; k < 4; ++k) block_signs[k] = uint8_t(~block_signs[k] & 127);
      }
      for (int k = 0; k < 8; ++k) {
        // every group is on the grid here: either it was, or best_grid_point put it there
        idx[8 * ib + k] = uint8_t(g.code_to_point[size_t(g.code_of(L + 4 * k))]);
      }
      sas[ib] = uint32_t(block_signs[0]) | (uint32_t(block_signs[1]) << 7) | (uint32_t(block_signs[2]) << 14) |
                (uint32_t(block_signs[3]) << 21);
      scales[ib] = scale;
      max_scale = max_of(max_scale, scale);
    }

    if (max_scale == 0.0f) {
      std::memset(y[b].qs, 0, sizeof y[b].qs);
      continue;
    }
    const float d = max_scale / 31.0f;
    y[b].d = f32_to_fp16(d * 1.0125f);
    const float id = 1.0f / d;
    for (int ib = 0; ib < qk_k / 32; ++ib) {
      const int l = max_of(0, min_of(15, nearest_int(0.5f * (id * scales[ib] - 1.0f))));
      sas[ib] |= uint32_t(l) << 28;
    }
    for (int ib = 0; ib < 8; ++ib)
      for (int k = 0; k < 4; ++k) scales_and_signs[4 * ib + k] = uint8_t(sas[ib] >> (8 * k));
    std::memcpy(y[b].qs, q3, sizeof y[b].qs);
  }
}

void dequantize_row_iq3_xxs(const void* vx, float* y, int64_t n) {
  const iq3_grid& g = grid_xxs();
  const auto* x = static_cast<const block_iq3_xxs*>(vx);
  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float d = fp16_to_f32(x[b].d);
    const uint8_t* qs = x[b].qs;
    const uint8_t* sas = qs + qk_k / 4;
    for (int ib = 0; ib < qk_k / 32; ++ib, qs += 8) {
      const uint32_t w = uint32_t(sas[4 * ib]) | (uint32_t(sas[4 * ib + 1]) << 8) |
                         (uint32_t(sas[4 * ib + 2]) << 16) | (uint32_t(sas[4 * ib + 3]) << 24);
      const float db = d * (0.5f + float(w >> 28)) * 0.5f;
      for (int l = 0; l < 4; ++l, y += 8) {
        const uint8_t s = ksigns(int((w >> (7 * l)) & 127));
        const uint8_t* g1 = &g.bytes[size_t(qs[2 * l]) * 4];
        const uint8_t* g2 = &g.bytes[size_t(qs[2 * l + 1]) * 4];
        for (int j = 0; j < 4; ++j) {
          y[j] = db * float(g1[j]) * ((s & (1u << j)) ? -1.0f : 1.0f);
          y[j + 4] = db * float(g2[j]) * ((s & (1u << (j + 4))) ? -1.0f : 1.0f);
        }
      }
    }
  }
}

// ---- iq3_s ------------------------------------------------------------------------------------------

void quantize_row_iq3_s(const float* x, void* vy, int64_t n, const float* qw) {
  const grid_search& g = grid_s().search;
  auto* y = static_cast<block_iq3_s*>(vy);

  float scales[qk_k / 32], weight[32], xval[32], waux[32];
  int8_t L[32];
  uint8_t block_signs[4];

  for (int64_t b = 0; b < n / qk_k; ++b) {
    std::memset(&y[b], 0, sizeof y[b]);
    y[b].d = f32_to_fp16(0.0f);
    // ggml advances these past a sub-block only when it quantized it: after an all-zero sub-block the
    // next one's indices and signs land in its slot (the scale and qh keep their positions)
    uint8_t* qs = y[b].qs;
    uint8_t* signs = y[b].signs;
    const float* xbl = x + qk_k * b;
    float sumx2 = 0.0f;
    for (int i = 0; i < qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = 2.0f * sumx2 / float(qk_k);
    float max_scale = 0.0f;

    for (int ib = 0; ib < qk_k / 32; ++ib) {
      const float* xb = xbl + 32 * ib;
      sub_block_weights(xb, qw ? qw + qk_k * b + 32 * ib : nullptr, sigma2, weight, waux);
      for (int k = 0; k < 4; ++k) {  // free signs: one bit per element
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
      for (int i = 1; i < 32; ++i) max = max_of(max, xval[i]);
      std::memset(L, 0, sizeof L);
      if (max == 0.0f) {
        scales[ib] = 0.0f;
        continue;
      }
      float scale = search_32(g, xval, weight, waux, max, 9, false, true, L);
      if (scale < 0.0f) {
        scale = -scale;
        for (int k = 0; k < 4; ++k) block_signs[k] = uint8_t(~block_signs[k]);
      }
      for (int k = 0; k < 8; ++k) {
        const int point = g.code_to_point[size_t(g.code_of(L + 4 * k))];
        qs[k] = uint8_t(point & 255);
        y[b].qh[ib] |= uint8_t((point >> 8) << k);
      }
      qs += 8;
      for (int k = 0; k < 4; ++k) signs[k] = block_signs[k];
      signs += 4;
      scales[ib] = scale;
      max_scale = max_of(max_scale, scale);
    }

    if (max_scale == 0.0f) continue;
    const float d = max_scale / 31.0f;
    y[b].d = f32_to_fp16(d * 1.033f);
    const float id = 1.0f / d;
    for (int ib = 0; ib < qk_k / 32; ib += 2) {
      const int l1 = max_of(0, min_of(15, nearest_int(0.5f * (id * scales[ib] - 1.0f))));
      const int l2 = max_of(0, min_of(15, nearest_int(0.5f * (id * scales[ib + 1] - 1.0f))));
      y[b].scales[ib / 2] = uint8_t(l1 | (l2 << 4));
    }
  }
}

void dequantize_row_iq3_s(const void* vx, float* y, int64_t n) {
  const iq3_grid& g = grid_s();
  const auto* x = static_cast<const block_iq3_s*>(vx);
  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float d = fp16_to_f32(x[b].d);
    const uint8_t* qs = x[b].qs;
    const uint8_t* signs = x[b].signs;
    for (int ib = 0; ib < qk_k / 32; ++ib, qs += 8, signs += 4) {
      const int s = ib % 2 == 0 ? (x[b].scales[ib / 2] & 0xf) : (x[b].scales[ib / 2] >> 4);
      const float db = d * float(1 + 2 * s);
      const int qh = x[b].qh[ib];
      for (int l = 0; l < 4; ++l, y += 8) {
        const uint8_t* g1 = &g.bytes[size_t(qs[2 * l] | ((qh << (8 - 2 * l)) & 256)) * 4];
        const uint8_t* g2 = &g.bytes[size_t(qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256)) * 4];
        for (int j = 0; j < 4; ++j) {
          y[j] = db * float(g1[j]) * ((signs[l] & (1u << j)) ? -1.0f : 1.0f);
          y[j + 4] = db * float(g2[j]) * ((signs[l] & (1u << (j + 4))) ? -1.0f : 1.0f);
        }
      }
    }
  }
}

}  // namespace razor::ggml::detail
