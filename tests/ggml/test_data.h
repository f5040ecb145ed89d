// Deterministic test matrices for the ggml quantizer tests, and a minimal BF16 safetensors reader for the
// bundled fixture model (the full reader lives in core/model; these tests do not depend on it).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/numeric.h"

namespace razor_test {

struct matrix {
  std::string name;
  int64_t nrows = 0;
  int64_t n_per_row = 0;
  std::vector<float> data;
};

// The random values of the CPU and GPU quantizer tests' matrices: one generator, and the distributions both
// test sets use (each drawing in a fixed order).
struct draws {
  std::mt19937 rng;
  std::normal_distribution<float> gauss{0.0f, 1.0f};
  std::uniform_real_distribution<float> unif{0.0f, 1.0f};
  explicit draws(uint32_t seed) : rng(seed) {}
  // heavy tails: a Student-t-like ratio plus 0.5% outliers 30-100x larger
  float heavy_tailed() {
    float v = 0.01f * gauss(rng) / std::sqrt(0.05f + unif(rng));
    if (unif(rng) < 0.005f) v *= 30.0f + 70.0f * unif(rng);
    return v;
  }
  // rows that mix zero sub-blocks, constant runs and sparse spikes
  float sparse_blocks(int64_t r, int64_t c) {
    const int64_t blk = (c / 32 + r) % 5;
    if (blk == 0) return 0.0f;
    if (blk == 1) return 0.5f;
    if (blk == 2) return unif(rng) < 0.1f ? gauss(rng) : 0.0f;
    if (blk == 3) return -std::fabs(gauss(rng)) * 0.1f;
    return std::fabs(gauss(rng)) * 0.1f;
  }
  // magnitudes around the fp16 subnormal range (2^-24 .. 2^-14) and below, by row
  float tiny_mixed(int64_t r) { return std::ldexp(gauss(rng), -12 - int(r % 20)); }
};

// The distributions every type is tested on. n_per_row must be a multiple of 256 for the k-quants.
inline std::vector<matrix> synthetic_matrices(int64_t nrows, int64_t n_per_row, uint32_t seed) {
  std::vector<matrix> out;
  draws dr(seed);
  auto& rng = dr.rng;
  auto& gauss = dr.gauss;
  auto& unif = dr.unif;
  auto make = [&](const char* name, auto&& gen) {
    matrix m{name, nrows, n_per_row, std::vector<float>(size_t(nrows * n_per_row))};
    for (int64_t r = 0; r < nrows; ++r)
      for (int64_t c = 0; c < n_per_row; ++c) m.data[size_t(r * n_per_row + c)] = gen(r, c);
    out.push_back(std::move(m));
  };
  make("gaussian", [&](int64_t, int64_t) { return 0.02f * gauss(rng); });
  make("gaussian_unit", [&](int64_t, int64_t) { return gauss(rng); });
  make("heavy_tailed", [&](int64_t, int64_t) { return dr.heavy_tailed(); });
  make("all_zero", [&](int64_t, int64_t) { return 0.0f; });
  make("sparse_blocks", [&](int64_t r, int64_t c) { return dr.sparse_blocks(r, c); });
  // magnitudes around the fp16 subnormal range (2^-24 .. 2^-14) and below
  make("tiny_1e-4", [&](int64_t, int64_t) { return 1e-4f * gauss(rng); });
  make("tiny_1e-6", [&](int64_t, int64_t) { return 1e-6f * gauss(rng); });
  make("tiny_1e-8", [&](int64_t, int64_t) { return 3e-8f * gauss(rng); });
  make("tiny_mixed", [&](int64_t r, int64_t) { return dr.tiny_mixed(r); });
  // exact multiples of a quarter: ties in every rounding step
  make("quarter_grid", [&](int64_t, int64_t) { return 0.25f * float(int(std::lround(4.0f * gauss(rng)))); });
  make("uniform_positive", [&](int64_t, int64_t) { return unif(rng); });
  make("large", [&](int64_t, int64_t) { return 300.0f * gauss(rng); });
  return out;
}

// Importance weights, one per column: positive log-normal, and a variant with dead (zero) columns.
inline std::vector<float> synthetic_imatrix(int64_t n_per_row, uint32_t seed, bool with_zeros) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(n_per_row));
  for (int64_t c = 0; c < n_per_row; ++c) {
    w[size_t(c)] = std::exp(1.5f * gauss(rng));
    if (with_zeros && c % 7 == 3) w[size_t(c)] = 0.0f;
  }
  return w;
}

// BF16 2-D tensors of a safetensors file, widened to float. Empty on any parse error (the caller skips).
inline std::vector<matrix> read_bf16_safetensors(const std::string& path, const std::vector<std::string>& names) {
  std::vector<matrix> out;
  std::ifstream f(path, std::ios::binary);
  if (!f) return out;
  uint64_t hlen = 0;
  f.read(reinterpret_cast<char*>(&hlen), 8);
  if (!f || hlen > (64u << 20)) return out;
  std::string header(size_t(hlen), '\0');
  f.read(header.data(), std::streamsize(hlen));
  auto j = nlohmann::json::parse(header, nullptr, false);
  if (j.is_discarded()) return out;
  for (const auto& name : names) {
    if (!j.contains(name)) continue;
    const auto& t = j[name];
    if (t.value("dtype", "") != "BF16" || t["shape"].size() != 2) continue;
    const int64_t rows = t["shape"][0].get<int64_t>(), cols = t["shape"][1].get<int64_t>();
    const uint64_t begin = t["data_offsets"][0].get<uint64_t>();
    std::vector<uint16_t> raw(size_t(rows * cols));
    f.seekg(std::streamoff(8 + hlen + begin));
    f.read(reinterpret_cast<char*>(raw.data()), std::streamsize(raw.size() * 2));
    if (!f) return {};
    matrix m{name, rows, cols, std::vector<float>(raw.size())};
    for (size_t i = 0; i < raw.size(); ++i) m.data[i] = razor::bf16_to_f32(raw[i]);
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace razor_test
