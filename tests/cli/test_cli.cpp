#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>

namespace {

struct run_result {
  int code;
  std::string out;
};

run_result run(const std::string& args) {
  std::string cmd = std::string(RAZOR_CLI_EXE) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  int st = pclose(p);
  return {WEXITSTATUS(st), out};
}

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
