// The k-quants' super-block bodies on the GPU (q2_K, q3_K, q4_K, q5_K, q6_K): each repeats the CPU function
// it names (core/ggml/quants_k.cpp) operation for operation; the scale searches are the CPU's own
// (ggml/quant_search.h). Kernel, tiles and arguments: pack.cuh.
#include "pack.cuh"

namespace razor::cu::gq {
namespace {

// Small steps the bodies share (each as in quants_k.cpp, same operations in the same order).

// The weighted paths' sub-block weights qb * sqrt(sigma2 + x^2), and their sum.
template <int N>
__device__ __forceinline__ float sigma_weights(const float (&x)[N], const float (&qb)[N], float sigma2,
                                               float (&w)[N]) {
  float sw = 0.0f;
#pragma unroll
  for (int l = 0; l < N; ++l) w[l] = qb[l] * sqrtf(sigma2 + x[l] * x[l]);
#pragma unroll
  for (int l = 0; l < N; ++l) sw += w[l];
  return sw;
}

// The scale of largest magnitude among the 16 sub-blocks' (the first on a tie), and that magnitude.
__device__ __forceinline__ float largest_scale(const sb_scratch& S, float& max_abs) {
  float max_scale = 0.0f;
  max_abs = 0.0f;
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    const float v = S.sc[j];
    const float a = fabsf(v);
    if (a > max_abs) {
      max_abs = a;
      max_scale = v;
    }
  }
  return max_scale;
}

// The largest scale and the largest min of the N sub-blocks (0 when none is positive).
template <int N>
__device__ __forceinline__ void max_scale_min(const sb_scratch& S, float& max_scale, float& max_min) {
  max_scale = 0.0f;
  max_min = 0.0f;
#pragma unroll
  for (int j = 0; j < N; ++j) {
    const float a = S.sc[j], m = S.mn[j];
    if (a > max_scale) max_scale = a;
    if (m > max_min) max_min = m;
  }
}

template <int N>
__device__ __forceinline__ void load_n(const float* src, float (&dst)[N]) {
#pragma unroll
  for (int j = 0; j < N; ++j) dst[j] = src[j];
}

// Sub-block s's levels into the super-block's level array.
template <int N, class T>
__device__ __forceinline__ void store_levels(sb_scratch& S, int s, const T (&L)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) S.L[N * s + i] = uint8_t(L[i]);
}

// Byte i (0: low, 1: high) of an fp16 stored little-endian.
__device__ __forceinline__ uint8_t half_byte(uint16_t h, int i) { return uint8_t(i == 0 ? (h & 0xff) : (h >> 8)); }

// q3_K's and q6_K's last bytes: the sub-block scales (the header) from byte scales_at, then d at d_at.
__device__ __forceinline__ uint8_t scales_then_d(const sb_scratch& S, uint16_t dh, int k, int scales_at, int d_at) {
  return k < d_at ? S.hdr[k - scales_at] : half_byte(dh, k - d_at);
}

// The group writes the block: lane s writes bytes s, s + LANES, s + 2 * LANES, ...; out[k] = byte_at(k).
template <int BYTES, int LANES, class F>
__device__ __forceinline__ void write_block(uint8_t* out, int s, F byte_at) {
  for (int k = s; k < BYTES; k += LANES) out[k] = byte_at(k);
}

// q6_K: quants_k.cpp q6_k_row
template <bool HW>
__device__ void body_q6_k(sb_scratch& S, const float* xsb, int s, const float (&x)[16], const float (&qb)[16],
                          uint8_t* out, bool active) {
  int8_t L[16];
  const float scale = fit_symmetric<16>(32, x, HW ? qb : nullptr, L);
  S.sc[s] = scale;
  __syncwarp();
  float max_abs_scale;
  const float max_scale = largest_scale(S, max_abs_scale);
  const bool zero = max_abs_scale < k_group_eps;
  const float iscale = -128.0f / max_scale;
  const uint16_t dh = zero ? uint16_t(0) : f32_to_fp16(1.0f / iscale);
  if (!zero) {
    const int8_t my = int8_t(min_of(127, nearest_int(iscale * scale)));
    const float dall = fp16_to_f32(dh);
    ggml::requantize_symmetric<16>(x, dall * float(my), -32, 31, L);
    S.hdr[s] = uint8_t(my);
  }
  store_levels(S, s, L);
  __syncwarp();
  if (!active) return;
  write_block<block_bytes<type::q6_k>, 16>(out, s, [&](int k) -> uint8_t {
    if (zero) return 0;
    if (k < 128) {
      const int j = (k / 64) * 128, kk = k % 64;
      const uint8_t* Lp = S.L + j;
      // ql[l] = L[j+l] | L[j+l+64] << 4, ql[l+32] = L[j+l+32] | L[j+l+96] << 4: both L[j+kk] | L[j+kk+64] << 4
      return uint8_t((Lp[kk] & 0xf) | ((Lp[kk + 64] & 0xf) << 4));
    }
    if (k < 192) return ggml::pack_2bit_byte<ggml::field2::q6_high>(S.L, k - 128);
    return scales_then_d(S, dh, k, 192, 208);
  });
}

// q3_K: quants_k.cpp q3_k_row + q3_finish
template <bool HW>
__device__ void body_q3_k(sb_scratch& S, const float* xsb, int s, const float (&x)[16], const float (&qb)[16],
                          uint8_t* out, bool active) {
  int8_t L[16];
  float scale;
  if (!HW) {
    scale = fit_symmetric_descent<16>(4, x, L);
  } else {
    const float sumx2 = sum_sq_256<16>(xsb);
    const float sigma2 = 2.0f * sumx2 / 256.0f;
    float w[16];
    S.sw[s] = sigma_weights(x, qb, sigma2, w);
    scale = fit_symmetric<16>(4, x, w, L);
  }
  S.sc[s] = scale;
  __syncwarp();
  uint8_t sb[12];
#pragma unroll
  for (int j = 0; j < 12; ++j) sb[j] = 0;
  int8_t lsv[16];
  uint16_t dh;
  if (!HW) {
    float amax;
    const float max_scale = largest_scale(S, amax);
    if (max_scale != 0.0f) {
      const float iscale = -32.0f / max_scale;
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        int8_t l = int8_t(nearest_int(iscale * S.sc[j]));
        l = int8_t(max_of<int>(-32, min_of<int>(31, l)) + 32);
        lsv[j] = l;
      }
      dh = f32_to_fp16(1.0f / iscale);
    } else {
#pragma unroll
      for (int j = 0; j < 16; ++j) lsv[j] = 0;
      dh = f32_to_fp16(0.0f);
    }
  } else {
    float scs[16], sws[16];
    load_n(S.sc, scs);
    load_n(S.sw, sws);
    const float d_block = fit_symmetric<16>(32, scs, sws, lsv);
    dh = f32_to_fp16(d_block);
  }
  // pack_q3_scales for every j (a zero l packs to zero bytes, so the max_scale == 0 case matches)
#pragma unroll
  for (int j = 0; j < 16; ++j) ggml::pack_q3_scales(sb, j, lsv[j]);
  // q3_finish on this sub-block: the stored scale is the six low bits of lsv[s], minus 32
  {
    const float dall = fp16_to_f32(dh);
    const int8_t us = int8_t((pick(lsv, s) & 63) - 32);
    ggml::requantize_symmetric<16>(x, dall * float(us), -4, 3, L);
  }
  store_levels(S, s, L);
  if (s == 0) {
#pragma unroll
    for (int j = 0; j < 12; ++j) S.hdr[j] = sb[j];
  }
  __syncwarp();
  if (!active) return;
  write_block<block_bytes<type::q3_k>, 16>(out, s, [&](int k) -> uint8_t {
    if (k < 32) {
      uint8_t b = 0;
#pragma unroll
      for (int bit = 0; bit < 8; ++bit)
        if (int8_t(S.L[32 * bit + k]) > 3) b = uint8_t(b | (1u << bit));
      return b;
    }
    if (k < 96) return ggml::pack_2bit_byte<ggml::field2::q3_low>(S.L, k - 32);
    return scales_then_d(S, dh, k, 96, 108);
  });
}

// q2_K: quants_k.cpp q2_k_row + q2_requantize
template <bool HW>
__device__ void body_q2_k(sb_scratch& S, const float* xsb, int s, const float (&x)[16], const float (&qb)[16],
                          uint8_t* out, bool active) {
  uint8_t L[16];
  float w[16];
  float scale, mn;
  if (!HW) {
#pragma unroll
    for (int l = 0; l < 16; ++l) w[l] = fabsf(x[l]);
    scale = fit_affine<16, false>(3, x, w, L, &mn, -0.5f, 0.1f, 15, true);
  } else {
    const float sumx2 = sum_sq_256<16>(xsb);
    const float sigma2 = sumx2 / 256.0f;
    S.sw[s] = sigma_weights(x, qb, sigma2, w);
    scale = fit_affine<16, true>(3, x, w, L, &mn, -0.9f, 0.05f, 36, false);
  }
  S.sc[s] = scale;
  S.mn[s] = mn;
  __syncwarp();
  uint8_t my;
  uint16_t dh, mh;
  if (!HW) {
    const float q4scale = 15.0f;
    float max_scale, max_min;
    max_scale_min<16>(S, max_scale, max_min);
    if (max_scale > 0.0f) {
      const float iscale = q4scale / max_scale;
      my = uint8_t(nearest_int(iscale * scale));
      dh = f32_to_fp16(max_scale / q4scale);
    } else {
      my = 0;
      dh = f32_to_fp16(0.0f);
    }
    if (max_min > 0.0f) {
      const float iscale = q4scale / max_min;
      my |= uint8_t(nearest_int(iscale * mn) << 4);
      mh = f32_to_fp16(max_min / q4scale);
    } else {
      mh = f32_to_fp16(0.0f);
    }
  } else {
    float scs[16], mns[16], sws[16];
    load_n(S.sc, scs);
    load_n(S.mn, mns);
    load_n(S.sw, sws);
    uint8_t Ls[16], Lm[16];
    const float dm = fit_positive<16>(15, scs, Ls, sws);
    const float mm = fit_positive<16>(15, mns, Lm, sws);
    dh = f32_to_fp16(dm);
    mh = f32_to_fp16(mm);
    my = uint8_t(pick(Ls, s) | (pick(Lm, s) << 4));
  }
  {
    const float dall = fp16_to_f32(dh), mall = fp16_to_f32(mh);
    ggml::requantize_affine<16>(x, dall * float(my & 0xf), mall * float(my >> 4), 3, L);
  }
  store_levels(S, s, L);
  S.hdr[s] = my;
  __syncwarp();
  if (!active) return;
  write_block<block_bytes<type::q2_k>, 16>(out, s, [&](int k) -> uint8_t {
    if (k < 16) return S.hdr[k];
    if (k < 80) return ggml::pack_2bit_byte(S.L, k - 16);
    if (k < 82) return half_byte(dh, k - 80);
    return half_byte(mh, k - 82);
  });
}

// q4_K (NMAX 15) and q5_K (NMAX 31): quants_k.cpp k4_superblock + k4_requantize + pack_q4_k/pack_q5_k
template <bool HW, int NMAX>
__device__ void body_k4(sb_scratch& S, const float* xsb, int s, const float (&x)[32], const float (&qb)[32],
                        uint8_t* out, bool active) {
  uint8_t L[32];
  float w[32];
  float scale, mn;
  if (!HW) {
    const float rmin = NMAX == 15 ? -1.0f : -0.5f;
    const int nstep = NMAX == 15 ? 20 : 15;
    float sum_x2 = 0.0f;
#pragma unroll
    for (int l = 0; l < 32; ++l) sum_x2 += x[l] * x[l];
    const float av_x = sqrtf(sum_x2 / 32.0f);
#pragma unroll
    for (int l = 0; l < 32; ++l) w[l] = av_x + fabsf(x[l]);
    scale = fit_affine<32, false>(NMAX, x, w, L, &mn, rmin, 0.1f, nstep, false);
  } else {
    const float sum_x2 = sum_sq_256<32>(xsb);
    const float sigma2 = 2.0f * sum_x2 / 256.0f;
    S.sw[s] = sigma_weights(x, qb, sigma2, w);
    scale = fit_affine<32, true>(NMAX, x, w, L, &mn, -0.9f, 0.05f, 36, false);
  }
  S.sc[s] = scale;
  S.mn[s] = mn;
  __syncwarp();
  uint8_t ls[8], lm[8];
  uint16_t dh, mh;
  if (!HW) {
    float max_scale, max_min;
    max_scale_min<8>(S, max_scale, max_min);
    const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      uint8_t a = uint8_t(nearest_int(inv_scale * S.sc[j]));
      uint8_t b = uint8_t(nearest_int(inv_min * S.mn[j]));
      ls[j] = min_of<uint8_t>(63, a);
      lm[j] = min_of<uint8_t>(63, b);
    }
    dh = f32_to_fp16(max_scale / 63.0f);
    mh = f32_to_fp16(max_min / 63.0f);
  } else {
    float scs[8], mns[8], sws[8];
    load_n(S.sc, scs);
    load_n(S.mn, mns);
    load_n(S.sw, sws);
    uint8_t Ls[8], Lm[8];
    const float d_block = fit_positive<8>(63, scs, Ls, sws);
    const float m_block = fit_positive<8>(63, mns, Lm, sws);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      ls[j] = min_of<uint8_t>(63, Ls[j]);
      lm[j] = min_of<uint8_t>(63, Lm[j]);
    }
    dh = f32_to_fp16(d_block);
    mh = f32_to_fp16(m_block);
  }
  {
    // unpack_scale_min(pack_scale_min(ls, lm)) == (ls, lm) for values <= 63
    const float dall = fp16_to_f32(dh), mall = fp16_to_f32(mh);
    ggml::requantize_affine<32>(x, dall * float(pick(ls, s)), mall * float(pick(lm, s)), NMAX, L);
  }
  store_levels(S, s, L);
  if (s == 0) {
    uint8_t sc12[12];
#pragma unroll
    for (int j = 0; j < 12; ++j) sc12[j] = 0;
#pragma unroll
    for (int j = 0; j < 8; ++j) ggml::pack_scale_min(sc12, j, ls[j], lm[j]);
    put_half(S.hdr, dh);
    put_half(S.hdr + 2, mh);
#pragma unroll
    for (int j = 0; j < 12; ++j) S.hdr[4 + j] = sc12[j];
  }
  __syncwarp();
  if (!active) return;
  constexpr int bytes = NMAX == 15 ? block_bytes<type::q4_k> : block_bytes<type::q5_k>;
  write_block<bytes, 8>(out, s, [&](int k) -> uint8_t {
    if (k < 16) return S.hdr[k];
    if (NMAX == 15) {
      const int kq = k - 16;
      const int c = kq / 32, l = kq % 32;
      return uint8_t(S.L[64 * c + l] | (S.L[64 * c + l + 32] << 4));
    }
    if (k < 48) {
      const int l = k - 16;
      uint8_t b = 0;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        if (S.L[64 * c + l] > 15) b = uint8_t(b | (1u << (2 * c)));
        if (S.L[64 * c + l + 32] > 15) b = uint8_t(b | (2u << (2 * c)));
      }
      return b;
    }
    const int kq = k - 48;
    const int c = kq / 32, l = kq % 32;
    return uint8_t((S.L[64 * c + l] & 0xf) | ((S.L[64 * c + l + 32] & 0xf) << 4));
  });
}

}  // namespace

// The bodies as the kernel template wants them (pack.cuh): no shared tables; 16-element sub-blocks except
// q4_K / q5_K.
template <type T>
struct k_body {
  static constexpr int sub = (T == type::q4_k || T == type::q5_k) ? 32 : 16;
  using smem = char;
  __device__ static void init(char&, const kargs&) {}
  template <bool HW>
  __device__ static void run(sb_scratch& S, const smem&, const kargs&, const float* xsb, int s, const float (&x)[sub],
                             const float (&qb)[sub], uint8_t* out, bool active) {
    if constexpr (T == type::q6_k) body_q6_k<HW>(S, xsb, s, x, qb, out, active);
    else if constexpr (T == type::q3_k) body_q3_k<HW>(S, xsb, s, x, qb, out, active);
    else if constexpr (T == type::q2_k) body_q2_k<HW>(S, xsb, s, x, qb, out, active);
    else body_k4<HW, T == type::q4_k ? 15 : 31>(S, xsb, s, x, qb, out, active);
  }
};
template <>
struct body<type::q2_k> : k_body<type::q2_k> {};
template <>
struct body<type::q3_k> : k_body<type::q3_k> {};
template <>
struct body<type::q4_k> : k_body<type::q4_k> {};
template <>
struct body<type::q5_k> : k_body<type::q5_k> {};
template <>
struct body<type::q6_k> : k_body<type::q6_k> {};

namespace {
template <class In>
cudaError_t launch_in(type t, const kargs& a, cudaStream_t st) {
  switch (t) {
    case type::q2_k: return launch_superblocks<type::q2_k, In>(a, st);
    case type::q3_k: return launch_superblocks<type::q3_k, In>(a, st);
    case type::q4_k: return launch_superblocks<type::q4_k, In>(a, st);
    case type::q5_k: return launch_superblocks<type::q5_k, In>(a, st);
    case type::q6_k: return launch_superblocks<type::q6_k, In>(a, st);
    default: return cudaErrorInvalidValue;
  }
}
}  // namespace

cudaError_t launch_k_quants(type t, gq_src src, const kargs& a, cudaStream_t st) {
  return src == gq_src::bf16 ? launch_in<uint16_t>(t, a, st) : launch_in<float>(t, a, st);
}

}  // namespace razor::cu::gq
