// Block-of-32 types (q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, mxfp4) and iq4_xs, which shares the iq4_nl level search.
#include "ggml/quants_internal.h"

namespace razor::ggml::detail {

// ---- q8_0 ---------------------------------------------------------------------------------------

void quantize_row_q8_0(const float* x, void* vy, int64_t n, const float* /*qw: ignored by ggml*/) {
  auto* y = static_cast<block_q8_0*>(vy);
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = max_of(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_fp16(d);
    for (int j = 0; j < 32; ++j) y[b].qs[j] = int8_t(std::round(x[j] * id));
  }
}

void dequantize_row_q8_0(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const block_q8_0*>(vx);
  for (int64_t b = 0; b < n / 32; ++b, y += 32) {
    const float d = fp16_to_f32(x[b].d);
    for (int j = 0; j < 32; ++j) y[j] = float(x[b].qs[j]) * d;
  }
}

// ---- q4_0 ---------------------------------------------------------------------------------------

namespace {

// ggml quantize_row_q4_0_ref: d = (element of largest magnitude) / -8, q = trunc(x/d + 8.5) capped at 15.
void q4_0_plain(const float* x, block_q4_0* y, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, x += 32) {
    float max;
    signed_abs_max<32>(x, &max);
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_fp16(d);
    for (int j = 0; j < 16; ++j) {
      const int lo = min_of(15, int(int8_t(x[j] * id + 8.5f)));
      const int hi = min_of(15, int(int8_t(x[j + 16] * id + 8.5f)));
      y[b].qs[j] = uint8_t(lo | (hi << 4));
    }
  }
}

}  // namespace

void quantize_row_q4_0(const float* x, void* vy, int64_t n, const float* qw) {
  auto* y = static_cast<block_q4_0*>(vy);
  if (!qw) {
    q4_0_plain(x, y, n / 32);
    return;
  }
  // ggml quantize_row_q4_0_impl: weights qw * sqrt(sigma2 + x^2), sigma2 the row's mean square
  float sum_x2 = 0.0f;
  for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
  const float sigma2 = sum_x2 / float(n);
  float w[32];
  int8_t L[32];
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
    const float* qb = qw + 32 * b;
    for (int j = 0; j < 32; ++j) w[j] = qb[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
    const float d = fit_symmetric<32>(8, xb, w, L);
    y[b].d = f32_to_fp16(d);
    for (int j = 0; j < 16; ++j) y[b].qs[j] = uint8_t(L[j] | (L[j + 16] << 4));
  }
}

void dequantize_row_q4_0(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const block_q4_0*>(vx);
  for (int64_t b = 0; b < n / 32; ++b, y += 32) {
    const float d = fp16_to_f32(x[b].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = float((x[b].qs[j] & 0x0f) - 8) * d;
      y[j + 16] = float((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

// ---- q4_1 / q5_0 / q5_1 ------------------------------------------------------------------------

namespace {

// The mean square of the row: the weights of the `_impl` paths are qw * sqrt(sigma2 + x^2).
float row_sigma2(const float* x, int64_t n) {
  float sum_x2 = 0.0f;
  for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
  return sum_x2 / float(n);
}

void block_weights(const float* xb, const float* qb, float sigma2, float* w) {
  for (int j = 0; j < 32; ++j) w[j] = qb[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
}

// Elements j and j+16 share byte j: low nibbles, high nibbles; the 5th bits go to qh (bit j, j+16).
void pack_nibbles(const uint8_t* L, uint8_t* qs, uint8_t* qh) {
  uint32_t h = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = uint8_t((L[j] & 0x0f) | ((L[j + 16] & 0x0f) << 4));
    h |= uint32_t((L[j] & 0x10u) >> 4) << j;
    h |= uint32_t((L[j + 16] & 0x10u) >> 4) << (j + 16);
  }
  if (qh)
    for (int k = 0; k < 4; ++k) qh[k] = uint8_t(h >> (8 * k));
}

// The 5th bits of a q5_0 / q5_1 block as one little-endian word.
inline uint32_t load_qh(const uint8_t* qh) {
  return uint32_t(qh[0]) | (uint32_t(qh[1]) << 8) | (uint32_t(qh[2]) << 16) | (uint32_t(qh[3]) << 24);
}
// The 4-bit level of element j of a block of 32 (pack_nibbles' layout), and its 5-bit level.
inline int nibble(const uint8_t* qs, int j) { return j < 16 ? (qs[j] & 0x0f) : (qs[j - 16] >> 4); }
inline int q5_level(const uint8_t* qs, uint32_t qh, int j) { return nibble(qs, j) | int(((qh >> j) & 1u) << 4); }

// ggml quantize_row_q4_1_ref / q5_1_ref: min and (max - min) / nmax, q = trunc((x - min)/d + 0.5).
// q4_1 caps the level at 15 through an int8 conversion; q5_1 converts to uint8 without a cap.
template <int NMAX>
void affine_plain(const float* x, half* d_out, half* m_out, uint8_t* L) {
  float min = 3.40282347e+38f, max = -3.40282347e+38f;  // FLT_MAX
  for (int j = 0; j < 32; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  const float d = (max - min) / float(NMAX);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  *d_out = f32_to_fp16(d);
  *m_out = f32_to_fp16(min);
  for (int j = 0; j < 32; ++j) {
    const float v = (x[j] - min) * id + 0.5f;
    if constexpr (NMAX == 15)
      L[j] = uint8_t(min_of(15, int(int8_t(v))));
    else
      L[j] = uint8_t(v);
  }
}

// ggml quantize_row_q4_1_impl / q5_1_impl: make_qkx3_quants on the block with rmin -0.9, rdelta 0.05,
// 36 steps; the stored min is the negated offset.
template <int NMAX>
void affine_weighted(const float* xb, const float* w, half* d_out, half* m_out, uint8_t* L) {
  float the_min = 0.0f;
  const float d = fit_affine<32, true>(NMAX, xb, w, L, &the_min, -0.9f, 0.05f, 36, false);
  *d_out = f32_to_fp16(d);
  *m_out = f32_to_fp16(-the_min);
}

}  // namespace

namespace {
// q4_1 (NMAX 15) and q5_1 (NMAX 31): the affine 32-element blocks, weighted or plain (ggml's
// quantize_row_q4_1_impl / q5_1_impl and the _ref paths); q5_1 also stores the fifth bits.
template <int NMAX, class Block>
void quantize_affine_row(const float* x, Block* y, int64_t n, const float* qw) {
  uint8_t L[32];
  float w[32];
  const float sigma2 = qw ? row_sigma2(x, n) : 0.0f;
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
    if (qw) {
      block_weights(xb, qw + 32 * b, sigma2, w);
      affine_weighted<NMAX>(xb, w, &y[b].d, &y[b].m, L);
    } else {
      affine_plain<NMAX>(xb, &y[b].d, &y[b].m, L);
    }
    if constexpr (NMAX == 31)
      pack_nibbles(L, y[b].qs, y[b].qh);
    else
      pack_nibbles(L, y[b].qs, nullptr);
  }
}

// Their dequantization: level * d + m, the level a nibble (q4_1) or a nibble and its 5th bit (q5_1).
template <int NMAX, class Block>
void dequantize_affine_row(const Block* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, y += 32) {
    const float d = fp16_to_f32(x[b].d), m = fp16_to_f32(x[b].m);
    if constexpr (NMAX == 31) {
      const uint32_t qh = load_qh(x[b].qh);
      for (int j = 0; j < 32; ++j) y[j] = float(q5_level(x[b].qs, qh, j)) * d + m;
    } else {
      for (int j = 0; j < 32; ++j) y[j] = float(nibble(x[b].qs, j)) * d + m;
    }
  }
}
}  // namespace

void quantize_row_q4_1(const float* x, void* vy, int64_t n, const float* qw) {
  quantize_affine_row<15>(x, static_cast<block_q4_1*>(vy), n, qw);
}
void dequantize_row_q4_1(const void* vx, float* y, int64_t n) {
  dequantize_affine_row<15>(static_cast<const block_q4_1*>(vx), y, n);
}

void quantize_row_q5_0(const float* x, void* vy, int64_t n, const float* qw) {
  auto* y = static_cast<block_q5_0*>(vy);
  uint8_t L[32];
  if (!qw) {
    // ggml quantize_row_q5_0_ref: d = (element of largest magnitude) / -16, q = trunc(x/d + 16.5) capped at 31
    for (int64_t b = 0; b < n / 32; ++b) {
      const float* xb = x + 32 * b;
      float max;
      signed_abs_max<32>(xb, &max);
      const float d = max / -16.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      y[b].d = f32_to_fp16(d);
      for (int j = 0; j < 32; ++j) L[j] = uint8_t(min_of(31, int(int8_t(xb[j] * id + 16.5f))));
      pack_nibbles(L, y[b].qs, y[b].qh);
    }
    return;
  }
  // ggml quantize_row_q5_0_impl: make_qx_quants with 16 levels each side
  const float sigma2 = row_sigma2(x, n);
  float w[32];
  int8_t Ls[32];
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
    block_weights(xb, qw + 32 * b, sigma2, w);
    y[b].d = f32_to_fp16(fit_symmetric<32>(16, xb, w, Ls));
    for (int j = 0; j < 32; ++j) L[j] = uint8_t(Ls[j]);
    pack_nibbles(L, y[b].qs, y[b].qh);
  }
}

void dequantize_row_q5_0(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const block_q5_0*>(vx);
  for (int64_t b = 0; b < n / 32; ++b, y += 32) {
    const float d = fp16_to_f32(x[b].d);
    const uint32_t qh = load_qh(x[b].qh);
    for (int j = 0; j < 32; ++j) y[j] = float(q5_level(x[b].qs, qh, j) - 16) * d;
  }
}

void quantize_row_q5_1(const float* x, void* vy, int64_t n, const float* qw) {
  quantize_affine_row<31>(x, static_cast<block_q5_1*>(vy), n, qw);
}
void dequantize_row_q5_1(const void* vx, float* y, int64_t n) {
  dequantize_affine_row<31>(static_cast<const block_q5_1*>(vx), y, n);
}

// ---- iq4_nl / iq4_xs ----------------------------------------------------------------------------

namespace {

// Index of the level nearest to v among the 16 sorted kvalues_iq4nl; a tie goes to the upper level.
// Compares 2v with the sum of neighbouring levels, both exact, by a branch-free binary search
// (ggml best_index_int8).
inline int nearest_level(float v) {
  const float v2 = v + v;
  int idx = 0;
  for (int step = 8; step > 0; step >>= 1) {
    const int j = idx + step;
    idx = (v2 >= float(kvalues_iq4nl[j - 1] + kvalues_iq4nl[j])) ? j : idx;
  }
  return idx;
}

constexpr int k_iq4_trials = 7;  // ggml's ntry for quantize_iq4_nl / quantize_iq4_xs

// One super-block of `sb` elements in sub-blocks of 32 (ggml quantize_row_iq4_nl_impl with 16 levels
// and ntry 7). sb == 32 is iq4_nl (one fp16 scale); sb == 256 is iq4_xs (6-bit sub-block scales).
void iq4_superblock(int sb, const float* x, half* dh, uint8_t* q4, uint16_t* scales_h,
                    uint8_t* scales_l, const float* qw) {
  const int8_t* values = kvalues_iq4nl;
  float sigma2 = 0.0f;
  for (int j = 0; j < sb; ++j) sigma2 += x[j] * x[j];
  sigma2 *= 2.0f / float(sb);

  uint8_t L[qk_k];
  float scales[qk_k / 32];
  float weight[32];
  *dh = f32_to_fp16(0.0f);

  float max_scale = 0.0f, amax_scale = 0.0f;
  const int nsub = sb / 32;
  for (int ib = 0; ib < nsub; ++ib) {
    const float* xb = x + 32 * ib;
    uint8_t* Lb = L + 32 * ib;
    imatrix_weights(32, xb, qw ? qw + 32 * ib : nullptr, sigma2, weight);
    float max;
    if (signed_abs_max<32>(xb, &max) < k_group_eps) {
      scales[ib] = 0.0f;
      std::memset(Lb, 0, 32);
      continue;
    }
    float d = -max / float(values[0]);
    float id = 1.0f / d;
    float sumqx = 0.0f, sumq2 = 0.0f;
    for (int j = 0; j < 32; ++j) {
      const int l = nearest_level(id * xb[j]);
      Lb[j] = uint8_t(l);
      const float q = float(values[l]);
      sumqx += weight[j] * q * xb[j];
      sumq2 += weight[j] * q * q;
    }
    d = sumq2 > 0.0f ? sumqx / sumq2 : 0.0f;
    float best = d * sumqx;
    for (int t = -k_iq4_trials; t <= k_iq4_trials; ++t) {
      id = float(t + values[0]) / max;
      sumqx = sumq2 = 0.0f;
      for (int j = 0; j < 32; ++j) {
        const float q = float(values[nearest_level(id * xb[j])]);
        sumqx += weight[j] * q * xb[j];
        sumq2 += weight[j] * q * q;
      }
      if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    scales[ib] = d;
    const float abs_d = std::fabs(d);
    if (abs_d > amax_scale) {
      amax_scale = abs_d;
      max_scale = d;
    }
  }

  if (nsub > 1) {
    *scales_h = 0;
    const float d = -max_scale / 32.0f;
    *dh = f32_to_fp16(d);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int ib = 0; ib < nsub; ++ib) {
      int l = max_of(-32, min_of(31, nearest_int(id * scales[ib])));
      const float dl = d * float(l);
      const float idl = dl != 0.0f ? 1.0f / dl : 0.0f;
      const float* xb = x + 32 * ib;
      uint8_t* Lb = L + 32 * ib;
      for (int j = 0; j < 32; ++j) Lb[j] = uint8_t(nearest_level(idl * xb[j]));
      l += 32;
      const uint8_t lo = uint8_t(l & 0xf), hi = uint8_t(l >> 4);
      if (ib % 2 == 0)
        scales_l[ib / 2] = lo;
      else
        scales_l[ib / 2] |= uint8_t(lo << 4);
      *scales_h = uint16_t(*scales_h | (hi << (2 * (ib % 8))));
    }
  } else {
    *dh = f32_to_fp16(scales[0]);
    const float id = scales[0] != 0.0f ? 1.0f / scales[0] : 0.0f;
    for (int j = 0; j < sb; ++j) L[j] = uint8_t(nearest_level(id * x[j]));
  }

  for (int i = 0; i < sb / 32; ++i)
    for (int j = 0; j < 16; ++j) q4[16 * i + j] = uint8_t(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

}  // namespace

void quantize_row_iq4_nl(const float* x, void* vy, int64_t n, const float* qw) {
  auto* y = static_cast<block_iq4_nl*>(vy);
  uint16_t unused_h = 0;
  for (int64_t b = 0; b < n / 32; ++b)
    iq4_superblock(32, x + 32 * b, &y[b].d, y[b].qs, &unused_h, nullptr, qw ? qw + 32 * b : nullptr);
}

void quantize_row_iq4_xs(const float* x, void* vy, int64_t n, const float* qw) {
  auto* y = static_cast<block_iq4_xs*>(vy);
  for (int64_t b = 0; b < n / qk_k; ++b) {
    uint16_t sh = 0;
    iq4_superblock(qk_k, x + qk_k * b, &y[b].d, y[b].qs, &sh, y[b].scales_l,
                   qw ? qw + qk_k * b : nullptr);
    y[b].scales_h = sh;
  }
}

void dequantize_row_iq4_nl(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const block_iq4_nl*>(vx);
  for (int64_t b = 0; b < n / 32; ++b, y += 32) {
    const float d = fp16_to_f32(x[b].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * float(kvalues_iq4nl[x[b].qs[j] & 0xf]);
      y[j + 16] = d * float(kvalues_iq4nl[x[b].qs[j] >> 4]);
    }
  }
}

void dequantize_row_iq4_xs(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const block_iq4_xs*>(vx);
  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float d = fp16_to_f32(x[b].d);
    const uint8_t* qs = x[b].qs;
    for (int ib = 0; ib < qk_k / 32; ++ib, y += 32, qs += 16) {
      const int ls = scale_nibble(x[b].scales_l, ib) | (((x[b].scales_h >> (2 * ib)) & 3) << 4);
      const float dl = d * float(ls - 32);
      for (int j = 0; j < 16; ++j) {
        y[j] = dl * float(kvalues_iq4nl[qs[j] & 0xf]);
        y[j + 16] = dl * float(kvalues_iq4nl[qs[j] >> 4]);
      }
    }
  }
}

}  // namespace razor::ggml::detail

namespace razor::ggml::detail {

// ---- mxfp4 --------------------------------------------------------------------------------------
// ggml's quantize_row_mxfp4_ref (importance weights ignored): per block the E8M0 exponent
// e = floor(log2(max |x|)) - 2 + 127 (0 for an all-zero block; the float converted through int, as ggml's cast
// does on x86), then each value the level of kvalues_mxfp4 nearest to it at scale 2^(e-128) (first on a tie).

namespace {

// 2^(e - 128): E8M0's 2^(e - 127) halved (the levels are doubled); e < 2 gives a float subnormal.
float e8m0_half(uint8_t e) { return std::bit_cast<float>(e < 2 ? uint32_t(0x00200000) << e : uint32_t(e - 1) << 23); }

uint8_t mxfp4_nearest(float x, float d) {
  int best = 0;
  float best_err = std::fabs(float(kvalues_mxfp4[0]) * d - x);
  for (int i = 1; i < 16; ++i) {
    const float err = std::fabs(float(kvalues_mxfp4[i]) * d - x);
    if (err < best_err) best = i, best_err = err;
  }
  return uint8_t(best);
}

}  // namespace

void quantize_row_mxfp4(const float* x, void* vy, int64_t n, const float* /*qw: ignored by ggml*/) {
  auto* y = static_cast<block_mxfp4*>(vy);
  for (int64_t b = 0; b < n / qk_32; ++b, x += qk_32) {
    float amax = 0.0f;
    for (int j = 0; j < qk_32; ++j)
      if (amax < std::fabs(x[j])) amax = std::fabs(x[j]);
    const uint8_t e = amax > 0.0f ? uint8_t(int(std::floor(std::log2(amax)) - 2.0f + 127.0f)) : 0;
    const float d = e8m0_half(e);
    y[b].e = e;
    for (int j = 0; j < qk_32 / 2; ++j)
      y[b].qs[j] = uint8_t(mxfp4_nearest(x[j], d) | mxfp4_nearest(x[j + qk_32 / 2], d) << 4);
  }
}

void dequantize_row_mxfp4(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const block_mxfp4*>(vx);
  for (int64_t b = 0; b < n / qk_32; ++b, y += qk_32) {
    const float d = e8m0_half(x[b].e);
    for (int j = 0; j < qk_32 / 2; ++j) {
      y[j] = float(kvalues_mxfp4[x[b].qs[j] & 0xf]) * d;
      y[j + qk_32 / 2] = float(kvalues_mxfp4[x[b].qs[j] >> 4]) * d;
    }
  }
}

}  // namespace razor::ggml::detail
