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

// ggml's trials for the sub-blocks of 16 of iq2_xs and iq2_s.
inline grid_trials trials_16(float max) {
  return {9, 0.1f, max, max / float(2 * k_max_q - 1), true, false, false};
}

}  // namespace

// ---- iq2_xxs ----------------------------------------------------------------------------------------

void quantize_row_iq2_xxs(const float* x, void* vy, int64_t n, const float* qw) {
  const grid_search& g = grid_xxs().search;
  auto* y = static_cast<block_iq2_xxs*>(vy);
  float scales[qk_k / 32], weight[32], xval[32], waux[32];
  int8_t L[32] = {};
  uint8_t block_signs[4];

  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float* xbl = x + qk_k * b;
    uint32_t q2[2 * (qk_k / 32)] = {};
    y[b].d = f32_to_fp16(0.0f);
    const float sigma2 = superblock_sigma2(xbl, 1.0f);
    float max_scale = 0.0f;

    for (int ib = 0; ib < qk_k / 32; ++ib) {
      const float* xb = xbl + 32 * ib;
      const float* qb = qw + qk_k * b + 32 * ib;
      group_weights(32, xb, qb, sigma2, weight, waux);
      auto fit = [&](float max) -> std::optional<float> {
        // a first scale from the magnitudes (levels 0..3 of make_qp_quants)
        const float first = fit_positive<32>(k_max_q + 1, xval, reinterpret_cast<uint8_t*>(L), weight);
        const float eff_max = first * float(k_max_q);
        if (eff_max <= 0.0f) return std::nullopt;
        // trials around it; then every group re-placed at the chosen scale (ggml does so even when all are
        // on the grid)
        return fit_grid_scale<8, 4, k_max_q>(g, xval, weight, waux, {6, 0.1f, eff_max, first, true, true, true}, L);
      };
      float scale;
      if (!grid_sub_block(32, xb, weight, true, k_group_eps, fit, xval, block_signs, L, &scale)) {
        scales[ib] = 0.0f;
        continue;
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

    float id;
    if (!grid_superblock_scale(max_scale, 1.0f, &y[b].d, &id)) {
      std::memset(y[b].qs, 0, sizeof y[b].qs);
      continue;
    }
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

namespace {

// iq2_xs and iq2_s, the types with sub-blocks of 16: one quantizer, the differences as arguments.
struct iq2_16_type {
  const iq2_grid& grid;
  float sigma2_factor;   // superblock_sigma2's factor
  bool even;             // sign patterns of even parity (ksigns) or a free byte
  float eps;             // an emptier sub-block is skipped
  float stored;          // the super-block scale's correction (grid_superblock_scale)
  bool clear_if_empty;   // ggml zeroes the grid indices of a super-block whose scales are all 0
};

// weights(xb, qb, sigma2, weight): the importance weights of a sub-block (qb null without an imatrix);
// store(block, ib, k, point, signs): group k of sub-block ib on grid point `point`.
template <class Block, class Weights, class Store>
void iq2_16_row(const iq2_16_type& t, const float* x, Block* y, int64_t n, const float* qw, Weights weights,
                Store store) {
  const grid_search& g = t.grid.search;
  float scales[qk_k / 16], weight[16], xval[16], waux[16];
  int8_t L[16];
  uint8_t block_signs[2];

  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float* xbl = x + qk_k * b;
    std::memset(&y[b], 0, sizeof y[b]);
    y[b].d = f32_to_fp16(0.0f);
    const float sigma2 = superblock_sigma2(xbl, t.sigma2_factor);
    float max_scale = 0.0f;

    for (int ib = 0; ib < qk_k / 16; ++ib) {
      const float* xb = xbl + 16 * ib;
      weights(xb, qw ? qw + qk_k * b + 16 * ib : nullptr, sigma2, weight);
      for (int i = 0; i < 16; ++i) waux[i] = std::sqrt(weight[i]);
      auto fit = [&](float max) { return fit_grid_scale<8, 2, k_max_q>(g, xval, weight, waux, trials_16(max), L); };
      float scale;
      if (!grid_sub_block(16, xb, weight, t.even, t.eps, fit, xval, block_signs, L, &scale)) {
        scales[ib] = 0.0f;
        continue;
      }
      for (int k = 0; k < 2; ++k) store(y[b], ib, k, g.code_to_point[size_t(g.code_of(L + 8 * k))], block_signs[k]);
      scales[ib] = scale;
      max_scale = max_of(max_scale, scale);
    }

    float id;
    if (!grid_superblock_scale(max_scale, t.stored, &y[b].d, &id)) {
      if (t.clear_if_empty) std::memset(y[b].qs, 0, sizeof y[b].qs);
      continue;
    }
    scale_nibbles(id, scales, qk_k / 16, y[b].scales);
  }
}

}  // namespace

void quantize_row_iq2_xs(const float* x, void* vy, int64_t n, const float* qw) {
  // qw is never null here (the type table's `required`)
  iq2_16_row({grid_xs(), 1.0f, true, k_group_eps, 1.0f, true}, x, static_cast<block_iq2_xs*>(vy), n, qw,
             [](const float* xb, const float* qb, float sigma2, float* weight) {
               imatrix_weights(16, xb, qb, sigma2, weight);
             },
             [](block_iq2_xs& y, int ib, int k, int point, uint8_t signs) {
               y.qs[2 * ib + k] = uint16_t(point | (signs << 9));
             });
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
  auto weights = [](const float* xb, const float* qb, float sigma2, float* weight) {
    if (qb) {
      imatrix_weights(16, xb, qb, sigma2, weight);
    } else {  // iq2_s's own weights without an imatrix
      for (int i = 0; i < 16; ++i) weight[i] = 0.25f * sigma2 + xb[i] * xb[i];
    }
  };
  iq2_16_row({grid_s(), 2.0f, false, k_iq2s_eps, 0.9875f, false}, x, static_cast<block_iq2_s*>(vy), n, qw, weights,
             [](block_iq2_s& y, int ib, int k, int point, uint8_t signs) {
               const int i8 = 2 * ib + k;
               y.qs[i8] = uint8_t(point & 255);
               y.qh[i8 / 4] |= uint8_t((point >> 8) << (2 * (i8 % 4)));
               y.qs[qk_k / 8 + i8] = signs;
             });
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
