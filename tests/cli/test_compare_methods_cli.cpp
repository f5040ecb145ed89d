// razor compare-methods and razor quantize --recipe rtn-asym / awq through the CLI on the qwen3_moe fixture: the
// table, the result file, the refusals naming the input, and awq's ptq_meta.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/test_util.h"

namespace {

const auto run = razor::test::run_razor;
using razor::test::slurp;
const std::string kModel = std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe";

TEST(CompareMethodsCli, TableAndResultFile) {
  razor::test::scratch_dir s("cmpm");
  const std::string out = s / "r.json";
  auto r = run("compare-methods " + kModel + " --methods clip,rtn-asym,gptq --calib-tokens 256 --tokens-per-expert 32 "
               "--windows 1 --ctx 64 --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("mean NMSE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rtn-asym"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("unquantized ppl"), std::string::npos) << r.out;
  auto j = nlohmann::json::parse(slurp(out));
  EXPECT_EQ(j["format"], "razor.method_compare/1");
  EXPECT_EQ(j["methods"], nlohmann::json::parse(R"(["clip","rtn-asym","gptq"])"));
  EXPECT_EQ(j["calibration"]["max_per_expert"], 32);
  EXPECT_TRUE(j["summary"]["gptq"].contains("kl_mean"));
  // Again over its own result: allowed (razor's own file); over a foreign file: refused, naming it.
  r = run("compare-methods " + kModel + " --methods absmax --calib-tokens 128 --no-kl --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("KL mean"), std::string::npos) << r.out;
  const std::string foreign = s / "notes.json";
  std::ofstream(foreign) << "{\"mine\": 1}\n";
  r = run("compare-methods " + kModel + " --methods absmax --calib-tokens 128 --no-kl --out " + foreign);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find(foreign), std::string::npos) << r.out;
  EXPECT_EQ(slurp(foreign), "{\"mine\": 1}\n");
  r = run("compare-methods " + kModel + " --methods clip,spqr --no-kl");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("spqr"), std::string::npos) << r.out;
}

TEST(CompareMethodsCli, QuantizeWithAwqRecordsPtqMeta) {
  razor::test::scratch_dir s("qawq");
  auto r = run("quantize " + kModel + " --recipe awq --calib-tokens 256 --calib-seqlen 128 --tokens-per-expert 16 --cpu "
               "--out " + (s / "q"));
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(slurp(s / "q/razor_quant_summary.json"));
  const auto& pm = j["ptq_meta"];
  EXPECT_EQ(pm["method"], "awq");
  EXPECT_EQ(pm["backbone"], "absmax");
  EXPECT_EQ(pm["max_tok_per_expert"], 16);
  EXPECT_EQ(pm["calib_tokens"], 256);
  EXPECT_EQ(pm["expert_slices"], 4 * 16 * 3);
  EXPECT_TRUE(pm["fallbacks"].is_object());
  // Layer-range parts (each runs the token pass, keeps its own layers' tokens) merge into the single run's bytes
  // and ptq_meta.
  const std::string a = "quantize " + kModel + " --recipe awq --calib-tokens 256 --calib-seqlen 128 --tokens-per-expert 16 --cpu";
  ASSERT_EQ(run(a + " --layers 0:2 --out " + (s / "p1")).code, 0);
  ASSERT_EQ(run(a + " --layers 2:4,rest --out " + (s / "p2")).code, 0);
  r = run("merge " + kModel + " --recipe awq --part " + (s / "p1") + " --part " + (s / "p2") + " --out " + (s / "m"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(slurp(s / "q/model.safetensors") == slurp(s / "m/model.safetensors"));
  auto m = nlohmann::json::parse(slurp(s / "m/razor_quant_summary.json"));
  EXPECT_EQ(m["ptq_meta"], pm);
}

}  // namespace
