// MXFP4 (the OCP Microscaling format's FP4; gpt-oss stores its experts so): blocks of 32 values, each value a
// 4-bit E2M1 code (sign, 2 exponent bits, 1 mantissa bit: 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives),
// packed two to a byte, the even element in the low nibble, and one E8M0 scale per block (2^(s - 127); 255 is
// NaN). The Hub's layout: "<name>_blocks" U8 [..., R, C / 32, 16] and "<name>_scales" U8 [..., R, C / 32] for
// a weight [..., R, C], config.json's quantization_config {"quant_method": "mxfp4"}. The checkpoint reader
// (model/checkpoint.h) decodes them in read_f32, where it decodes FP8 block scales.
#pragma once
#include <cstdint>

namespace razor {

constexpr int64_t kMxfp4Block = 32;       // values per block
constexpr int64_t kMxfp4BlockBytes = 16;  // bytes of codes per block
constexpr uint8_t kE8m0Nan = 0xFF;

// The value of a 4-bit E2M1 code (the low 4 bits of `code`).
float e2m1_to_f32(uint8_t code);
// 2^(s - 127); NaN for 255.
float e8m0_to_f32(uint8_t s);
// Values [first, first + count) of MXFP4 data: `blocks` (16 bytes a block) and `scales` (one a block) from the
// first block. False when a block the range touches has the NaN scale (nothing is decoded past it).
bool mxfp4_decode(const uint8_t* blocks, const uint8_t* scales, int64_t first, int64_t count, float* out);
// One block of 32 values in the Hub's layout (synth --dtype mxfp4): the scale 2^e with the smallest e that puts the
// largest magnitude within 6 (E2M1's largest), each code the nearest E2M1 value of v / 2^e (ties to the even code).
void mxfp4_encode_block(const float* v, uint8_t* codes, uint8_t* scale);
// GGML's block_mxfp4 (llama.cpp's converter repacks the Hub's blocks so, GptOssModel.repack_mxfp4): the E8M0 scale
// byte, then 16 bytes whose byte j holds code j (low nibble) and code j + 16 (high nibble); the Hub's byte j holds
// codes 2j (low) and 2j + 1 (high). The codes and the scale are unchanged: a bit-exact repack, 17 bytes out.
void mxfp4_hub_to_ggml(const uint8_t* codes, uint8_t scale, uint8_t* ggml_block);
// ggml/quants.h decodes and writes that layout (the type table's mxfp4 row, byte-exact with ggml).
constexpr int64_t kMxfp4GgmlBlockBytes = 17;

}  // namespace razor
