// FP8 E4M3 sources with block scales (model/checkpoint.h): hand-computed dequantized values of a small
// checkpoint written here, the errors of a broken one, and `synth --dtype fp8` (model/synth.h) against the BF16
// synth of the same seed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "model/synth.h"
#include "util/json_limits.h"
#include "util/numeric.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {

const std::string kModels = RAZOR_MODELS_DIR;

struct scratch : razor::test::scratch_dir {
  scratch() : scratch_dir("fp8-model") {}
  const fs::path& p = dir;
};

// The fixture's config.json with a quantization_config of `block` (omitted when null).
void write_config(const fs::path& dir, const nlohmann::json& block) {
  auto j = read_json_file(kModels + "/tiny-qwen3-moe/config.json", json_limits{});
  ASSERT_TRUE(j.ok());
  nlohmann::json c = *j;
  if (!block.is_null()) c["quantization_config"] = {{"quant_method", "fp8"}, {"weight_block_size", block}};
  std::ofstream(dir / "config.json") << c.dump();
}

// A [3, 4] FP8 weight, its [2, 2] scale for 2 x 3 blocks, and a fused [2, 3, 4] expert tensor whose second
// expert repeats the codes under the same scales (the first's scales are 1).
const uint8_t kCodes[12] = {
    0x38, 0x40, 0xb8, 0x01,  // 1, 2, -1, 2^-9 (the smallest subnormal)
    0x7e, 0x08, 0x3c, 0x00,  // 448 (the largest), 2^-6 (the smallest normal), 1.5, 0
    0x44, 0x30, 0xc0, 0x39,  // 3, 0.5, -2, 1.125
};
const float kScales[4] = {0.5f, 2.0f, 0.25f, 8.0f};  // [block row][block col]
// code value x the scale of its block (rows 0-1: block row 0, row 2: block row 1; columns 0-2: block column 0,
// column 3: block column 1).
const float kExpected[12] = {
    0.5f, 1.0f, -0.5f, 0.00390625f,  // 2^-9 * 2 = 2^-8
    224.0f, 0.0078125f, 0.75f, 0.0f, // 2^-6 * 0.5 = 2^-7
    0.75f, 0.125f, -0.5f, 9.0f,
};

void write_weights(const fs::path& dir, std::vector<int64_t> scale_shape = {2, 2}, bool with_scale = true) {
  safetensors_writer w;
  ASSERT_TRUE(w.add("model.layers.0.self_attn.q_proj.weight", dtype::f8_e4m3, {3, 4}).ok());
  if (with_scale) {
    ASSERT_TRUE(w.add("model.layers.0.self_attn.q_proj.weight_scale_inv", dtype::f32, scale_shape).ok());
  }
  ASSERT_TRUE(w.add("model.layers.0.mlp.experts.down_proj", dtype::f8_e4m3, {2, 3, 4}).ok());
  ASSERT_TRUE(w.add("model.layers.0.mlp.experts.down_proj_scale_inv", dtype::f32, {2, 2, 2}).ok());
  ASSERT_TRUE(w.begin((dir / "model.safetensors").string()).ok());
  ASSERT_TRUE(w.write(kCodes, sizeof kCodes).ok());
  if (with_scale) {
    std::vector<float> s(size_t(scale_shape[0] * scale_shape[1]), 1.0f);
    std::memcpy(s.data(), kScales, std::min(sizeof kScales, s.size() * sizeof(float)));
    ASSERT_TRUE(w.write(s.data(), s.size() * sizeof(float)).ok());
  }
  ASSERT_TRUE(w.write(kCodes, sizeof kCodes).ok());
  ASSERT_TRUE(w.write(kCodes, sizeof kCodes).ok());
  const float ones[4] = {1, 1, 1, 1};
  ASSERT_TRUE(w.write(ones, sizeof ones).ok());
  ASSERT_TRUE(w.write(kScales, sizeof kScales).ok());
  ASSERT_TRUE(w.finish().ok());
}

}  // namespace

TEST(Fp8BlockScales, HandComputedValues) {
  scratch d;
  write_config(d.p, {2, 3});
  write_weights(d.p);
  auto ck = checkpoint::open(d.p.string());
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  const tensor_entry* q = ck->find("model.layers.0.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  ASSERT_GE(q->scale, 0);
  EXPECT_EQ(ck->tensors()[size_t(q->scale)].name, "model.layers.0.self_attn.q_proj.weight_scale_inv");
  EXPECT_EQ(ck->tensors()[size_t(q->scale)].cls.role, tensor_role::quant_scale);  // never a weight
  EXPECT_EQ(q->block_rows, 2);
  EXPECT_EQ(q->block_cols, 3);
  // Products of powers of two and short mantissas: exact in float, so equality.
  auto all = ck->read_f32(*q);
  ASSERT_TRUE(all.ok()) << all.error().to_string();
  for (int i = 0; i < 12; ++i) EXPECT_EQ((*all)[size_t(i)], kExpected[i]) << "element " << i;
  // A range that starts inside a row and crosses a block row.
  float part[6];
  ASSERT_TRUE(ck->read_f32(*q, 5, 6, part).ok());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(part[i], kExpected[5 + i]) << "element " << 5 + i;
  // The fused expert tensor: expert 0 under scales of 1 is the codes' values, expert 1 the scaled ones.
  auto e0 = ck->expert_matrix(0, 0, expert_proj::down), e1 = ck->expert_matrix(0, 1, expert_proj::down);
  ASSERT_TRUE(e0 && e1);
  std::vector<float> v0(12), v1(12);
  ASSERT_TRUE(ck->read_rows_f32(*e0, v0.data()).ok());
  ASSERT_TRUE(ck->read_rows_f32(*e1, v1.data()).ok());
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(v0[size_t(i)], fp8_e4m3_to_f32(kCodes[i])) << i;
    EXPECT_EQ(v1[size_t(i)], kExpected[i]) << i;
  }
}

TEST(Fp8BlockScales, BrokenLayoutsAreErrorsThatNameTheTensor) {
  {
    scratch d;  // a scale of the wrong shape
    write_config(d.p, {2, 3});
    write_weights(d.p, {1, 2});
    auto ck = checkpoint::open(d.p.string());
    ASSERT_FALSE(ck.ok());
    EXPECT_NE(ck.error().message().find("q_proj.weight_scale_inv' has shape [1, 2]"), std::string::npos) << ck.error().message();
    EXPECT_NE(ck.error().message().find("need [2, 2]"), std::string::npos) << ck.error().message();
  }
  {
    scratch d;  // an FP8 weight without its scale although the config declares block scales
    write_config(d.p, {2, 3});
    write_weights(d.p, {2, 2}, false);
    auto ck = checkpoint::open(d.p.string());
    ASSERT_FALSE(ck.ok());
    EXPECT_NE(ck.error().message().find("FP8 weight 'model.layers.0.self_attn.q_proj.weight' has no"), std::string::npos)
        << ck.error().message();
  }
  {
    scratch d;  // scales but no weight_block_size
    write_config(d.p, nullptr);
    write_weights(d.p);
    auto ck = checkpoint::open(d.p.string());
    ASSERT_FALSE(ck.ok());
    EXPECT_NE(ck.error().message().find("has no quantization_config"), std::string::npos) << ck.error().message();
  }
  {
    scratch d;  // a block size that is not two positive integers
    write_config(d.p, {0, 128});
    write_weights(d.p);
    auto ck = checkpoint::open(d.p.string());
    ASSERT_FALSE(ck.ok());
    EXPECT_NE(ck.error().message().find("weight_block_size must be two integers"), std::string::npos) << ck.error().message();
  }
}

// synth --dtype fp8 writes the same normal draws as the BF16 synth of the same seed, as E4M3 codes under
// amax / 448 block scales: dequantized, each weight is within E4M3's rounding of the BF16 one.
TEST(Fp8BlockScales, SynthFp8MatchesTheBf16Synth) {
  scratch d;
  auto j = read_json_file(kModels + "/tiny-qwen3-moe/config.json", json_limits{});
  ASSERT_TRUE(j.ok());
  synth_options opt;
  ASSERT_TRUE(synth_checkpoint(*j, (d.p / "bf16").string(), opt).ok());
  opt.dt = dtype::f8_e4m3;
  auto st = synth_checkpoint(*j, (d.p / "fp8").string(), opt);
  ASSERT_TRUE(st.ok()) << st.to_string();
  auto a = checkpoint::open((d.p / "bf16").string()), b = checkpoint::open((d.p / "fp8").string());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(b->config().raw["quantization_config"]["weight_block_size"], nlohmann::json({128, 128}));
  int fp8 = 0, scales = 0;
  for (auto& t : b->tensors()) {
    if (t.cls.role == tensor_role::quant_scale) {
      ++scales;
      EXPECT_EQ(t.dt, dtype::f32) << t.name;
      continue;
    }
    const tensor_entry* ref = a->find(t.name);
    ASSERT_NE(ref, nullptr) << t.name;
    if (t.dt != dtype::f8_e4m3) {
      EXPECT_EQ(t.dt, dtype::bf16) << t.name;  // embeddings, head, router, norms stay BF16
      continue;
    }
    ++fp8;
    EXPECT_GE(t.scale, 0) << t.name;
    auto x = b->read_f32(t), y = a->read_f32(*ref);
    ASSERT_TRUE(x.ok() && y.ok());
    float amax = 0;
    for (float v : *y) amax = std::max(amax, std::fabs(v));
    // E4M3 keeps 3 mantissa bits: a normal value is within 2^-4 relative; below 2^-6 x scale (subnormal) within
    // half of the smallest step, 2^-10 x scale, with scale <= amax / 448; BF16's own rounding (2^-9 relative) of
    // the reference adds to both.
    const float sub = std::ldexp(amax / 448.0f, -10);
    for (size_t i = 0; i < x->size(); ++i)
      ASSERT_LE(std::fabs((*x)[i] - (*y)[i]), std::fabs((*y)[i]) * (0.0625f + 0.004f) + sub) << t.name << " " << i;
  }
  EXPECT_EQ(fp8, scales);
  EXPECT_GT(fp8, 0);
}

// FP8 scaled another way (a per-tensor weight_scale, quant_method fp8 without weight_block_size): the checkpoint
// opens (inspect, footprint), but reading the weight is refused rather than returning unscaled values.
TEST(Fp8BlockScales, OtherScaleLayoutsAreRefusedOnRead) {
  scratch d;
  {
    auto j = read_json_file(kModels + "/tiny-qwen3-moe/config.json", json_limits{});
    ASSERT_TRUE(j.ok());
    nlohmann::json c = *j;
    c["quantization_config"] = {{"quant_method", "fp8"}, {"activation_scheme", "static"}};
    std::ofstream(d.p / "config.json") << c.dump();
  }
  safetensors_writer w;
  ASSERT_TRUE(w.add("model.layers.0.self_attn.q_proj.weight", dtype::f8_e4m3, {3, 4}).ok());
  ASSERT_TRUE(w.add("model.layers.0.self_attn.q_proj.weight_scale", dtype::f32, {}).ok());
  ASSERT_TRUE(w.begin((d.p / "model.safetensors").string()).ok());
  ASSERT_TRUE(w.write(kCodes, sizeof kCodes).ok());
  const float one = 1.0f;
  ASSERT_TRUE(w.write(&one, sizeof one).ok());
  ASSERT_TRUE(w.finish().ok());
  auto ck = checkpoint::open(d.p.string());
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  const tensor_entry* q = ck->find("model.layers.0.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  auto v = ck->read_f32(*q);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().code(), errc::unsupported);
  EXPECT_NE(v.error().message().find("q_proj.weight: FP8 with per-tensor or per-channel scales"), std::string::npos)
      << v.error().message();
}
