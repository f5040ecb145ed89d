// ggml block formats: the byte layout of every ggml type we read and write, as plain structs that both the
// C++ and the CUDA code compile (no std::, no packing pragmas: every field is naturally aligned, and the
// static_asserts below pin each size; ggml keeps the same structs in ggml-common.h for C and CUDA).
// The type table (types.h) names one struct per type and takes the block size from sizeof.
//
// All multi-byte fields are little endian; `half` is IEEE binary16 (ggml_half). A quantized row of n
// elements is n / block_size consecutive blocks, no padding between blocks or rows. QK_K = 256.
//
//   type      elems bytes  layout (struct order)                       value of element
//   q8_0        32    34   d:half, qs[32]:int8                         d*qs[i]
//   q4_0        32    18   d:half, qs[16]:u8                           d*(q-8); q = qs[j]&15 for j<16,
//                                                                      qs[j-16]>>4 for j>=16
//   q4_1        32    20   d, m:half, qs[16] (nibbles as q4_0)         d*q + m
//   q5_0        32    22   d:half, qh[4] (bit j = 5th bit of element   d*(q-16), q = nibble | 16*bit
//                          j, as a little-endian u32), qs[16] (as q4_0)
//   q5_1        32    24   d, m:half, qh[4], qs[16] (as q5_0)          d*q + m
//   iq4_nl      32    18   d:half, qs[16]:u8 (nibbles as q4_0)         d*kvalues_iq4nl[q]
//   mxfp4       32    17   e:u8 (E8M0), qs[16]:u8 (nibbles as q4_0)    2^(e-128)*kvalues_mxfp4[q] (E2M1
//                                                                      doubled: 2^(e-127) times the FP4 value)
//   q2_K       256    84   scales[16]:u8 (lo nibble scale, hi nibble   d*(sc&15)*q - dmin*(sc>>4); for
//                          min, one per 16), qs[64] (2-bit), d, dmin   each 128-half, byte l of its 32
//                                                                      holds elements l, l+32, l+64, l+96
//                                                                      at shifts 0, 2, 4, 6
//   q3_K       256   110   hmask[32] (high bit), qs[64] (low 2 bits,   d*(sc-32)*(q2 - (hbit ? 0 : 4));
//                          as q2_K), scales[12] (16 six-bit scales),   hbit of element j: hmask[j%32]
//                          d:half                                      bit j/32
//   q4_K       256   144   d, dmin:half, scales[12] (8 six-bit scales  d*sc*q - dmin*m; per 64 elements
//                          + 8 six-bit mins), qs[128]                  32 low nibbles then 32 high
//   q5_K       256   176   d, dmin, scales[12] (as q4_K), qh[32],      as q4_K with a 5th bit: element
//                          qs[128]                                     l+64c+32h takes qh[l] bit 2c+h
//   q6_K       256   210   ql[128] (low 4 bits), qh[64] (high 2 bits), d*scales[j/16]*(q6-32)
//                          scales[16]:int8, d:half
//   iq2_xxs    256    66   d:half, qs[32]:u16; per 32 elements two     db = d*(0.5+s)*0.25;
//                          u32 words: the first = four 8-bit grid      y = db*grid[idx][k]*(+-1)
//                          indices (8 elements each), the second =     (iq2xxs grid, 256 points)
//                          four 7-bit ksigns indices, bits 28..31 = s
//   iq2_xs     256    74   d:half, qs[32]:u16 (9-bit grid index |      db = d*(0.5+s)*0.25, s = the
//                          7-bit ksigns index << 9, one per 8),        nibble of scales[ib/2] (low for
//                          scales[8] (a 4-bit scale per 16)            even ib); iq2xs grid, 512 points
//   iq2_s      256    82   d:half, qs[64]: 32 grid index low bytes     as iq2_xs with the iq2s grid
//                          then 32 sign bytes (one per 8), qh[8]:      (1024 points), index = qs[i] |
//                          2 high index bits per group, scales[8]      ((qh[i/4] >> 2*(i%4)) & 3) << 8
//   iq3_xxs    256    98   d:half, qs[96]: 64 grid indices (one per   db = d*(0.5+s)*0.5;
//                          4 elements) then 8 u32 words, one per 32:   y = db*grid[idx][k]*(+-1)
//                          bits 0..27 = four 7-bit ksigns indices,
//                          bits 28..31 = scale s
//   iq3_s      256   110   d:half, qs[64]: grid index low bytes (one   db = d*(1+2*s), s the nibble of
//                          per 4), qh[8]: bit k of qh[ib] = index      scales[ib/2] (low for even ib);
//                          bit 8 of group 8*ib+k, signs[32] (one bit   y = db*grid[idx][k]*(+-1)
//                          per element), scales[4] (4 bits per 32)     (iq3s grid, 512 points)
//   iq1_s      256    50   d:half, qs[32]: grid index low bytes (one   dl = d*(2*s+1), s = bits 12..14
//                          per 8), qh[8]:u16 per 32: bits 3k..3k+2 =   of qh[ib]; y = dl*(grid[idx][k] +
//                          index bits 8..10 of group k, 12..14 = s,    delta), delta = -1/8 when bit 15
//                          15 = delta sign                             is set, else +1/8 (iq1s grid)
//   iq1_m      256    56   qs[32] (as iq1_s), qh[16]: per 16 elements  dl = d*(2*s+1), s = the 3-bit
//                          the two groups' index bits 8..10 (nibbles)  scale of the 16; d = the fp16
//                          and delta signs (bits 3, 7), scales[8]:     made of the top nibbles of the
//                          four u16 of 3-bit scales (4 per u16)        four scale words, low first
//   iq4_xs     256   136   d:half, scales_h:u16 (2 high bits x 8),     d*(ls-32)*kvalues_iq4nl[q],
//                          scales_l[4] (4 low bits x 8), qs[128]       ls = 6-bit scale of the 32-block
//
// Scale packing of q4_K/q5_K (get_scale_min): for j < 4, scale = s[j]&63, min = s[j+4]&63; otherwise
// scale = (s[j+4]&15) | ((s[j-4]>>6)<<4), min = (s[j+4]>>4) | ((s[j]>>6)<<4).
// Scale packing of q3_K: scale j (0..15) has low nibble in s[j%8] (low nibble for j<8, high for j>=8)
// and its top two bits in s[8 + j%4] at bit 2*(j/4).
// The i-quants' grids (the points a group of 4 or 8 magnitudes may take) are in grids.h; ksigns index i
// (0..127) stands for the 8 sign bits i | parity(i) << 7 (an even number of minus signs).
#pragma once
#include <stdint.h>

namespace razor::ggml {

inline constexpr int qk_k = 256;    // super-block size of the k- and i-quants
inline constexpr int qk_32 = 32;    // block size of q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl

using half = uint16_t;  // IEEE binary16 bits

// The unquantized types, one element per "block".
struct block_f32 {
  float v;
};
struct block_f16 {
  half v;
};
struct block_bf16 {
  uint16_t v;  // the top 16 bits of a float32
};

struct block_q8_0 {
  half d;
  int8_t qs[qk_32];
};
struct block_q4_0 {
  half d;
  uint8_t qs[qk_32 / 2];
};
struct block_q4_1 {
  half d;
  half m;
  uint8_t qs[qk_32 / 2];
};
struct block_q5_0 {
  half d;
  uint8_t qh[4];
  uint8_t qs[qk_32 / 2];
};
struct block_q5_1 {
  half d;
  half m;
  uint8_t qh[4];
  uint8_t qs[qk_32 / 2];
};
struct block_iq4_nl {
  half d;
  uint8_t qs[qk_32 / 2];
};
struct block_mxfp4 {
  uint8_t e;
  uint8_t qs[qk_32 / 2];
};
struct block_q2_k {
  uint8_t scales[qk_k / 16];
  uint8_t qs[qk_k / 4];
  half d;
  half dmin;
};
struct block_q3_k {
  uint8_t hmask[qk_k / 8];
  uint8_t qs[qk_k / 4];
  uint8_t scales[12];
  half d;
};
struct block_q4_k {
  half d;
  half dmin;
  uint8_t scales[12];
  uint8_t qs[qk_k / 2];
};
struct block_q5_k {
  half d;
  half dmin;
  uint8_t scales[12];
  uint8_t qh[qk_k / 8];
  uint8_t qs[qk_k / 2];
};
struct block_q6_k {
  uint8_t ql[qk_k / 2];
  uint8_t qh[qk_k / 4];
  int8_t scales[qk_k / 16];
  half d;
};
struct block_iq2_xxs {
  half d;
  uint16_t qs[qk_k / 8];
};
struct block_iq2_xs {
  half d;
  uint16_t qs[qk_k / 8];
  uint8_t scales[qk_k / 32];
};
struct block_iq2_s {
  half d;
  uint8_t qs[qk_k / 4];
  uint8_t qh[qk_k / 32];
  uint8_t scales[qk_k / 32];
};
struct block_iq3_xxs {
  half d;
  uint8_t qs[3 * qk_k / 8];
};
struct block_iq3_s {
  half d;
  uint8_t qs[qk_k / 4];
  uint8_t qh[qk_k / 32];
  uint8_t signs[qk_k / 8];
  uint8_t scales[qk_k / 64];
};
struct block_iq1_s {
  half d;
  uint8_t qs[qk_k / 8];
  uint16_t qh[qk_k / 32];
};
struct block_iq1_m {
  uint8_t qs[qk_k / 8];
  uint8_t qh[qk_k / 16];
  uint8_t scales[qk_k / 32];
};
struct block_iq4_xs {
  half d;
  uint16_t scales_h;
  uint8_t scales_l[qk_k / 64];
  uint8_t qs[qk_k / 2];
};

// The sizes ggml's static_asserts pin (ggml-common.h); the type table reads sizeof.
static_assert(sizeof(block_q8_0) == 34, "q8_0 block");
static_assert(sizeof(block_q4_0) == 18, "q4_0 block");
static_assert(sizeof(block_q4_1) == 20, "q4_1 block");
static_assert(sizeof(block_q5_0) == 22, "q5_0 block");
static_assert(sizeof(block_q5_1) == 24, "q5_1 block");
static_assert(sizeof(block_iq4_nl) == 18, "iq4_nl block");
static_assert(sizeof(block_mxfp4) == 17, "mxfp4 block");
static_assert(sizeof(block_q2_k) == 84, "q2_K block");
static_assert(sizeof(block_q3_k) == 110, "q3_K block");
static_assert(sizeof(block_q4_k) == 144, "q4_K block");
static_assert(sizeof(block_q5_k) == 176, "q5_K block");
static_assert(sizeof(block_q6_k) == 210, "q6_K block");
static_assert(sizeof(block_iq2_xxs) == 66, "iq2_xxs block");
static_assert(sizeof(block_iq2_xs) == 74, "iq2_xs block");
static_assert(sizeof(block_iq2_s) == 82, "iq2_s block");
static_assert(sizeof(block_iq3_xxs) == 98, "iq3_xxs block");
static_assert(sizeof(block_iq3_s) == 110, "iq3_s block");
static_assert(sizeof(block_iq1_s) == 50, "iq1_s block");
static_assert(sizeof(block_iq1_m) == 56, "iq1_m block");
static_assert(sizeof(block_iq4_xs) == 136, "iq4_xs block");

// The 16 non-linear levels of iq4_nl / iq4_xs (ggml's kvalues_iq4nl).
inline constexpr int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                             1,    13,   25,  38,  53,  69,  89,  113};

// The 16 levels of mxfp4 (ggml's kvalues_mxfp4): the E2M1 values doubled, code 8 on negative.
inline constexpr int8_t kvalues_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

}  // namespace razor::ggml
