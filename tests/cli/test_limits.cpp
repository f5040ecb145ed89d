// The razor command line on hostile input (issue 15): clear errors naming the input, exit codes, no abort, no
// hang, no raw control bytes on the terminal.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "common/test_util.h"
#include "gguf/gguf_file.h"

namespace fs = std::filesystem;

namespace {

const auto run = razor::test::run_razor;
const std::string kModels = RAZOR_MODELS_DIR;

struct temp_dir : razor::test::scratch_dir {
  temp_dir() : scratch_dir("clilimits") {}
  const fs::path& p = dir;
};

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

}  // namespace

TEST(CliLimits, GgufInfoJsonSurvivesInvalidUtf8AndTextIsEscaped) {
  temp_dir td;
  const auto p = td.p / "bad-utf8.gguf";
  using namespace razor::gguf;
  ASSERT_TRUE(write_file(p.string(),
                         {{"general.architecture", value::str("x")},
                          {"general.name", value::str("bad \xff\xfe name")},
                          {"general.evil", value::str("\x1b]0;pwned\x07")}},
                         {})
                  .ok());
  auto r = run("gguf-info --json " + p.string());
  EXPECT_EQ(r.code, 0) << r.out;  // was: std::terminate on nlohmann's type_error.316
  EXPECT_TRUE(contains(r.out, "bad \xEF\xBF\xBD")) << r.out;
  r = run("gguf-info " + p.string());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "\\x1b]0;pwned\\x07")) << r.out;
  EXPECT_FALSE(contains(r.out, "\x1b")) << r.out;
}

TEST(CliLimits, FifoGivenAsAFileIsAnErrorNotAHang) {
  temp_dir td;
  const auto fifo = td.p / "model.gguf";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto r = run("gguf-info " + fifo.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, fifo.string() + ": is a FIFO")) << r.out;
  r = run("pack " + kModels + "/tiny-qwen3-moe --recipe " + fifo.string() + " --out " + (td.p / "o.gguf").string());
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "is a FIFO")) << r.out;
}

TEST(CliLimits, BinaryRecipeBytesAreEscapedInTheError) {
  temp_dir td;
  const auto rec = td.p / "binary.txt";
  std::ofstream(rec, std::ios::binary) << std::string("\x1b[2J\x7f\xff\xfe garbage\n", 16);
  auto r = run("pack " + kModels + "/tiny-qwen3-moe --recipe " + rec.string() + " --out " + (td.p / "o.gguf").string());
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "binary.txt:1")) << r.out;
  EXPECT_TRUE(contains(r.out, "\\x1b[2J\\x7f\\xff\\xfe")) << r.out;
  EXPECT_FALSE(contains(r.out, "\x1b")) << r.out;
}

TEST(CliLimits, EmptyOptionValueNamesTheOption) {
  temp_dir td;
  auto r = run("quantize " + kModels + "/tiny-qwen3-moe --layers= --out " + (td.p / "o").string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_TRUE(contains(r.out, "--layers= has an empty value")) << r.out;
  EXPECT_FALSE(contains(r.out, "--out is required")) << r.out;
  EXPECT_FALSE(fs::exists(td.p / "o"));
}

TEST(CliLimits, HostileConfigAndIndexAreClearErrors) {
  temp_dir td;
  const auto m = td.p / "m";
  fs::create_directories(m);
  fs::create_symlink(fs::absolute(kModels + "/tiny-qwen3-moe/model.safetensors"), m / "model.safetensors");
  auto cfg = razor::test::slurp(kModels + "/tiny-qwen3-moe/config.json");
  auto j = nlohmann::json::parse(cfg);
  j["num_hidden_layers"] = 1e9;
  std::ofstream(m / "config.json") << j.dump();
  auto r = run("inspect " + m.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, "config.json: num_hidden_layers = 1000000000.0 is out of range (outside razor's limit")) << r.out;
  // An empty index: quantize used to copy the unquantized shard and report success.
  std::ofstream(m / "config.json") << cfg;
  std::ofstream(m / "model.safetensors.index.json") << R"({"metadata":{},"weight_map":{}})";
  r = run("quantize " + m.string() + " --recipe seed-default --out " + (td.p / "q").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, "weight_map is empty")) << r.out;
  EXPECT_FALSE(fs::exists(td.p / "q"));
  // A recipe nested 300,000 deep.
  fs::remove(m / "model.safetensors.index.json");
  std::ofstream(td.p / "deep.json") << std::string(300000, '[');
  r = run("footprint " + m.string() + " --recipe " + (td.p / "deep.json").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, "deep.json: JSON nested deeper than 64 levels at byte 64")) << r.out;
}
