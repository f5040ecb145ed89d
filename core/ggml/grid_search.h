// The search tables of the grid quantizers (iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s), built from a compact
// grid (grids.h). ggml's quantizers round each coordinate of a group to a level, read the group's levels as
// one code, and either find the code on the grid or search a list of nearby grid points for the one that
// fits best (iq2xs_init_impl / iq3xs_init_impl in ggml-quants.c). For a code off the grid, the list holds
// every grid point at the `nwant` smallest distinct squared distances, ordered by (distance, grid index);
// the order matters, because the search keeps the first of equally good points.
//
// Header-only (inline) so that the CUDA packer's host code builds the same tables (kernels/ggml/iq3_xxs.cu
// uploads those of iq3_xxs). Host code only.
#pragma once
#include <stdint.h>

#include <algorithm>
#include <vector>

namespace razor::ggml {

struct grid_search {
  int ncoord = 0;                    // coordinates per group (8 for iq2, 4 for iq3)
  int bits = 0;                      // bits per level in a code (2 or 3)
  int npoints = 0;
  std::vector<int8_t> levels;        // npoints x ncoord: the level l of each coordinate (point = 2l+1)
  std::vector<int16_t> code_to_point;  // 1 << (ncoord*bits) codes: grid index, or -1 off the grid
  std::vector<int32_t> cand_begin;   // per code (+1): the code's candidates are
  std::vector<uint16_t> candidates;  //   candidates[cand_begin[c] .. cand_begin[c+1])
  // The candidates' levels transposed per code, for searching several candidates at once: the C
  // candidates of a code start at cand_begin[code] * ncoord, coordinate i of candidate j at i*C + j.
  std::vector<int8_t> cand_levels_t;
  int max_candidates = 0;            // the longest list

  int code_of(const int8_t* L) const {
    int c = 0;
    for (int i = 0; i < ncoord; ++i) c |= int(L[i]) << (bits * i);
    return c;
  }
};

// kgrid: npoints codes (coordinate i in bits [bits*i, bits*i+bits)). Candidates are built for the codes
// whose every level is at most max_level (the quantizers clamp levels to that), nwant distances deep.
inline grid_search build_grid_search(const uint16_t* kgrid, int npoints, int ncoord, int bits, int max_level,
                                     int nwant) {
  grid_search g;
  g.ncoord = ncoord;
  g.bits = bits;
  g.npoints = npoints;
  const int mask = (1 << bits) - 1;
  const int ncodes = 1 << (ncoord * bits);
  g.levels.resize(size_t(npoints) * size_t(ncoord));
  for (int k = 0; k < npoints; ++k)
    for (int i = 0; i < ncoord; ++i) g.levels[size_t(k * ncoord + i)] = int8_t((kgrid[k] >> (bits * i)) & mask);
  g.code_to_point.assign(size_t(ncodes), int16_t(-1));
  for (int k = 0; k < npoints; ++k) g.code_to_point[kgrid[k]] = int16_t(k);
  g.cand_begin.assign(size_t(ncodes) + 1, 0);

  std::vector<int> d2(static_cast<size_t>(npoints));
  int lv[16];
  for (int code = 0; code < ncodes; ++code) {
    g.cand_begin[size_t(code)] = int32_t(g.candidates.size());
    if (g.code_to_point[size_t(code)] >= 0) continue;
    bool in_range = true;
    for (int i = 0; i < ncoord; ++i) {
      lv[i] = (code >> (bits * i)) & mask;
      in_range = in_range && lv[i] <= max_level;
    }
    if (!in_range) continue;
    for (int k = 0; k < npoints; ++k) {
      int s = 0;
      const int8_t* pl = &g.levels[size_t(k * ncoord)];
      for (int i = 0; i < ncoord; ++i) {
        const int diff = 2 * (pl[i] - lv[i]);  // in units of the points 2l+1
        s += diff * diff;
      }
      d2[size_t(k)] = s;
    }
    // the nwant smallest distinct distances, then every point at or below the last of them, by index
    int cut = -1, found = 0, prev = -1;
    while (found < nwant) {
      int next = -1;
      for (int k = 0; k < npoints; ++k)
        if (d2[size_t(k)] > prev && (next < 0 || d2[size_t(k)] < next)) next = d2[size_t(k)];
      if (next < 0) break;
      cut = prev = next;
      ++found;
    }
    std::vector<std::pair<int, int>> sel;
    for (int k = 0; k < npoints; ++k)
      if (d2[size_t(k)] <= cut) sel.push_back({d2[size_t(k)], k});
    std::sort(sel.begin(), sel.end());
    for (const auto& [d, k] : sel) g.candidates.push_back(uint16_t(k));
    g.max_candidates = std::max(g.max_candidates, int(sel.size()));
  }
  g.cand_begin[size_t(ncodes)] = int32_t(g.candidates.size());
  g.cand_levels_t.resize(g.candidates.size() * size_t(ncoord));
  for (int code = 0; code < ncodes; ++code) {
    const size_t b = size_t(g.cand_begin[size_t(code)]);
    const size_t nc = size_t(g.cand_begin[size_t(code) + 1]) - b;
    for (size_t j = 0; j < nc; ++j)
      for (int i = 0; i < ncoord; ++i)
        g.cand_levels_t[b * size_t(ncoord) + size_t(i) * nc + j] = g.levels[size_t(g.candidates[b + j]) * size_t(ncoord) + size_t(i)];
  }
  return g;
}

}  // namespace razor::ggml
