// iq1_s (1.5625 bits per weight) and iq1_m (1.75). Each group of 8 weights is a point of a 2048-point grid
// of ternary values (-1, 0, 1; grids.h) shifted by +-1/8, times a 3-bit scale per 32 (iq1_s) or per 16
// (iq1_m) under one fp16 super-block scale (iq1_m spreads its fp16 over the top nibbles of its scale words).
// Block layouts: blocks.h. The quantizers repeat ggml's quantize_row_iq1_{s,m}_impl: an exhaustive search
// of the two boundaries that split the sorted weights of a sub-block into the three values, then groups off
// the grid replaced by the best of the grid points at the 3 smallest distances (grid_search.h).
//
// The sort is the C library's qsort on ggml's own element layout and comparator: ggml calls qsort too, so
// equal values come out in the same order in the same process (qsort is not stable, its tie order is the
// library's).
#include "ggml/quants_internal.h"

#include <cstdlib>

#include "ggml/grids.h"

namespace razor::ggml::detail {

namespace {

constexpr float k_delta = 0.125f;        // ggml IQ1S_DELTA / IQ1M_DELTA
constexpr float k_iq1s_eps = 1e-12f;     // ggml GROUP_MAX_EPS_IQ1_S
constexpr float k_iq1m_eps = 1e-7f;      // ggml GROUP_MAX_EPS_IQ1_M
constexpr int k_ngrid = 2048;

struct iq1_grid {
  grid_search search;
};

const iq1_grid& grid() {
  static const iq1_grid g{build_grid_search(kgrid_iq1s, k_ngrid, 8, 2, 2, 3)};
  return g;
}

// The three values of a coordinate with the group shifted up (x_p) or down (x_m).
constexpr float x_p[3] = {-1 + k_delta, k_delta, 1 + k_delta};
constexpr float x_m[3] = {-1 - k_delta, -k_delta, 1 - k_delta};

// An element of ggml's sort buffer: the value, then its index in the sub-block (ggml stores the int in the
// float array's odd slots; the same 8-byte layout).
struct sort_pair {
  float x;
  int32_t idx;
};
static_assert(sizeof(sort_pair) == 2 * sizeof(float));

int compare_pairs(const void* left, const void* right) {  // ggml iq1_sort_helper: by value only
  const float l = static_cast<const sort_pair*>(left)->x;
  const float r = static_cast<const sort_pair*>(right)->x;
  return l < r ? -1 : l > r ? 1 : 0;
}

// The best grid point for an off-grid group (ggml iq1_find_best_neighbour2): smallest weighted squared
// distance between scale*xg[level] and xval, the first candidate on ties; when no candidate gives a distance
// below FLT_MAX, every grid point is tried. Writes the levels to L.
int best_point(const grid_search& g, int code, const float* xval, const float* w, float scale, const float* xg,
               int8_t* L) {
  const int k = best_grid_point_of<8>(g, code, xval, w, scale, [xg](int8_t l) { return xg[l]; }, L);
  if (k >= 0) return k;
  // ggml's fallback loop reads xval at the grid index (out of bounds); we read the group's values
  float best = 3.40282347e+38f;  // FLT_MAX
  int best_k = 0;                 // all distances NaN: ggml asserts here
  for (int p = 0; p < k_ngrid; ++p) {
    const int8_t* pl = &g.levels[size_t(p) * 8];
    float d2 = 0.0f;
    for (int i = 0; i < 8; ++i) {
      const float diff = scale * xg[pl[i]] - xval[i];
      d2 += w[i] * diff * diff;
    }
    if (d2 < best) {
      best = d2;
      best_k = p;
    }
  }
  for (int i = 0; i < 8; ++i) L[i] = g.levels[size_t(best_k) * 8 + size_t(i)];
  return best_k;
}

// Sorts the n values of xb with their indices (ggml's pairs / idx buffer and qsort).
void sort_sub_block(const float* xb, int n, sort_pair* pairs) {
  for (int j = 0; j < n; ++j) pairs[j] = {xb[j], j};
  std::qsort(pairs, size_t(n), sizeof(sort_pair), compare_pairs);
}

// The levels 0 / 1 / 2 of a sub-block of n from the best split of its sorted order (the elements before
// position i1, up to i2, from i2 on); mirrored (2 - l) when the fitted *scale is negative, which is then
// made positive. Returns whether it mirrored (the caller flips its shift).
bool split_levels(const sort_pair* pairs, int n, int i1, int i2, float* scale, int8_t* L) {
  for (int j = 0; j < i1; ++j) L[pairs[j].idx] = 0;
  for (int j = i1; j < i2; ++j) L[pairs[j].idx] = 1;
  for (int j = i2; j < n; ++j) L[pairs[j].idx] = 2;
  if (!(*scale < 0.0f)) return false;  // NaN too: ggml tests scale < 0
  for (int j = 0; j < n; ++j) L[j] = int8_t(2 - L[j]);
  *scale = -*scale;
  return true;
}

// Every group of 8 of a sub-block of n put on the grid (best_point where its levels are off it), group k
// with the values values_of(k); where any was off, the scale refit to the grid points (ggml keeps it unless
// both sums are positive). Writes the grid indices to index; returns the scale.
template <class Values>
float place_on_grid(const grid_search& g, int n, const float* xb, const float* weight, float scale, Values values_of,
                    int8_t* L, uint16_t* index) {
  bool all_on_grid = true;
  for (int k = 0; k < n / 8; ++k) {
    const int code = g.code_of(L + 8 * k);
    int point = g.code_to_point[size_t(code)];
    if (point < 0) {
      all_on_grid = false;
      point = best_point(g, code, xb + 8 * k, weight + 8 * k, scale, values_of(k), L + 8 * k);
    }
    index[k] = uint16_t(point);
  }
  if (all_on_grid) return scale;
  float sumqx = 0.0f, sumq2 = 0.0f;
  for (int k = 0; k < n / 8; ++k) {
    const float* xx = values_of(k);
    const int8_t* pl = &g.levels[size_t(index[k]) * 8];
    for (int j = 0; j < 8; ++j) {
      const float w = weight[8 * k + j];
      const float q = xx[pl[j]];
      sumqx += w * q * xb[8 * k + j];
      sumq2 += w * q * q;
    }
  }
  return sumqx > 0.0f && sumq2 > 0.0f ? sumqx / sumq2 : scale;
}

// A sub-block's best split of its sorted values into the three levels: the scale, the boundaries i1 <= i2
// in the sorted order (split_levels) and the shift pattern (iq1_s: +1 or -1; iq1_m: 0..3).
struct iq1_split {
  float scale;
  int i1, i2, shift;
};

// The super-block loop of iq1_s and iq1_m (ggml quantize_row_iq1_{s,m}_impl), sub-blocks of BS. Per
// sub-block: its importance weights; unless its largest magnitude is below eps, its values sorted
// (sort_sub_block) and search(xb, weight, pairs, max) for the best split, nullopt where none fits; a
// sub-block without a split keeps scale 0 and the shift no_shift. Otherwise the levels of the split (a
// mirrored split takes the shift flip(shift)), the groups put on the grid with the values values_of(shift,
// k) (place_on_grid) and store(block, ib, index). Then, unless every scale is 0, finish(block, xbl, qbl,
// sigma2, max_scale, scales, shifts) writes the scales (qbl: the super-block's importance weights or null).
template <int BS, class Block, class Search, class Flip, class Values, class Store, class Finish>
void iq1_row(const float* x, Block* y, int64_t n, const float* qw, float eps, int8_t no_shift, Search search,
             Flip flip, Values values_of, Store store, Finish finish) {
  const grid_search& g = grid().search;
  float scales[qk_k / BS], weight[BS];
  int8_t L[BS], shifts[qk_k / BS];
  uint16_t index[BS / 8];
  sort_pair pairs[BS];
  for (int64_t b = 0; b < n / qk_k; ++b) {
    std::memset(&y[b], 0, sizeof y[b]);  // every field, the fp16 zero included, is 0 bits
    float max_scale = 0.0f;
    const float* xbl = x + qk_k * b;
    const float* qbl = qw ? qw + qk_k * b : nullptr;
    const float sigma2 = superblock_sigma2(xbl, 2.0f);
    for (int ib = 0; ib < qk_k / BS; ++ib) {
      const float* xb = xbl + BS * ib;
      imatrix_weights(BS, xb, qbl ? qbl + BS * ib : nullptr, sigma2, weight);
      float max = std::fabs(xb[0]);
      for (int i = 1; i < BS; ++i) max = max_of(max, std::fabs(xb[i]));
      std::optional<iq1_split> split;
      if (!(max < eps)) {
        sort_sub_block(xb, BS, pairs);
        split = search(xb, weight, pairs, max);
      }
      if (!split) {
        scales[ib] = 0.0f;
        shifts[ib] = no_shift;
        std::memset(L, 1, BS);
        continue;
      }
      float scale = split->scale;
      int shift = split->shift;
      if (split_levels(pairs, BS, split->i1, split->i2, &scale, L)) shift = flip(shift);
      scale = place_on_grid(g, BS, xb, weight, scale, [&](int k) { return values_of(shift, k); }, L, index);
      store(y[b], ib, index);
      scales[ib] = scale;
      shifts[ib] = int8_t(shift);
      max_scale = max_of(max_scale, scale);
    }
    if (max_scale == 0.0f) continue;
    finish(y[b], xbl, qbl, sigma2, max_scale, scales, shifts);
  }
}

}  // namespace

// ---- iq1_s ------------------------------------------------------------------------------------------

void quantize_row_iq1_s(const float* x, void* vy, int64_t n, const float* qw) {
  constexpr int bs = 32;
  // the weighted least-squares split of the sorted values into -1, 0, +1 (+- delta), from prefix sums
  auto search = [](const float* xb, const float* weight, const sort_pair* pairs,
                   float max) -> std::optional<iq1_split> {
    float sumx[bs + 1], sumw[bs + 1];
    sumx[0] = sumw[0] = 0.0f;
    for (int j = 0; j < bs; ++j) {
      const int i = pairs[j].idx;
      sumx[j + 1] = sumx[j] + weight[i] * xb[i];
      sumw[j + 1] = sumw[j] + weight[i];
    }
    float best_score = -3.40282347e+38f, scale = max;
    int besti1 = -1, besti2 = -1, best_shift = 0;
    for (int i1 = 0; i1 <= bs; ++i1) {
      for (int i2 = i1; i2 <= bs; ++i2) {
        for (int shift : {1, -1}) {
          const float* xv = shift == 1 ? x_p : x_m;
          const float sumqx =
              (sumx[i1] - sumx[0]) * xv[0] + (sumx[i2] - sumx[i1]) * xv[1] + (sumx[bs] - sumx[i2]) * xv[2];
          const float sumq2 = (sumw[i1] - sumw[0]) * xv[0] * xv[0] + (sumw[i2] - sumw[i1]) * xv[1] * xv[1] +
                              (sumw[bs] - sumw[i2]) * xv[2] * xv[2];
          if (sumq2 > 0.0f && sumqx * sumqx > best_score * sumq2) {
            scale = sumqx / sumq2;
            best_score = scale * sumqx;
            besti1 = i1;
            besti2 = i2;
            best_shift = shift;
          }
        }
      }
    }
    if (besti1 < 0 || besti2 < 0 || best_shift == 0) return std::nullopt;
    return iq1_split{scale, besti1, besti2, best_shift};
  };
  auto flip = [](int shift) { return -shift; };
  auto values_of = [](int shift, int) { return shift == 1 ? x_p : x_m; };
  auto store = [](block_iq1_s& y, int ib, const uint16_t* index) {
    uint16_t h = 0;
    for (int k = 0; k < bs / 8; ++k) {
      y.qs[(bs / 8) * ib + k] = uint8_t(index[k] & 255);
      h = uint16_t(h | ((index[k] >> 8) << (3 * k)));
    }
    y.qh[ib] = h;
  };
  auto finish = [](block_iq1_s& y, const float*, const float*, float, float max_scale, const float* scales,
                   const int8_t* shifts) {
    const float d = max_scale / 15.0f;
    y.d = f32_to_fp16(d * 1.125f);
    const float id = 1.0f / d;
    for (int ib = 0; ib < qk_k / bs; ++ib) {
      int l = scale_code(id, scales[ib], 7);
      if (shifts[ib] == -1) l |= 8;
      y.qh[ib] = uint16_t(y.qh[ib] | (l << 12));
    }
  };
  // qw is never null here (the type table's `required`)
  iq1_row<bs>(x, static_cast<block_iq1_s*>(vy), n, qw, k_iq1s_eps, 1, search, flip, values_of, store, finish);
}

void dequantize_row_iq1_s(const void* vx, float* y, int64_t n) {
  const grid_search& g = grid().search;
  const auto* x = static_cast<const block_iq1_s*>(vx);
  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float d = fp16_to_f32(x[b].d);
    const uint8_t* qs = x[b].qs;
    for (int ib = 0; ib < qk_k / 32; ++ib, qs += 4) {
      const uint16_t qh = x[b].qh[ib];
      const float dl = d * float(2 * ((qh >> 12) & 7) + 1);
      const float delta = (qh & 0x8000) ? -k_delta : k_delta;
      for (int l = 0; l < 4; ++l, y += 8) {
        const int8_t* pl = &g.levels[size_t(qs[l] | (((qh >> (3 * l)) & 7) << 8)) * 8];
        for (int j = 0; j < 8; ++j) y[j] = dl * (float(pl[j] - 1) + delta);
      }
    }
  }
}

// ---- iq1_m ------------------------------------------------------------------------------------------

void quantize_row_iq1_m(const float* x, void* vy, int64_t n, const float* qw) {
  const grid_search& g = grid().search;
  constexpr int bs = 16;
  constexpr uint8_t masks[4] = {0x00, 0x80, 0x08, 0x88};  // the shift bits of qh per shift pattern

  // The shifts of the two groups of a sub-block by pattern k: 0 (+,+), 1 (+,-), 2 (-,+), 3 (-,-).
  auto group_values = [](int k, int group) -> const float* {
    return group == 0 ? (k < 2 ? x_p : x_m) : (k % 2 == 0 ? x_p : x_m);
  };
  auto search = [](const float* xb, const float* weight, const sort_pair* pairs,
                   float max) -> std::optional<iq1_split> {
    float best_score = -3.40282347e+38f, scale = max;
    int besti1 = -1, besti2 = -1, best_k = -1;
    for (int i1 = 0; i1 <= bs; ++i1) {
      for (int i2 = i1; i2 <= bs; ++i2) {
        // the four shift patterns, summed in ggml's order (each element once, in sorted order)
        float sumqx[4] = {}, sumq2[4] = {};
        for (int j = 0; j < bs; ++j) {
          const int v = j < i1 ? 0 : j < i2 ? 1 : 2;
          const int i = pairs[j].idx;
          const float xp = x_p[v], xm = x_m[v];
          const float a = i < bs / 2 ? xp : xm;  // the value under patterns 1 (first group +)
          const float c = i < bs / 2 ? xm : xp;  // and 2 (first group -)
          sumqx[0] += weight[i] * xp * xb[i];
          sumqx[1] += weight[i] * a * xb[i];
          sumqx[2] += weight[i] * c * xb[i];
          sumqx[3] += weight[i] * xm * xb[i];
          sumq2[0] += weight[i] * xp * xp;
          sumq2[1] += weight[i] * a * a;
          sumq2[2] += weight[i] * c * c;
          sumq2[3] += weight[i] * xm * xm;
        }
        for (int k = 0; k < 4; ++k) {
          if (sumq2[k] > 0.0f && sumqx[k] * sumqx[k] > best_score * sumq2[k]) {
            scale = sumqx[k] / sumq2[k];
            best_score = scale * sumqx[k];
            besti1 = i1;
            besti2 = i2;
            best_k = k;
          }
        }
      }
    }
    if (besti1 < 0 || besti2 < 0 || best_k < 0) return std::nullopt;
    return iq1_split{scale, besti1, besti2, best_k};
  };
  auto flip = [](int k) { return 3 - k; };
  auto store = [](block_iq1_m& y, int ib, const uint16_t* index) {
    y.qs[2 * ib] = uint8_t(index[0] & 255);
    y.qs[2 * ib + 1] = uint8_t(index[1] & 255);
    y.qh[ib] = uint8_t((index[0] >> 8) | ((index[1] >> 8) << 4));
  };
  auto finish = [&](block_iq1_m& y, const float* xbl, const float* qbl, float sigma2, float max_scale,
                    const float* scales, const int8_t* shifts) {
    // the 3-bit sub-block scales, then the super-block scale refit to the stored levels
    float weight[bs];
    uint16_t sc[4] = {};
    float d = max_scale / 15.0f;
    const float id = 1.0f / d;
    float sumqx = 0.0f, sumq2 = 0.0f;
    for (int ib = 0; ib < qk_k / bs; ++ib) {
      const int l = scale_code(id, scales[ib], 7);
      sc[ib / 4] = uint16_t(sc[ib / 4] | (l << (3 * (ib % 4))));
      y.qh[ib] |= masks[shifts[ib]];
      const float* xb = xbl + bs * ib;
      imatrix_weights(bs, xb, qbl ? qbl + bs * ib : nullptr, sigma2, weight);
      for (int k = 0; k < bs / 8; ++k) {
        const float* xx = group_values(shifts[ib], k);
        const int point = y.qs[2 * ib + k] + ((y.qh[ib] << (8 - 4 * k)) & 0x700);
        const int8_t* pl = &g.levels[size_t(point) * 8];
        for (int j = 0; j < 8; ++j) {
          const float w = weight[8 * k + j];
          const float q = xx[pl[j]] * float(2 * l + 1);
          sumqx += w * q * xb[8 * k + j];
          sumq2 += w * q * q;
        }
      }
    }
    if (sumq2 > 0.0f) d = sumqx / sumq2;
    const uint16_t s = f32_to_fp16(d * 1.1125f);
    sc[0] = uint16_t(sc[0] | ((s & 0x000f) << 12));
    sc[1] = uint16_t(sc[1] | ((s & 0x00f0) << 8));
    sc[2] = uint16_t(sc[2] | ((s & 0x0f00) << 4));
    sc[3] = uint16_t(sc[3] | (s & 0xf000));
    for (int i = 0; i < 4; ++i) {
      y.scales[2 * i] = uint8_t(sc[i]);
      y.scales[2 * i + 1] = uint8_t(sc[i] >> 8);
    }
  };
  iq1_row<bs>(x, static_cast<block_iq1_m*>(vy), n, qw, k_iq1m_eps, 0, search, flip, group_values, store, finish);
}

void dequantize_row_iq1_m(const void* vx, float* y, int64_t n) {
  const grid_search& g = grid().search;
  const auto* x = static_cast<const block_iq1_m*>(vx);
  for (int64_t b = 0; b < n / qk_k; ++b) {
    uint16_t sc[4];
    for (int i = 0; i < 4; ++i) sc[i] = uint16_t(x[b].scales[2 * i] | (x[b].scales[2 * i + 1] << 8));
    const uint16_t s = uint16_t((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
    const float d = fp16_to_f32(s);
    const uint8_t* qs = x[b].qs;
    const uint8_t* qh = x[b].qh;
    for (int ib = 0; ib < qk_k / 32; ++ib, qs += 4, qh += 2) {
      const float dl1 = d * float(2 * ((sc[ib / 2] >> (6 * (ib % 2))) & 7) + 1);
      const float dl2 = d * float(2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3)) & 7) + 1);
      const int idx[4] = {qs[0] | ((qh[0] << 8) & 0x700), qs[1] | ((qh[0] << 4) & 0x700),
                          qs[2] | ((qh[1] << 8) & 0x700), qs[3] | ((qh[1] << 4) & 0x700)};
      const float delta[4] = {(qh[0] & 0x08) ? -k_delta : k_delta, (qh[0] & 0x80) ? -k_delta : k_delta,
                              (qh[1] & 0x08) ? -k_delta : k_delta, (qh[1] & 0x80) ? -k_delta : k_delta};
      for (int l = 0; l < 4; ++l, y += 8) {
        const float dl = l < 2 ? dl1 : dl2;
        const int8_t* pl = &g.levels[size_t(idx[l]) * 8];
        for (int j = 0; j < 8; ++j) y[j] = dl * (float(pl[j] - 1) + delta[l]);
      }
    }
  }
}

}  // namespace razor::ggml::detail
