#include "model/qwen3_next_rows.h"

#include <cstddef>

namespace razor {

std::vector<int64_t> qkvz_split_rows(int64_t n_k, int64_t n_v, int64_t dk, int64_t dv) {
  const int64_t r = n_k > 0 ? n_v / n_k : 0, vg = r * dv, group = 2 * dk + 2 * vg;
  std::vector<int64_t> rows;
  rows.reserve(size_t(n_k * group));
  for (int part = 0; part < 2; ++part)  // q, then k: dk rows of each key head
    for (int64_t g = 0; g < n_k; ++g)
      for (int64_t i = 0; i < dk; ++i) rows.push_back(g * group + part * dk + i);
  for (int part = 0; part < 2; ++part)  // v, then z: r x dv rows of each key head
    for (int64_t g = 0; g < n_k; ++g)
      for (int64_t i = 0; i < vg; ++i) rows.push_back(g * group + 2 * dk + part * vg + i);
  return rows;
}

std::vector<int64_t> ba_split_rows(int64_t n_k, int64_t n_v) {
  const int64_t r = n_k > 0 ? n_v / n_k : 0;
  std::vector<int64_t> rows;
  rows.reserve(size_t(2 * n_v));
  for (int part = 0; part < 2; ++part)
    for (int64_t g = 0; g < n_k; ++g)
      for (int64_t j = 0; j < r; ++j) rows.push_back(g * 2 * r + part * r + j);
  return rows;
}

}  // namespace razor
