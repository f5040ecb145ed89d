#include <gtest/gtest.h>

#include <cstdio>
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
