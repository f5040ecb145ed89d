// iq3_xxs (3.0625 bits per weight) and iq3_s (3.4375). Each group of 4 magnitudes is a point of a grid
// (grids.h: 256 points for iq3_xxs, 512 for iq3_s), each 32 weights share a 4-bit scale under one fp16
// super-block scale. iq3_xxs stores the signs of 8 elements as one of 128 even-parity patterns (ksigns)
// and its grid bytes as 8l+4 (l = 7 stores 62); iq3_s stores a free sign bit per element, 9-bit grid
// indices and the points 2l+1 themselves. Block layouts: blocks.h.
//
// ggml's quantizers (quantize_row_iq3_xxs_impl, quantize_row_iq3_s_impl) round each group to levels and,
// off the grid, search the grid points at the 2 (iq3_xxs) or 3 (iq3_s) smallest squared distances
// (grid_search.h); we repeat them operation for operation. quantize_row_iq3_xxs / _s run the trial scales
// side by side in vector lanes (fit_grid_scale_lanes); the _scalar forms, one trial at a time
// (fit_grid_scale), are the reference the tests compare them with.
#include "ggml/quants_internal.h"

#include <limits>

#include "ggml/grids.h"

namespace razor::ggml::detail {

namespace {

constexpr int k_max_q = 8;           // levels per coordinate

struct iq3_grid {
  grid_search search;
  std::vector<uint8_t> bytes;  // npoints x 4: the stored magnitudes (ggml's iq3xxs_grid / iq3s_grid)
  grid_lists lists;            // the candidate lists for the lane search
};

const iq3_grid& grid_xxs() {
  static const iq3_grid g = [] {
    iq3_grid r{build_grid_search(kgrid_iq3xxs, 256, 4, 3, 7, 2), {}, {}};
    for (int8_t l : r.search.levels) r.bytes.push_back(l == 7 ? uint8_t(62) : uint8_t(8 * l + 4));
    r.lists = build_grid_lists(r.search);
    return r;
  }();
  return g;
}

const iq3_grid& grid_s() {
  static const iq3_grid g = [] {
    iq3_grid r{build_grid_search(kgrid_iq3s, 512, 4, 3, 7, 3), {}, {}};
    for (int8_t l : r.search.levels) r.bytes.push_back(uint8_t(2 * l + 1));
    r.lists = build_grid_lists(r.search);
    return r;
  }();
  return g;
}

// One sub-block's scale search: the lane form (trial scales side by side) or the scalar ground truth.
template <bool lanes>
float fit_iq3(const iq3_grid& grid, const float* xval, const float* weight, const float* waux, const grid_trials& t,
              int8_t* L) {
  if (lanes) return fit_grid_scale_lanes(grid.search, grid.lists, xval, weight, waux, t, L);
  return fit_grid_scale<4, 8, k_max_q>(grid.search, xval, weight, waux, t, L);
}

// iq3_xxs, iq3_s: sub-blocks of 32, eight groups of 4; nsteps trial scales either side of the first.
template <bool lanes, class Block, class Store, class Finish>
void iq3_row(const iq3_grid& grid, int nsteps, bool on_grid_init, bool replace_all, const grid_row_type& t,
             const float* x, Block* y, int64_t n, const float* qw, Store store, Finish finish) {
  auto weights = [](const float* xb, const float* qb, float sigma2, float* weight) {
    imatrix_weights(32, xb, qb, sigma2, weight);
  };
  auto fit = [&](float max, const float* xval, const float* weight, const float* waux, int8_t* L) {
    const grid_trials trials{nsteps, 0.2f, max, max / float(2 * k_max_q - 1), on_grid_init, replace_all, false};
    return fit_iq3<lanes>(grid, xval, weight, waux, trials, L);
  };
  grid_row<32>(t, x, y, n, qw, weights, fit, store, finish);
}

// ---- iq3_xxs ----------------------------------------------------------------------------------------

// qs: 64 grid indices, then per sub-block a little-endian u32 of 4 x 7 sign bits and the 4-bit scale.
template <bool lanes>
void iq3_xxs_row(const float* x, void* vy, int64_t n, const float* qw) {
  const grid_search& g = grid_xxs().search;
  auto store = [&g](block_iq3_xxs& y, int ib, int, const int8_t* L, const uint8_t* signs) {
    // every group is on the grid here: either it was, or best_grid_point put it there
    for (int k = 0; k < 8; ++k) y.qs[8 * ib + k] = uint8_t(g.code_to_point[size_t(g.code_of(L + 4 * k))]);
    const uint32_t w = uint32_t(signs[0]) | (uint32_t(signs[1]) << 7) | (uint32_t(signs[2]) << 14) |
                       (uint32_t(signs[3]) << 21);
    for (int k = 0; k < 4; ++k) y.qs[qk_k / 4 + 4 * ib + k] = uint8_t(w >> (8 * k));
  };
  auto finish = [](block_iq3_xxs& y, float id, const float* scales) {
    for (int ib = 0; ib < qk_k / 32; ++ib) y.qs[qk_k / 4 + 4 * ib + 3] |= uint8_t(scale_code(id, scales[ib]) << 4);
  };
  iq3_row<lanes>(grid_xxs(), 15, true, false, {2.0f, true, k_group_eps_iq3, 1.0125f, true}, x,
                 static_cast<block_iq3_xxs*>(vy), n, qw, store, finish);
}

}  // namespace

void quantize_row_iq3_xxs(const float* x, void* y, int64_t n, const float* qw) { iq3_xxs_row<true>(x, y, n, qw); }
void quantize_row_iq3_xxs_scalar(const float* x, void* y, int64_t n, const float* qw) {
  iq3_xxs_row<false>(x, y, n, qw);
}

void dequantize_row_iq3_xxs(const void* vx, float* y, int64_t n) {
  const iq3_grid& g = grid_xxs();
  dequantize_grid_row<block_iq3_xxs>(vx, y, n, [&g](const block_iq3_xxs& x, float d, int k) {
    const uint8_t* sas = x.qs + qk_k / 4 + 4 * (k / 4);
    const uint32_t w = uint32_t(sas[0]) | (uint32_t(sas[1]) << 8) | (uint32_t(sas[2]) << 16) | (uint32_t(sas[3]) << 24);
    return grid_group{d * (0.5f + float(w >> 28)) * 0.5f, &g.bytes[size_t(x.qs[2 * k]) * 4],
                      &g.bytes[size_t(x.qs[2 * k + 1]) * 4], ksigns(int((w >> (7 * (k % 4))) & 127))};
  });
}

// ---- iq3_s ------------------------------------------------------------------------------------------

namespace {

template <bool lanes>
void iq3_s_row(const float* x, void* vy, int64_t n, const float* qw) {
  const grid_search& g = grid_s().search;
  // ggml advances qs and signs past a sub-block only when it quantized it: after an all-zero sub-block
  // the next one's indices and signs land in its slot (the scale and qh keep their positions)
  auto store = [&g](block_iq3_s& y, int ib, int slot, const int8_t* L, const uint8_t* signs) {
    for (int k = 0; k < 8; ++k) {
      const int point = g.code_to_point[size_t(g.code_of(L + 4 * k))];
      y.qs[8 * slot + k] = uint8_t(point & 255);
      y.qh[ib] |= uint8_t((point >> 8) << k);
    }
    for (int k = 0; k < 4; ++k) y.signs[4 * slot + k] = signs[k];
  };
  auto finish = [](block_iq3_s& y, float id, const float* scales) { scale_nibbles(id, scales, qk_k / 32, y.scales); };
  // ggml re-places every group (its on-grid test is commented out) and skips a sub-block whose largest
  // magnitude is 0: below the smallest subnormal
  iq3_row<lanes>(grid_s(), 9, false, true, {2.0f, false, std::numeric_limits<float>::denorm_min(), 1.033f, false}, x,
                 static_cast<block_iq3_s*>(vy), n, qw, store, finish);
}

}  // namespace

void quantize_row_iq3_s(const float* x, void* y, int64_t n, const float* qw) { iq3_s_row<true>(x, y, n, qw); }
void quantize_row_iq3_s_scalar(const float* x, void* y, int64_t n, const float* qw) { iq3_s_row<false>(x, y, n, qw); }

void dequantize_row_iq3_s(const void* vx, float* y, int64_t n) {
  const iq3_grid& g = grid_s();
  dequantize_grid_row<block_iq3_s>(vx, y, n, [&g](const block_iq3_s& x, float d, int k) {
    const int qh = x.qh[k / 4], l = k % 4;
    return grid_group{d * float(1 + 2 * scale_nibble(x.scales, k / 4)),
                      &g.bytes[size_t(x.qs[2 * k] | ((qh << (8 - 2 * l)) & 256)) * 4],
                      &g.bytes[size_t(x.qs[2 * k + 1] | ((qh << (7 - 2 * l)) & 256)) * 4], x.signs[k]};
  });
}

}  // namespace razor::ggml::detail
