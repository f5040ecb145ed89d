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

// The scale of a sub-block of 16 of iq2_xs / iq2_s (group k is in sub-block k / 2).
float iq2_16_scale(const uint8_t* scales, float d, int k) {
  return d * (0.5f + float(scale_nibble(scales, k / 2))) * 0.25f;
}

// The importance weights of a sub-block of 16 (iq2_xs: always given).
void imatrix_weights_16(const float* xb, const float* qb, float sigma2, float* weight) {
  imatrix_weights(16, xb, qb, sigma2, weight);
}

}  // namespace

// ---- iq2_xxs ----------------------------------------------------------------------------------------

// qs: per sub-block of 32 a little-endian u32 of 4 grid indices, then one of 4 x 7 sign bits and the scale.
void quantize_row_iq2_xxs(const float* x, void* vy, int64_t n, const float* qw) {
  // qw is never null here (the type table's `required`)
  const grid_search& g = grid_xxs().search;
  auto weights = [](const float* xb, const float* qb, float sigma2, float* weight) {
    imatrix_weights(32, xb, qb, sigma2, weight);
  };
  auto fit = [&g](float, const float* xval, const float* weight, const float* waux, int8_t* L) -> std::optional<float> {
    // a first scale from the magnitudes (levels 0..3 of make_qp_quants)
    const float first = fit_positive<32>(k_max_q + 1, xval, reinterpret_cast<uint8_t*>(L), weight);
    const float eff_max = first * float(k_max_q);
    if (eff_max <= 0.0f) return std::nullopt;
    // trials around it; then every group re-placed at the chosen scale (ggml does so even when all are on
    // the grid)
    return fit_grid_scale<8, 4, k_max_q>(g, xval, weight, waux, {6, 0.1f, eff_max, first, true, true, true}, L);
  };
  auto store = [&g](block_iq2_xxs& y, int ib, int, const int8_t* L, const uint8_t* signs) {
    uint32_t points = 0, sign_bits = 0;
    for (int k = 0; k < 4; ++k) {
      // on the grid here: either the code was, or best_grid_point put it there
      points |= uint32_t(g.code_to_point[size_t(g.code_of(L + 8 * k))]) << (8 * k);
      sign_bits |= uint32_t(signs[k]) << (7 * k);
    }
    y.qs[4 * ib] = uint16_t(points);
    y.qs[4 * ib + 1] = uint16_t(points >> 16);
    y.qs[4 * ib + 2] = uint16_t(sign_bits);
    y.qs[4 * ib + 3] = uint16_t(sign_bits >> 16);
  };
  auto finish = [](block_iq2_xxs& y, float id, const float* scales) {
    for (int ib = 0; ib < qk_k / 32; ++ib) y.qs[4 * ib + 3] |= uint16_t(scale_code(id, scales[ib]) << 12);
  };
  grid_row<32>({1.0f, true, k_group_eps, 1.0f, true}, x, static_cast<block_iq2_xxs*>(vy), n, qw, weights, fit, store,
               finish);
}

void dequantize_row_iq2_xxs(const void* vx, float* y, int64_t n) {
  const iq2_grid& g = grid_xxs();
  dequantize_grid_row<block_iq2_xxs>(vx, y, n, [&g](const block_iq2_xxs& x, float d, int k) {
    const uint16_t* q = x.qs + 4 * (k / 4);
    const uint32_t idx = uint32_t(q[0]) | (uint32_t(q[1]) << 16);
    const uint32_t sgn = uint32_t(q[2]) | (uint32_t(q[3]) << 16);
    const uint8_t* mag = &g.bytes[size_t((idx >> (8 * (k % 4))) & 255) * 8];
    return grid_group{d * (0.5f + float(sgn >> 28)) * 0.25f, mag, mag + 4, ksigns(int((sgn >> (7 * (k % 4))) & 127))};
  });
}

// ---- iq2_xs -----------------------------------------------------------------------------------------

namespace {

// iq2_xs, iq2_s: sub-blocks of 16, two groups of 8.
template <class Block, class Weights, class Store>
void iq2_16_row(const iq2_grid& grid, const grid_row_type& t, const float* x, Block* y, int64_t n, const float* qw,
                Weights weights, Store store) {
  const grid_search& g = grid.search;
  auto fit = [&g](float max, const float* xval, const float* weight, const float* waux, int8_t* L) {
    return fit_grid_scale<8, 2, k_max_q>(g, xval, weight, waux, trials_16(max), L);
  };
  auto store_points = [&](Block& yb, int ib, int, const int8_t* L, const uint8_t* signs) {
    for (int k = 0; k < 2; ++k) store(yb, ib, k, g.code_to_point[size_t(g.code_of(L + 8 * k))], signs[k]);
  };
  auto finish = [](Block& yb, float id, const float* scales) { scale_nibbles(id, scales, qk_k / 16, yb.scales); };
  grid_row<16>(t, x, y, n, qw, weights, fit, store_points, finish);
}

}  // namespace

void quantize_row_iq2_xs(const float* x, void* vy, int64_t n, const float* qw) {
  // qw is never null here (the type table's `required`)
  iq2_16_row(grid_xs(), {1.0f, true, k_group_eps, 1.0f, true}, x, static_cast<block_iq2_xs*>(vy), n, qw,
             imatrix_weights_16, [](block_iq2_xs& y, int ib, int k, int point, uint8_t signs) {
               y.qs[2 * ib + k] = uint16_t(point | (signs << 9));
             });
}

void dequantize_row_iq2_xs(const void* vx, float* y, int64_t n) {
  const iq2_grid& g = grid_xs();
  dequantize_grid_row<block_iq2_xs>(vx, y, n, [&g](const block_iq2_xs& x, float d, int k) {
    const uint8_t* mag = &g.bytes[size_t(x.qs[k] & 511) * 8];
    return grid_group{iq2_16_scale(x.scales, d, k), mag, mag + 4, ksigns(x.qs[k] >> 9)};
  });
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
  iq2_16_row(grid_s(), {2.0f, false, k_iq2s_eps, 0.9875f, false}, x, static_cast<block_iq2_s*>(vy), n, qw, weights,
             [](block_iq2_s& y, int ib, int k, int point, uint8_t signs) {
               const int i8 = 2 * ib + k;
               y.qs[i8] = uint8_t(point & 255);
               y.qh[i8 / 4] |= uint8_t((point >> 8) << (2 * (i8 % 4)));
               y.qs[qk_k / 8 + i8] = signs;
             });
}

void dequantize_row_iq2_s(const void* vx, float* y, int64_t n) {
  const iq2_grid& g = grid_s();
  dequantize_grid_row<block_iq2_s>(vx, y, n, [&g](const block_iq2_s& x, float d, int k) {
    const int idx = x.qs[k] | ((x.qh[k / 4] << (8 - 2 * (k % 4))) & 0x300);
    const uint8_t* mag = &g.bytes[size_t(idx) * 8];
    return grid_group{iq2_16_scale(x.scales, d, k), mag, mag + 4, x.qs[qk_k / 8 + k]};
  });
}

}  // namespace razor::ggml::detail
