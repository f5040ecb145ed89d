// iq3_xxs: 3.0625 bits per weight. Each group of 4 magnitudes is one of 256 points of a D4-like lattice
// (iq3xxs_grid), each group of 8 signs one of 128 even-parity sign patterns (ksigns), and each 32
// weights share a 4-bit scale under one fp16 super-block scale.
//
// The 256 grid points are a fact of the format: kgrid_256 below lists, for each point, its four 3-bit
// levels l (point = (2l+1) per coordinate in quantizer units). The dequantization table iq3xxs_grid
// stores the byte magnitudes 8l+4 (l = 7 stores 62) and is derived from it here. ggml's quantizer also
// needs, for every one of the 4096 level combinations that is not a grid point, the grid points at the
// two smallest squared distances (ggml iq3xs_init_impl); we build that once, thread-safely.
#include <algorithm>
#include <mutex>
#include <vector>

#include "ggml/quants_internal.h"

namespace razor::ggml::detail {

namespace {

// The 256 grid points of iq3_xxs, as 12-bit level codes (3 bits per coordinate, coordinate 0 lowest).
constexpr uint16_t kgrid_256[256] = {
    0,    2,    4,    9,    11,   15,   16,   18,   25,   34,   59,   61,   65,   67,   72,   74,
    81,   85,   88,   90,   97,   108,  120,  128,  130,  132,  137,  144,  146,  153,  155,  159,
    169,  175,  189,  193,  199,  200,  202,  213,  248,  267,  287,  292,  303,  315,  317,  321,
    327,  346,  362,  413,  436,  456,  460,  462,  483,  497,  513,  515,  520,  522,  529,  531,
    536,  538,  540,  551,  552,  576,  578,  585,  592,  594,  641,  643,  648,  650,  657,  664,
    698,  704,  706,  720,  729,  742,  758,  769,  773,  808,  848,  852,  870,  889,  901,  978,
    992,  1024, 1026, 1033, 1035, 1040, 1042, 1046, 1049, 1058, 1089, 1091, 1093, 1096, 1098, 1105,
    1112, 1139, 1143, 1144, 1152, 1154, 1161, 1167, 1168, 1170, 1183, 1184, 1197, 1217, 1224, 1228,
    1272, 1276, 1309, 1323, 1347, 1367, 1377, 1404, 1473, 1475, 1486, 1509, 1537, 1544, 1546, 1553,
    1555, 1576, 1589, 1594, 1600, 1602, 1616, 1625, 1636, 1638, 1665, 1667, 1672, 1685, 1706, 1722,
    1737, 1755, 1816, 1831, 1850, 1856, 1862, 1874, 1901, 1932, 1950, 1971, 2011, 2032, 2052, 2063,
    2077, 2079, 2091, 2095, 2172, 2192, 2207, 2208, 2224, 2230, 2247, 2277, 2308, 2345, 2356, 2389,
    2403, 2424, 2501, 2504, 2506, 2520, 2570, 2593, 2616, 2624, 2630, 2646, 2669, 2700, 2714, 2746,
    2754, 2795, 2824, 2835, 2839, 2874, 2882, 2905, 2984, 3028, 3042, 3092, 3108, 3110, 3124, 3153,
    3185, 3215, 3252, 3288, 3294, 3364, 3397, 3434, 3483, 3523, 3537, 3587, 3589, 3591, 3592, 3610,
    3626, 3670, 3680, 3722, 3749, 3754, 3776, 3789, 3803, 3824, 3857, 3873, 3904, 3906, 3924, 3992,
};

constexpr int k_codes = 4096;  // 8^4 level combinations

struct iq3_tables {
  uint32_t dequant_grid[256];  // iq3xxs_grid: four byte magnitudes per point
  int8_t levels[256][4];       // the point's levels l (0..7)
  uint8_t signs[128];          // ksigns: 7 sign bits + parity bit
  int16_t code_to_point[k_codes];  // grid index, or -1
  // For a code off the grid: its candidates, nearest first (ties by grid index), at the two
  // smallest distinct squared distances.
  std::vector<uint16_t> candidates;
  int32_t cand_begin[k_codes + 1];
};

iq3_tables* g_tables = nullptr;
std::once_flag g_tables_once;

void build_tables() {
  auto* t = new iq3_tables();
  for (int k = 0; k < 256; ++k) {
    uint32_t word = 0;
    for (int c = 0; c < 4; ++c) {
      const int l = (kgrid_256[k] >> (3 * c)) & 7;
      t->levels[k][c] = int8_t(l);
      const uint32_t mag = l == 7 ? 62u : uint32_t(8 * l + 4);
      word |= mag << (8 * c);
    }
    t->dequant_grid[k] = word;
  }
  for (int i = 0; i < 128; ++i) t->signs[i] = uint8_t(i | ((std::popcount(unsigned(i)) & 1) << 7));

  std::fill(std::begin(t->code_to_point), std::end(t->code_to_point), int16_t(-1));
  for (int k = 0; k < 256; ++k) t->code_to_point[kgrid_256[k]] = int16_t(k);

  std::vector<std::pair<int, int>> dist(256);  // (squared distance, grid index)
  for (int code = 0; code < k_codes; ++code) {
    t->cand_begin[code] = int32_t(t->candidates.size());
    if (t->code_to_point[code] >= 0) continue;
    for (int k = 0; k < 256; ++k) {
      int d2 = 0;
      for (int c = 0; c < 4; ++c) {
        const int diff = 2 * (t->levels[k][c] - ((code >> (3 * c)) & 7));  // in 2l+1 units
        d2 += diff * diff;
      }
      dist[size_t(k)] = {d2, k};
    }
    std::sort(dist.begin(), dist.end());
    int distinct = 1;
    int cur = dist[0].first;
    for (const auto& [d2, k] : dist) {
      if (d2 > cur) {
        if (distinct == 2) break;
        cur = d2;
        ++distinct;
      }
      t->candidates.push_back(uint16_t(k));
    }
  }
  t->cand_begin[k_codes] = int32_t(t->candidates.size());
  g_tables = t;  // lives for the process: read-only after construction
}

const iq3_tables& tables() {
  std::call_once(g_tables_once, build_tables);
  return *g_tables;
}

// Best candidate grid point for an off-grid group: smallest weighted squared distance to xval at the
// given scale, first one on ties (ggml iq3_find_best_neighbour). Writes the point's levels to L.
int best_candidate(const iq3_tables& t, int code, const float* xval, const float* w, float scale,
                   int8_t* L) {
  float best_d2 = 3.40282347e+38f;  // FLT_MAX
  int best = -1;
  for (int32_t c = t.cand_begin[code]; c < t.cand_begin[code + 1]; ++c) {
    const int k = t.candidates[size_t(c)];
    float d2 = 0.0f;
    for (int i = 0; i < 4; ++i) {
      const float q = float(2 * t.levels[k][i] + 1);
      const float diff = scale * q - xval[i];
      d2 += w[i] * diff * diff;
    }
    if (d2 < best_d2) {
      best_d2 = d2;
      best = k;
    }
  }
  for (int i = 0; i < 4; ++i) L[i] = t.levels[best][i];
  return best;
}

inline int group_code(const int8_t* L) { return L[0] | (L[1] << 3) | (L[2] << 6) | (L[3] << 9); }

constexpr float k_iq3_eps = 1e-8f;   // ggml GROUP_MAX_EPS_IQ3_XXS
constexpr int k_max_q = 8;           // levels per coordinate

}  // namespace

void quantize_row_iq3_xxs(const float* x, void* vy, int64_t n, const float* qw) {
  const iq3_tables& t = tables();
  auto* y = static_cast<block_iq3_xxs*>(vy);

  float scales[qk_k / 32], weight[32], xval[32], waux[32];
  int8_t L[32], Laux[32];
  bool on_grid[8], on_grid_aux[8];
  uint8_t block_signs[4];

  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float* xbl = x + qk_k * b;
    uint8_t q3[3 * qk_k / 8] = {};
    uint8_t* idx = q3;  // 64 grid indices
    auto* scales_and_signs = reinterpret_cast<uint8_t*>(q3 + qk_k / 4);  // 8 little-endian u32
    uint32_t sas[8] = {};
    y[b].d = f32_to_fp16(0.0f);

    float sumx2 = 0.0f;
    for (int i = 0; i < qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = 2.0f * sumx2 / float(qk_k);
    float max_scale = 0.0f;

    for (int ib = 0; ib < qk_k / 32; ++ib) {
      const float* xb = xbl + 32 * ib;
      if (qw) {
        const float* qb = qw + qk_k * b + 32 * ib;
        for (int i = 0; i < 32; ++i) weight[i] = qb[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
      } else {
        for (int i = 0; i < 32; ++i) weight[i] = xb[i] * xb[i];
      }
      for (int i = 0; i < 32; ++i) waux[i] = std::sqrt(weight[i]);

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

      // trial inverse scales around 15/max; keep the one with the best weighted fit
      float best = 0.0f;
      float scale = max / float(2 * k_max_q - 1);
      for (int k = 0; k < 8; ++k) on_grid[k] = true;
      for (int step = -15; step <= 15; ++step) {
        const float id = (float(2 * k_max_q - 1) + float(step) * 0.2f) / max;
        const float this_scale = 1.0f / id;
        for (int k = 0; k < 8; ++k) {
          for (int i = 0; i < 4; ++i) {
            const int l = nearest_int(0.5f * (id * xval[4 * k + i] - 1.0f));
            Laux[4 * k + i] = int8_t(max_of(0, min_of(k_max_q - 1, l)));
          }
          const int code = group_code(Laux + 4 * k);
          on_grid_aux[k] = t.code_to_point[code] >= 0;
          if (!on_grid_aux[k]) best_candidate(t, code, xval + 4 * k, waux + 4 * k, this_scale, Laux + 4 * k);
        }
        float sumqx = 0.0f, sumq2 = 0.0f;
        for (int i = 0; i < 32; ++i) {
          const float q = float(2 * Laux[i] + 1);
          sumqx += weight[i] * xval[i] * q;
          sumq2 += weight[i] * q * q;
        }
        if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
          scale = sumqx / sumq2;
          best = scale * sumqx;
          std::memcpy(L, Laux, sizeof L);
          std::memcpy(on_grid, on_grid_aux, sizeof on_grid);
        }
      }
      // re-place the off-grid groups at the chosen scale, then refit the scale
      int off_grid = 0;
      for (int k = 0; k < 8; ++k) off_grid += on_grid[k] ? 0 : 1;
      if (off_grid > 0 && scale > 0.0f) {
        const float id = 1.0f / scale;
        for (int k = 0; k < 8; ++k) {
          if (on_grid[k]) continue;
          int8_t lv[4];
          for (int i = 0; i < 4; ++i) {
            const int l = nearest_int(0.5f * (id * xval[4 * k + i] - 1.0f));
            lv[i] = int8_t(max_of(0, min_of(k_max_q - 1, l)));
          }
          const int code = group_code(lv);
          int point = t.code_to_point[code];
          if (point < 0) point = best_candidate(t, code, xval + 4 * k, waux + 4 * k, scale, L + 4 * k);
          for (int i = 0; i < 4; ++i) L[4 * k + i] = t.levels[point][i];
        }
        float sumqx = 0.0f, sumq2 = 0.0f;
        for (int i = 0; i < 32; ++i) {
          const float q = float(2 * L[i] + 1);
          sumqx += weight[i] * xval[i] * q;
          sumq2 += weight[i] * q * q;
        }
        if (sumq2 > 0.0f) scale = sumqx / sumq2;
      }
      if (scale < 0.0f) {  // cannot happen with non-negative xval; kept as ggml keeps it
        scale = -scale;
        for (int k = 0; k < 4; ++k) block_signs[k] = uint8_t(~block_signs[k] & 127);
      }
      for (int k = 0; k < 8; ++k) {
        // every group is on the grid here: either it was, or best_candidate put it there
        idx[8 * ib + k] = uint8_t(t.code_to_point[group_code(L + 4 * k)]);
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
  const iq3_tables& t = tables();
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
        const uint8_t s = t.signs[(w >> (7 * l)) & 127];
        const uint32_t g1 = t.dequant_grid[qs[2 * l]], g2 = t.dequant_grid[qs[2 * l + 1]];
        for (int j = 0; j < 4; ++j) {
          y[j] = db * float((g1 >> (8 * j)) & 0xff) * ((s & (1u << j)) ? -1.0f : 1.0f);
          y[j + 4] = db * float((g2 >> (8 * j)) & 0xff) * ((s & (1u << (j + 4))) ? -1.0f : 1.0f);
        }
      }
    }
  }
}

}  // namespace razor::ggml::detail
