// The k-quants: q2_K, q3_K, q4_K, q5_K, q6_K (super-blocks of 256 with sub-block scales).
// Without importance weights each follows ggml's quantize_row_<t>_ref; with weights, ggml's
// quantize_row_<t>_impl (q6_K: make_qx_quants on the raw weights).
#include "ggml/quants_internal.h"

#include <type_traits>

namespace razor::ggml::detail {

namespace {

// 2-bit fields of a 128-element half: byte l holds elements l, l+32, l+64, l+96 (q2_K, q3_K).
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int kq = 0; kq < qk_k / 4; ++kq) qs[kq] = pack_2bit_byte(L, kq);
}

inline void unpack_scale_min(int j, const uint8_t* s, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = uint8_t((s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4));
    *m = uint8_t((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

inline int8_t unpack_q3_scale(const uint8_t* s, int j) {
  int8_t sc = int8_t(j < 8 ? (s[j] & 0xf) : (s[j - 8] >> 4));
  return int8_t((sc | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
}

// The importance weights of a super-block's 16 sub-blocks of 16 (imatrix_weights) and the sum of each
// sub-block's (q2_K and q3_K with an imatrix).
void weights_16(const float* x, const float* qrow, float sigma2, float* weight, float* sw) {
  for (int j = 0; j < 16; ++j) {
    imatrix_weights(16, x + 16 * j, qrow + 16 * j, sigma2, weight + 16 * j);
    float s = 0.0f;
    for (int l = 0; l < 16; ++l) s += weight[16 * j + l];
    sw[j] = s;
  }
}

// fit_affine<N, V3> on each of nsub sub-blocks of N (nsub a multiple of 8): the lane form, 8 sub-blocks a
// call, or the scalar ground truth one sub-block at a time. Per sub-block: its scale and min.
template <bool lanes, int N, bool V3>
void fit_affine_subblocks(int nsub, int nmax, const float* x, const float* w, uint8_t* L, float* mins, float* scales,
                          float rmin, float rdelta, int nstep, bool mad) {
  if (lanes) {
    for (int h = 0; h < nsub / 8; ++h)
      fit_affine_x8(N, nmax, x + 8 * N * h, w + 8 * N * h, L + 8 * N * h, mins + 8 * h, scales + 8 * h, rmin, rdelta,
                    nstep, mad, V3);
  } else {
    for (int j = 0; j < nsub; ++j)
      scales[j] = fit_affine<N, V3>(nmax, x + N * j, w + N * j, L + N * j, &mins[j], rmin, rdelta, nstep, mad);
  }
}

// fit_symmetric on the 16 sub-blocks of 16 of a super-block (w null: x*x), lane form or scalar ground truth.
template <bool lanes>
void fit_symmetric_subblocks(int nmax, const float* x, const float* w, int8_t* L, float* scales) {
  if (lanes) {
    fit_symmetric_x16(16, nmax, x, w, L, scales);
  } else {
    for (int j = 0; j < 16; ++j) scales[j] = fit_symmetric<16>(nmax, x + 16 * j, w ? w + 16 * j : nullptr, L + 16 * j);
  }
}

// Requantizes the sub-blocks of 16 of q2_K against the stored (rounded) scales and mins.
void q2_requantize(const float* x, const block_q2_k& y, uint8_t* L) {
  const float dall = fp16_to_f32(y.d), mall = fp16_to_f32(y.dmin);
  for (int j = 0; j < qk_k / 16; ++j) {
    requantize_affine<16>(x + 16 * j, dall * float(y.scales[j] & 0xf), mall * float(y.scales[j] >> 4), 3,
                          L + 16 * j);
  }
}

// q3_K: requantize against the stored scales, then split the high bit into hmask.
void q3_finish(const float* x, block_q3_k& y, int8_t* L) {
  const float dall = fp16_to_f32(y.d);
  for (int j = 0; j < qk_k / 16; ++j) {
    requantize_symmetric<16>(x + 16 * j, dall * float(unpack_q3_scale(y.scales, j)), -4, 3, L + 16 * j);
  }
  std::memset(y.hmask, 0, sizeof y.hmask);
  for (int j = 0; j < qk_k; ++j) {
    if (L[j] > 3) {
      y.hmask[j % 32] |= uint8_t(1u << (j / 32));
      L[j] = int8_t(L[j] - 4);
    }
  }
  uint8_t U[qk_k];
  for (int j = 0; j < qk_k; ++j) U[j] = uint8_t(L[j]);
  pack_2bit(U, y.qs);
}

// q4_K / q5_K: requantize the sub-blocks of 32 against the stored scales and mins.
void k4_requantize(const float* x, const uint8_t* scales, half dh, half mh, int nmax, uint8_t* L) {
  const float dall = fp16_to_f32(dh), mall = fp16_to_f32(mh);
  for (int j = 0; j < qk_k / 32; ++j) {
    uint8_t sc, m;
    unpack_scale_min(j, scales, &sc, &m);
    requantize_affine<32>(x + 32 * j, dall * float(sc), mall * float(m), nmax, L + 32 * j);
  }
}

void pack_q4_k(const uint8_t* L, uint8_t* q) {
  for (int j = 0; j < qk_k; j += 64, q += 32)
    for (int l = 0; l < 32; ++l) q[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
}

void pack_q5_k(const uint8_t* L, uint8_t* qh, uint8_t* ql) {
  std::memset(qh, 0, qk_k / 8);
  uint8_t m1 = 1, m2 = 2;
  for (int n = 0; n < qk_k; n += 64, ql += 32) {
    for (int j = 0; j < 32; ++j) {
      int l1 = L[n + j];
      if (l1 > 15) {
        l1 -= 16;
        qh[j] |= m1;
      }
      int l2 = L[n + j + 32];
      if (l2 > 15) {
        l2 -= 16;
        qh[j] |= m2;
      }
      ql[j] = uint8_t(l1 | (l2 << 4));
    }
    m1 = uint8_t(m1 << 2);
    m2 = uint8_t(m2 << 2);
  }
}

// A row of n elements, super-block by super-block: quantize(x, qb, block) with the super-block's qk_k values,
// their importance weights (null without an imatrix) and the block it writes.
template <class Block>
void superblock_row(const float* x, void* vy, int64_t n, const float* qw,
                    void (*quantize)(const float*, const float*, Block&)) {
  auto* y = static_cast<Block*>(vy);
  for (int64_t b = 0; b < n / qk_k; ++b) quantize(x + qk_k * b, qw ? qw + qk_k * b : nullptr, y[b]);
}

// Sub-block fit of q4_K / q5_K: 8 sub-blocks of 32 with affine levels 0..nmax, then 6-bit scales and
// mins against the super-block maxima (ref) or fitted by fit_positive (weights given).
template <bool lanes>
void k4_superblock(const float* x, const float* qw, int nmax, half* dh, half* mh, uint8_t* scales,
                   uint8_t* L) {
  float mins[8], sc[8], weights[qk_k];
  std::memset(scales, 0, 12);
  if (!qw) {
    // ggml quantize_row_q4_K_ref / q5_K_ref
    const float rmin = nmax == 15 ? -1.0f : -0.5f;
    const int nstep = nmax == 15 ? 20 : 15;
    for (int j = 0; j < 8; ++j) {
      const float* xb = x + 32 * j;
      float sum_x2 = 0.0f;
      for (int l = 0; l < 32; ++l) sum_x2 += xb[l] * xb[l];
      const float av_x = std::sqrt(sum_x2 / 32.0f);
      for (int l = 0; l < 32; ++l) weights[32 * j + l] = av_x + std::fabs(xb[l]);
    }
    fit_affine_subblocks<lanes, 32, false>(8, nmax, x, weights, L, mins, sc, rmin, 0.1f, nstep, false);
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; ++j) {
      if (sc[j] > max_scale) max_scale = sc[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    for (int j = 0; j < 8; ++j) {
      uint8_t ls = uint8_t(nearest_int(inv_scale * sc[j]));
      uint8_t lm = uint8_t(nearest_int(inv_min * mins[j]));
      ls = min_of<uint8_t>(63, ls);
      lm = min_of<uint8_t>(63, lm);
      pack_scale_min(scales, j, ls, lm);
    }
    *dh = f32_to_fp16(max_scale / 63.0f);
    *mh = f32_to_fp16(max_min / 63.0f);
  } else {
    // ggml quantize_row_q4_K_impl / q5_K_impl
    float sum_x2 = 0.0f;
    for (int l = 0; l < qk_k; ++l) sum_x2 += x[l] * x[l];
    const float sigma2 = 2.0f * sum_x2 / float(qk_k);
    float sw[8];
    uint8_t Ls[8], Lm[8];
    for (int j = 0; j < 8; ++j) {
      const float* xb = x + 32 * j;
      const float* qb = qw + 32 * j;
      float* wb = weights + 32 * j;
      for (int l = 0; l < 32; ++l) wb[l] = qb[l] * std::sqrt(sigma2 + xb[l] * xb[l]);
      float sumw = 0.0f;
      for (int l = 0; l < 32; ++l) sumw += wb[l];
      sw[j] = sumw;
    }
    fit_affine_subblocks<lanes, 32, true>(8, nmax, x, weights, L, mins, sc, -0.9f, 0.05f, 36, false);
    const float d_block = fit_positive<8>(63, sc, Ls, sw);
    const float m_block = fit_positive<8>(63, mins, Lm, sw);
    for (int j = 0; j < 8; ++j) pack_scale_min(scales, j, min_of<uint8_t>(63, Ls[j]), min_of<uint8_t>(63, Lm[j]));
    *dh = f32_to_fp16(d_block);
    *mh = f32_to_fp16(m_block);
  }
  k4_requantize(x, scales, *dh, *mh, nmax, L);
}

}  // namespace

// ---- q2_K ---------------------------------------------------------------------------------------

namespace {

template <bool lanes>
void q2_k_block(const float* x, const float* qrow, block_q2_k& yb) {
  uint8_t L[qk_k];
  float mins[16], scales[16], weights[qk_k];
  if (!qrow) {
    // ggml quantize_row_q2_K_ref
    const float q4scale = 15.0f;
    float max_scale = 0.0f, max_min = 0.0f;
    for (int l = 0; l < qk_k; ++l) weights[l] = std::fabs(x[l]);
    fit_affine_subblocks<lanes, 16, false>(16, 3, x, weights, L, mins, scales, -0.5f, 0.1f, 15, true);
    for (int j = 0; j < 16; ++j) {
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0.0f) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < 16; ++j) yb.scales[j] = uint8_t(nearest_int(iscale * scales[j]));
      yb.d = f32_to_fp16(max_scale / q4scale);
    } else {
      std::memset(yb.scales, 0, sizeof yb.scales);
      yb.d = f32_to_fp16(0.0f);
    }
    if (max_min > 0.0f) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < 16; ++j) yb.scales[j] |= uint8_t(nearest_int(iscale * mins[j]) << 4);
      yb.dmin = f32_to_fp16(max_min / q4scale);
    } else {
      yb.dmin = f32_to_fp16(0.0f);
    }
  } else {
    // ggml quantize_row_q2_K_impl
    float sw[16];
    uint8_t Ls[16], Lm[16];
    weights_16(x, qrow, superblock_sigma2(x, 1.0f), weights, sw);
    fit_affine_subblocks<lanes, 16, true>(16, 3, x, weights, L, mins, scales, -0.9f, 0.05f, 36, false);
    const float dm = fit_positive<16>(15, scales, Ls, sw);
    const float mm = fit_positive<16>(15, mins, Lm, sw);
    yb.d = f32_to_fp16(dm);
    yb.dmin = f32_to_fp16(mm);
    for (int j = 0; j < 16; ++j) yb.scales[j] = uint8_t(Ls[j] | (Lm[j] << 4));
  }
  q2_requantize(x, yb, L);
  pack_2bit(L, yb.qs);
}

}  // namespace

void dequantize_row_q2_k(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const block_q2_k*>(vx);
  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float d = fp16_to_f32(x[b].d), min = fp16_to_f32(x[b].dmin);
    const uint8_t* q = x[b].qs;
    int is = 0;
    for (int half_ = 0; half_ < qk_k; half_ += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int part = 0; part < 2; ++part) {
          const uint8_t sc = x[b].scales[is++];
          const float dl = d * float(sc & 0xf), ml = min * float(sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * float((q[l + 16 * part] >> shift) & 3) - ml;
        }
      }
    }
  }
}

// ---- q3_K ---------------------------------------------------------------------------------------

namespace {

template <bool lanes>
void q3_k_block(const float* x, const float* qrow, block_q3_k& yb) {
  int8_t L[qk_k];
  float scales[16];
  std::memset(yb.scales, 0, sizeof yb.scales);
  if (!qrow) {
    // ggml quantize_row_q3_K_ref
    for (int j = 0; j < 16; ++j) scales[j] = fit_symmetric_descent<16>(4, x + 16 * j, L + 16 * j);
    float max_scale;
    signed_abs_max<16>(scales, &max_scale);
    if (max_scale != 0.0f) {
      const float iscale = -32.0f / max_scale;
      for (int j = 0; j < 16; ++j) {
        int8_t l = int8_t(nearest_int(iscale * scales[j]));
        l = int8_t(max_of<int>(-32, min_of<int>(31, l)) + 32);
        pack_q3_scales(yb.scales, j, l);
      }
      yb.d = f32_to_fp16(1.0f / iscale);
    } else {
      yb.d = f32_to_fp16(0.0f);
    }
  } else {
    // ggml quantize_row_q3_K_impl
    float weight[qk_k], sw[16];
    int8_t Ls[16];
    weights_16(x, qrow, superblock_sigma2(x, 2.0f), weight, sw);
    fit_symmetric_subblocks<lanes>(4, x, weight, L, scales);
    const float d_block = fit_symmetric<16>(32, scales, sw, Ls);
    for (int j = 0; j < 16; ++j) pack_q3_scales(yb.scales, j, Ls[j]);
    yb.d = f32_to_fp16(d_block);
  }
  q3_finish(x, yb, L);
}

}  // namespace

void dequantize_row_q3_k(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const block_q3_k*>(vx);
  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float d_all = fp16_to_f32(x[b].d);
    int8_t sc[16];
    for (int j = 0; j < 16; ++j) sc[j] = int8_t(unpack_q3_scale(x[b].scales, j) + 32);
    const uint8_t* q = x[b].qs;
    const uint8_t* hm = x[b].hmask;
    uint8_t m = 1;
    int is = 0;
    for (int half_ = 0; half_ < qk_k; half_ += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2, m = uint8_t(m << 1)) {
        for (int part = 0; part < 2; ++part) {
          const float dl = d_all * float(sc[is++] - 32);
          for (int l = 0; l < 16; ++l) {
            const int k = l + 16 * part;
            *y++ = dl * float(int8_t((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4));
          }
        }
      }
    }
  }
}

// ---- q4_K / q5_K --------------------------------------------------------------------------------

namespace {

// q4_K (levels 0..15) and q5_K (0..31, the fifth bits in qh).
template <bool lanes, class Block>
void k4_block(const float* x, const float* qb, Block& y) {
  constexpr int nmax = std::is_same_v<Block, block_q4_k> ? 15 : 31;
  uint8_t L[qk_k];
  k4_superblock<lanes>(x, qb, nmax, &y.d, &y.dmin, y.scales, L);
  if constexpr (nmax == 15)
    pack_q4_k(L, y.qs);
  else
    pack_q5_k(L, y.qh, y.qs);
}

// q4_K and q5_K: per 64 elements two sub-blocks, the low and the high nibbles of 32 bytes (q5_K: plus a bit
// of qh each, 16).
template <int NMAX, class Block>
void dequantize_k4_row(const Block* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float d = fp16_to_f32(x[b].d), min = fp16_to_f32(x[b].dmin);
    const uint8_t* ql = x[b].qs;
    uint8_t u1 = 1, u2 = 2;
    // the fifth bit of element l of the sub-block whose qh bit is u
    auto high = [&](int l, uint8_t u) {
      if constexpr (NMAX == 31) return (x[b].qh[l] & u) ? 16 : 0;
      return 0;
    };
    for (int j = 0, is = 0; j < qk_k; j += 64, ql += 32, is += 2) {
      uint8_t sc, m;
      unpack_scale_min(is, x[b].scales, &sc, &m);
      const float d1 = d * float(sc), m1 = min * float(m);
      unpack_scale_min(is + 1, x[b].scales, &sc, &m);
      const float d2 = d * float(sc), m2 = min * float(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * float((ql[l] & 0xf) + high(l, u1)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float((ql[l] >> 4) + high(l, u2)) - m2;
      u1 = uint8_t(u1 << 2);
      u2 = uint8_t(u2 << 2);
    }
  }
}

}  // namespace

void dequantize_row_q4_k(const void* vx, float* y, int64_t n) {
  dequantize_k4_row<15>(static_cast<const block_q4_k*>(vx), y, n);
}
void dequantize_row_q5_k(const void* vx, float* y, int64_t n) {
  dequantize_k4_row<31>(static_cast<const block_q5_k*>(vx), y, n);
}

// ---- q6_K ---------------------------------------------------------------------------------------

namespace {

template <bool lanes>
void q6_k_block(const float* x, const float* qrow, block_q6_k& yb) {
  int8_t L[qk_k];
  float scales[16];
  // ref and impl differ only in the weights: x*x (null) or the raw importance weights
  fit_symmetric_subblocks<lanes>(32, x, qrow, L, scales);
  float max_scale;
  if (signed_abs_max<16>(scales, &max_scale) < k_group_eps) {
    std::memset(&yb, 0, sizeof yb);
    yb.d = f32_to_fp16(0.0f);
    return;
  }
  const float iscale = -128.0f / max_scale;
  yb.d = f32_to_fp16(1.0f / iscale);
  for (int ib = 0; ib < 16; ++ib) yb.scales[ib] = int8_t(min_of(127, nearest_int(iscale * scales[ib])));
  const float dall = fp16_to_f32(yb.d);
  for (int j = 0; j < 16; ++j) requantize_symmetric<16>(x + 16 * j, dall * float(yb.scales[j]), -32, 31, L + 16 * j);
  uint8_t* ql = yb.ql;
  uint8_t* qh = yb.qh;
  for (int j = 0; j < qk_k; j += 128, ql += 64, qh += 32) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t q1 = L[j + l] & 0xf, q2 = L[j + l + 32] & 0xf;
      const uint8_t q3 = L[j + l + 64] & 0xf, q4 = L[j + l + 96] & 0xf;
      ql[l] = uint8_t(q1 | (q3 << 4));
      ql[l + 32] = uint8_t(q2 | (q4 << 4));
      qh[l] = pack_2bit_byte<field2::q6_high>(reinterpret_cast<const uint8_t*>(L), j / 4 + l);
    }
  }
}

}  // namespace

void dequantize_row_q6_k(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const block_q6_k*>(vx);
  for (int64_t b = 0; b < n / qk_k; ++b) {
    const float d = fp16_to_f32(x[b].d);
    const uint8_t* ql = x[b].ql;
    const uint8_t* qh = x[b].qh;
    const int8_t* sc = x[b].scales;
    for (int part = 0; part < qk_k; part += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int8_t q1 = int8_t(((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32);
        const int8_t q2 = int8_t(((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32);
        const int8_t q3 = int8_t(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        const int8_t q4 = int8_t(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        y[l] = d * float(sc[is]) * float(q1);
        y[l + 32] = d * float(sc[is + 2]) * float(q2);
        y[l + 64] = d * float(sc[is + 4]) * float(q3);
        y[l + 96] = d * float(sc[is + 6]) * float(q4);
      }
    }
  }
}

// ---- the row functions (types.h names them) ---------------------------------------------------
// quantize_row_<t> runs the lane forms of the scale searches, quantize_row_<t>_scalar the scalar ground truth.

#define RAZOR_K_ROWS(t, block_fn)                                                        \
  void quantize_row_##t(const float* x, void* y, int64_t n, const float* qw) {           \
    superblock_row<block_##t>(x, y, n, qw, block_fn<true>);                              \
  }                                                                                      \
  void quantize_row_##t##_scalar(const float* x, void* y, int64_t n, const float* qw) {  \
    superblock_row<block_##t>(x, y, n, qw, block_fn<false>);                             \
  }
RAZOR_K_ROWS(q2_k, q2_k_block)
RAZOR_K_ROWS(q3_k, q3_k_block)
RAZOR_K_ROWS(q4_k, k4_block)
RAZOR_K_ROWS(q5_k, k4_block)
RAZOR_K_ROWS(q6_k, q6_k_block)
#undef RAZOR_K_ROWS

}  // namespace razor::ggml::detail
