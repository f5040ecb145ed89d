#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "common/test_util.h"

namespace {

const auto run = razor::test::run_razor;

const std::string kModels = RAZOR_MODELS_DIR;

}  // namespace

TEST(Cli, InspectReportsTheFixture) {
  auto r = run("inspect " + kModels + "/tiny-qwen3-5-moe");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("16547416"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("16 total, 4 active, 1 shared"), std::string::npos) << r.out;
  r = run("inspect --json " + kModels + "/tiny-qwen3-moe");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("\"razor.inventory/1\""), std::string::npos);
}

TEST(Cli, BadInputIsAClearErrorNotACrash) {
  auto r = run("inspect /nonexistent/model");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("razor: not_found: /nonexistent/model"), std::string::npos) << r.out;
  r = run("footprint " + kModels + "/tiny-qwen3-moe --recipe no-such-recipe");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("no-such-recipe"), std::string::npos) << r.out;
  r = run("inspect");
  EXPECT_EQ(r.code, 106) << r.out;  // CLI11: required argument missing
}

TEST(Cli, Version) {
  auto r = run("--version");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("razor 0."), std::string::npos);
}

// Without --text, evaluation reads the bundled held-out text and the probe the bundled calibration text
// (resources/data/README.md): the two halves, never the same.
TEST(Cli, TextDefaultsToTheBundledSplit) {
  auto r = run("eval-ppl " + kModels + "/tiny-qwen3-moe --windows 1 --json");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("the bundled held-out evaluation text"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("resources/data/kernel-docs-eval.txt\""), std::string::npos) << r.out;  // the JSON's "text"
  EXPECT_NE(r.out.find("\"n_tokens\":69195"), std::string::npos) << r.out;
  const std::string h5 = ::testing::TempDir() + "razor-cli-default-text.h5";
  r = run("probe " + kModels + "/tiny-qwen3-moe --tokens 256 --no-imatrix --out " + h5);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("the bundled calibration text"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("resources/data/kernel-docs-calib.txt"), std::string::npos) << r.out;
  std::remove(h5.c_str());
}

// pack --ftype: llama-quantize's mix (tests/gguf/test_ftype.cpp checks it against libllama), listed per tensor.
TEST(Cli, PackFtypeDryRunJson) {
  const std::string out = ::testing::TempDir() + "razor_cli_ftype_never_written.gguf";
  auto r = run("pack " + kModels + "/tiny-qwen3-5-moe --ftype q3_k_m --dry-run --json --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out.substr(r.out.find('{'), r.out.rfind('}') - r.out.find('{') + 1), nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["ftype"], "Q3_K_M");
  EXPECT_EQ(j["dry_run"], true);
  std::map<std::string, nlohmann::json> t;
  for (auto& x : j["tensors"]) t[x["name"].get<std::string>()] = x;
  EXPECT_EQ(t.size(), 76u);
  EXPECT_EQ(t["output.weight"]["type"], "q6_K");
  EXPECT_EQ(t["token_embd.weight"]["type"], "q3_K");
  EXPECT_EQ(t["blk.0.attn_qkv.weight"]["type"], "q5_K");  // attn_v-like, Q3_K_M's first two
  EXPECT_EQ(t["blk.1.attn_qkv.weight"]["type"], "q5_K");
  EXPECT_EQ(t["blk.2.attn_qkv.weight"]["type"], "q4_K");
  EXPECT_EQ(t["blk.3.attn_v.weight"]["type"], "q4_K");
  EXPECT_EQ(t["blk.3.attn_output.weight"]["type"], "q4_K");
  EXPECT_EQ(t["blk.0.ffn_down_exps.weight"]["type"], "q4_K");
  EXPECT_EQ(t["blk.0.ssm_out.weight"]["type"], "q3_K");
  EXPECT_EQ(t["blk.0.attn_norm.weight"]["type"], "f32");
  EXPECT_NE(t["blk.0.attn_qkv.weight"]["why"].get<std::string>().find("Q3_K_M"), std::string::npos);
  EXPECT_GT(j["tensor_bytes"].get<uint64_t>(), 0u);
  EXPECT_FALSE(std::filesystem::exists(out));

  // llama-quantize refuses the IQ2 mixes without an importance matrix; so do we, naming the tensor.
  r = run("pack " + kModels + "/tiny-qwen3-moe --ftype IQ2_XS --dry-run --out " + out);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("needs an importance matrix"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("IQ2_XS"), std::string::npos) << r.out;
  r = run("pack " + kModels + "/tiny-qwen3-moe --ftype Q9_K --dry-run --out " + out);
  EXPECT_EQ(r.code, 2) << r.out;  // invalid_argument
  EXPECT_NE(r.out.find("Q4_K_M"), std::string::npos) << "the error lists the file types: " << r.out;
}
