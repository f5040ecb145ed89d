#include <gtest/gtest.h>

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
