// `razor synth --vision` and `razor mmproj` through the command line (the registry's synth and mmproj jobs): the real
// 122B tower synthesised sparse, planned with --dry-run --json; a text-only checkpoint refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "common/test_util.h"

namespace {

nlohmann::json json_of(const std::string& out) {
  const size_t a = out.find('{'), b = out.rfind('}');
  if (a == std::string::npos || b == std::string::npos) return nlohmann::json();
  return nlohmann::json::parse(out.substr(a, b - a + 1), nullptr, false);
}

}  // namespace

TEST(MmprojCli, Real122BTowerDryRun) {
  razor::test::scratch_dir d("mmproj-cli");
  auto r = razor::test::run_razor("synth --config " RAZOR_SOURCE_DIR_T "/resources/configs/qwen3.5-122b-a10b.json --out " +
                                  (d / "q122") + " --sparse --vision");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(std::filesystem::exists(d / "q122/preprocessor_config.json"));
  r = razor::test::run_razor("mmproj " + (d / "q122") + " --type q8_0 --dry-run --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = json_of(r.out);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["projector"], "qwen3vl_merger");
  EXPECT_EQ(j["n_tensors"], 334);
  std::map<std::string, nlohmann::json> t;
  for (auto& x : j["tensors"]) t[x["name"].get<std::string>()] = x;
  EXPECT_EQ(t["v.blk.0.attn_qkv.weight"]["type"], "q8_0");
  EXPECT_EQ(t["v.blk.0.ffn_down.weight"]["type"], "f16");  // rows of 4304
  EXPECT_EQ(t["v.patch_embd.weight"]["type"], "f32");
  EXPECT_EQ(t["mm.2.weight"]["ne"], nlohmann::json({4608, 3072}));
  EXPECT_EQ(j["metadata"]["clip.vision.image_size"], "768");
  EXPECT_FALSE(std::filesystem::exists(d / "q122/mmproj.gguf"));
}

TEST(MmprojCli, TextOnlyCheckpointIsRefused) {
  razor::test::scratch_dir d("mmproj-cli-text");
  auto r = razor::test::run_razor("mmproj " RAZOR_MODELS_DIR "/tiny-qwen3-5-moe --out " + (d / "x.gguf"));
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("Qwen3_5MoeForCausalLM"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(d / "x.gguf"));
}
