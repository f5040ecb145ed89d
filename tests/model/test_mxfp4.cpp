// MXFP4 sources (model/mxfp4.h, gpt-oss's experts): hand-computed values of E2M1 codes and E8M0 scales, the
// decoder on two blocks, and a small checkpoint written here whose _blocks / _scales read back through read_f32
// and the expert views as the values; the errors of broken ones name the tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "model/checkpoint.h"
#include "model/mxfp4.h"
#include "model/safetensors.h"
#include "util/json_limits.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {

// Two blocks of 32 values. Block 0, scale 128 (x2): byte 0 = 0x21 -> codes 1 (0.5), 2 (1.0); byte 1 = 0xF8 ->
// codes 8 (-0), 15 (-6); byte 15 = 0x53 -> codes 3 (1.5), 5 (3.0); the rest 0. Block 1, scale 125 (x1/4): byte 0 =
// 0x7B -> codes 11 (-1.5), 7 (6.0); byte 7 = 0x4C -> codes 12 (-2.0), 4 (2.0).
void fill_blocks(uint8_t* b, uint8_t* s) {
  std::memset(b, 0, 32);
  b[0] = 0x21, b[1] = 0xF8, b[15] = 0x53, b[16] = 0x7B, b[23] = 0x4C;
  s[0] = 128, s[1] = 125;
}
// Their values (every product exact in float: equality).
std::vector<float> expected_values() {
  std::vector<float> v(64, 0.0f);
  v[0] = 1.0f, v[1] = 2.0f, v[2] = -0.0f, v[3] = -12.0f, v[30] = 3.0f, v[31] = 6.0f;
  v[32] = -0.375f, v[33] = 1.5f, v[46] = -0.5f, v[47] = 0.5f;
  return v;
}

struct scratch : razor::test::scratch_dir {
  scratch() : scratch_dir("mxfp4-model") {}
};

// The fixture's config.json, with quantization_config mxfp4 when `declared`.
void write_config(const fs::path& dir, bool declared) {
  auto j = read_json_file(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe/config.json", json_limits{});
  ASSERT_TRUE(j.ok());
  nlohmann::json c = *j;
  if (declared) c["quantization_config"] = {{"quant_method", "mxfp4"}};
  std::ofstream(dir / "config.json") << c.dump();
}

// A fused down_proj of 2 experts, each [1, 64]: expert 0 the two blocks above, expert 1 the same codes with
// scales 127 (x1) and 255 (NaN) when `nan`, else 127 and 127.
void write_weights(const fs::path& dir, bool with_scales = true, std::vector<int64_t> scale_shape = {2, 1, 2},
                   bool nan = false) {
  uint8_t b[64], s[4];
  fill_blocks(b, s);
  std::memcpy(b + 32, b, 32);
  s[2] = 127, s[3] = nan ? kE8m0Nan : 127;
  safetensors_writer w;
  ASSERT_TRUE(w.add("model.layers.0.mlp.experts.down_proj_blocks", dtype::u8, {2, 1, 2, 16}).ok());
  if (with_scales) ASSERT_TRUE(w.add("model.layers.0.mlp.experts.down_proj_scales", dtype::u8, scale_shape).ok());
  ASSERT_TRUE(w.begin((dir / "model.safetensors").string()).ok());
  ASSERT_TRUE(w.write(b, sizeof b).ok());
  if (with_scales) {
    std::vector<uint8_t> sv(size_t(scale_shape[0] * scale_shape[1] * scale_shape[2]), 127);
    std::memcpy(sv.data(), s, std::min(sizeof s, sv.size()));
    ASSERT_TRUE(w.write(sv.data(), sv.size()).ok());
  }
  ASSERT_TRUE(w.finish().ok());
}

}  // namespace

TEST(Mxfp4, CodesAndScales) {
  const float mag[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  for (uint8_t c = 0; c < 16; ++c) EXPECT_EQ(e2m1_to_f32(c), c < 8 ? mag[c] : -mag[c - 8]) << int(c);
  EXPECT_TRUE(std::signbit(e2m1_to_f32(8)));  // -0
  EXPECT_EQ(e8m0_to_f32(127), 1.0f);
  EXPECT_EQ(e8m0_to_f32(128), 2.0f);
  EXPECT_EQ(e8m0_to_f32(125), 0.25f);
  EXPECT_EQ(e8m0_to_f32(254), std::ldexp(1.0f, 127));
  EXPECT_EQ(e8m0_to_f32(0), std::ldexp(1.0f, -127));  // a subnormal float, exact
  EXPECT_TRUE(std::isnan(e8m0_to_f32(kE8m0Nan)));
}

TEST(Mxfp4, DecodesHandComputedBlocks) {
  uint8_t b[32], s[2];
  fill_blocks(b, s);
  const std::vector<float> want = expected_values();
  std::vector<float> out(64, 99.0f);
  ASSERT_TRUE(mxfp4_decode(b, s, 0, 64, out.data()));
  for (size_t i = 0; i < 64; ++i) EXPECT_EQ(out[i], want[i]) << "value " << i;
  EXPECT_TRUE(std::signbit(out[2]));
  // A range that starts on an odd value inside block 0 and ends inside block 1.
  std::vector<float> part(5);
  ASSERT_TRUE(mxfp4_decode(b, s, 29, 5, part.data()));
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(part[i], want[29 + i]) << "value " << 29 + i;
  s[1] = kE8m0Nan;
  EXPECT_TRUE(mxfp4_decode(b, s, 0, 32, out.data()));  // block 0 only
  EXPECT_FALSE(mxfp4_decode(b, s, 30, 4, out.data()));
}

// llama.cpp's converter repacks the Hub's blocks as GGML's block_mxfp4 (GptOssModel.repack_mxfp4): block 0 above
// (scale 128; codes 1, 2, 8, 15 at values 0-3, 3 and 5 at values 30, 31) becomes the scale byte, then byte j = code j
// | code (j + 16) << 4: 0x01, 0x02, 0x08, 0x0F, zeros, byte 14 = 0x30 (code 30 high), byte 15 = 0x50 (code 31 high).
// (ggml's dequantizer of these bytes: tests/ggml/test_ggml_types.cpp, Mxfp4GgmlBlocksDecodeToTheHubValues.)
TEST(Mxfp4, RepacksHubBlocksAsGgml) {
  uint8_t b[32], s[2];
  fill_blocks(b, s);
  uint8_t g[34];
  mxfp4_hub_to_ggml(b, s[0], g);
  mxfp4_hub_to_ggml(b + 16, s[1], g + 17);
  const uint8_t want0[17] = {128, 0x01, 0x02, 0x08, 0x0F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x30, 0x50};
  for (int i = 0; i < 17; ++i) EXPECT_EQ(int(g[i]), int(want0[i])) << "byte " << i;
  // block 1 (scale 125): codes 11, 7 at values 0, 1 and 12, 4 at 14, 15: bytes 0x0B, 0x07, byte 14 = 0x0C, 15 = 0x04
  const uint8_t want1[17] = {125, 0x0B, 0x07, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0C, 0x04};
  for (int i = 0; i < 17; ++i) EXPECT_EQ(int(g[17 + i]), int(want1[i])) << "block 1 byte " << i;
}

// The encoder synth uses: the smallest scale that holds the block's largest magnitude, nearest codes; decoded,
// values on the E2M1 grid come back exactly.
TEST(Mxfp4, EncodesBlocks) {
  float v[32] = {};
  v[0] = 12.0f, v[1] = -3.0f, v[2] = 0.9f, v[31] = 1.0f;  // amax 12: scale 2 (6 x 2 = 12)
  uint8_t codes[16], scale = 0;
  mxfp4_encode_block(v, codes, &scale);
  EXPECT_EQ(int(scale), 128);
  std::vector<float> out(32);
  ASSERT_TRUE(mxfp4_decode(codes, &scale, 0, 32, out.data()));
  EXPECT_EQ(out[0], 12.0f);
  EXPECT_EQ(out[1], -3.0f);
  EXPECT_EQ(out[2], 1.0f);  // 0.45 x 2: nearest code 0.5
  EXPECT_EQ(out[31], 1.0f);
  EXPECT_EQ(out[5], 0.0f);
}

TEST(Mxfp4, CheckpointReadsValuesThroughReadF32AndExpertViews) {
  scratch d;
  write_config(d.dir, true);
  write_weights(d.dir);
  auto ck = checkpoint::open(d.dir.string());
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  const tensor_entry* t = ck->find("model.layers.0.mlp.experts.down_proj_blocks");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->mxfp4);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 1, 64}));  // the values' shape
  EXPECT_EQ(t->nbytes, 64u);                              // the codes' bytes
  EXPECT_EQ(t->cls.role, tensor_role::routed_expert);
  EXPECT_EQ(ck->find("model.layers.0.mlp.experts.down_proj_scales")->cls.role, tensor_role::quant_scale);
  auto all = ck->read_f32(*t);
  ASSERT_TRUE(all.ok()) << all.error().to_string();
  const std::vector<float> want = expected_values();
  for (size_t i = 0; i < 64; ++i) EXPECT_EQ((*all)[i], want[i]) << "expert 0 value " << i;
  // Expert 1: the same codes under scales of 1 (block 0: half of expert 0's values, block 1: four times).
  auto e1 = ck->expert_matrix(0, 1, expert_proj::down);
  ASSERT_TRUE(e1.has_value());
  EXPECT_EQ(e1->n_rows, 1);
  EXPECT_EQ(e1->n_cols, 64);
  std::vector<float> v1(64);
  ASSERT_TRUE(ck->read_rows_f32(*e1, v1.data()).ok());
  for (size_t i = 0; i < 64; ++i) EXPECT_EQ(v1[i], want[i] * (i < 32 ? 0.5f : 4.0f)) << "expert 1 value " << i;
}

TEST(Mxfp4, BrokenSourcesAreErrorsThatNameTheTensor) {
  {
    scratch d;  // blocks without scales under a declared mxfp4
    write_config(d.dir, true);
    write_weights(d.dir, false);
    auto ck = checkpoint::open(d.dir.string());
    ASSERT_FALSE(ck.ok());
    EXPECT_NE(ck.error().to_string().find("down_proj_blocks' has no 'model.layers.0.mlp.experts.down_proj_scales'"),
              std::string::npos) << ck.error().to_string();
  }
  {
    scratch d;  // scales of the wrong shape
    write_config(d.dir, true);
    write_weights(d.dir, true, {2, 1, 1});
    auto ck = checkpoint::open(d.dir.string());
    ASSERT_FALSE(ck.ok());
    EXPECT_NE(ck.error().to_string().find("down_proj_scales"), std::string::npos) << ck.error().to_string();
    EXPECT_NE(ck.error().to_string().find("U8 [2, 1, 2]"), std::string::npos) << ck.error().to_string();
  }
  {
    scratch d;  // MXFP4 tensors without quantization_config
    write_config(d.dir, false);
    write_weights(d.dir);
    auto ck = checkpoint::open(d.dir.string());
    ASSERT_FALSE(ck.ok());
    EXPECT_NE(ck.error().to_string().find("quant_method"), std::string::npos) << ck.error().to_string();
  }
  {
    scratch d;  // a NaN scale: opening works, reading the block is an error naming the block
    write_config(d.dir, true);
    write_weights(d.dir, true, {2, 1, 2}, true);
    auto ck = checkpoint::open(d.dir.string());
    ASSERT_TRUE(ck.ok()) << ck.error().to_string();
    const tensor_entry* t = ck->find("model.layers.0.mlp.experts.down_proj_blocks");
    auto all = ck->read_f32(*t);
    ASSERT_FALSE(all.ok());
    EXPECT_NE(all.error().to_string().find("the scale of block 3 is 255"), std::string::npos) << all.error().to_string();
    float first[64];
    EXPECT_TRUE(ck->read_f32(*t, 0, 64, first).ok());  // expert 0 is whole
  }
}
