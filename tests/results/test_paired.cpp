// Paired statistics (results/paired.h): McNemar's exact test against values computed by hand, the samples side
// file of `razor eval` read next to its result file, and the comparison's sentence that carries the test; the
// provenance records two results are compared on (bench_result.h: provenance_differences).
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "common/test_util.h"
#include "results/bench_result.h"
#include "results/paired.h"

using namespace razor::results;

namespace {

// p-values computed by hand as fractions (exact), compared to double rounding.
constexpr double kExact = 1e-12;

struct scratch : razor::test::scratch_dir {
  scratch() : scratch_dir("paired") {}
};

void write(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

std::string result_json(const std::string& tag, double acc, int n) {
  return R"({"format":"razor-bench/1","run":")" + tag + R"(","model":"m","backend":"razor","results":[{"bench":"gpqa","acc":)" +
         std::to_string(acc) + R"(,"n":)" + std::to_string(n) + "}]}";
}

std::string samples(const std::string& pattern) {  // one record per character: 1 right, 0 wrong
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i)
    out += R"({"bench":"gpqa","id":"q)" + std::to_string(i) + R"(","correct":)" + (pattern[i] == '1' ? "true" : "false") +
           ",\"raw\":\"...\"}\n";
  return out;
}

}  // namespace

TEST(Paired, BinomialTwoSidedByHand) {
  EXPECT_NEAR(binomial_two_sided_p(0, 5), 2.0 / 32, kExact);    // 2 x (1/32)
  EXPECT_NEAR(binomial_two_sided_p(5, 5), 2.0 / 32, kExact);    // symmetric
  EXPECT_NEAR(binomial_two_sided_p(1, 10), 22.0 / 1024, kExact);  // 2 x (1 + 10) / 1024
  EXPECT_NEAR(binomial_two_sided_p(3, 6), 1.0, kExact);         // 2 x 42/64 capped at 1
  EXPECT_NEAR(binomial_two_sided_p(0, 0), 1.0, kExact);         // no discordant pairs
  // Large n: 4,000 discordant pairs split 1,900 / 2,100 (z = -3.16 with continuity correction: p ~ 1.6e-3).
  const double p = binomial_two_sided_p(1900, 4000);
  EXPECT_GT(p, 1.0e-3);
  EXPECT_LT(p, 2.2e-3);
}

TEST(Paired, McNemarCountsOnlyCommonItems) {
  std::map<std::string, bool> a{{"q0", true}, {"q1", true}, {"q2", false}, {"q3", false}, {"q4", true}};
  std::map<std::string, bool> b{{"q0", true}, {"q1", false}, {"q2", true}, {"q3", true}, {"q9", true}};
  paired_test t = mcnemar(a, b);
  EXPECT_EQ(t.n, 4);  // q4 and q9 are on one side only
  EXPECT_EQ(t.only_baseline, 1);
  EXPECT_EQ(t.only_candidate, 2);
  EXPECT_NEAR(t.p, 1.0, kExact);  // 2 x P(X <= 1 | n = 3) = 2 x 4/8
}

TEST(Paired, SideFilesAreReadAndTheComparisonSaysSo) {
  scratch d;
  // 10 items: the baseline right on q0..q3, the candidate on all but q1: 6 discordant pairs in its favour (q4..q9),
  // 1 against (q1): 2 x P(X <= 1 | n = 7) = 2 x 8/128.
  write(d / "base.json", result_json("base", 40.0, 10));
  write(d / "base.samples.jsonl", samples("1111000000"));
  write(d / "cand.json", result_json("cand", 90.0, 10));
  write(d / "cand.samples.jsonl", samples("1011111111") + R"({"bench":"gpqa","id":"torn)");  // torn last line
  import_result a = import_result_file(d / "base.json"), b = import_result_file(d / "cand.json");
  ASSERT_TRUE(a.ok() && b.ok()) << a.error << b.error;
  EXPECT_TRUE(b.note.empty()) << b.note;
  ASSERT_EQ(a.results.size(), 1u);
  ASSERT_TRUE(a.results[0].samples && b.results[0].samples);
  EXPECT_EQ(b.results[0].samples->size(), 10u);
  bench_comparison c = compare_results(&a.results[0], &b.results[0]);
  ASSERT_TRUE(c.paired.has_value());
  EXPECT_EQ(c.paired->n, 10);
  EXPECT_EQ(c.paired->only_candidate, 6);
  EXPECT_EQ(c.paired->only_baseline, 1);
  EXPECT_NEAR(c.paired->p, 16.0 / 128, kExact);
  EXPECT_NE(c.why.find("McNemar exact p = 0.125"), std::string::npos) << c.why;
}

TEST(Paired, ABrokenSideFileIsANoteNamingTheLine) {
  scratch d;
  write(d / "r.json", result_json("r", 50.0, 2));
  write(d / "r.samples.jsonl", samples("10") + "not json\n" + samples("1"));
  import_result r = import_result_file(d / "r.json");
  ASSERT_TRUE(r.ok()) << r.error;  // the summary still imports
  EXPECT_FALSE(r.results[0].samples);
  EXPECT_NE(r.note.find("r.samples.jsonl:3: not a sample record"), std::string::npos) << r.note;
  EXPECT_EQ(samples_path_for("x/run.json"), "x/run.samples.jsonl");
  EXPECT_EQ(samples_path_for("x/run.txt"), "");
}

TEST(Provenance, DifferencesBeyondTheModelAreNamed) {
  scratch d;
  auto with = [](const std::string& tag, const std::string& prov) {
    std::string j = result_json(tag, 50.0, 100);
    return j.substr(0, j.size() - 1) + ",\"provenance\":" + prov + "}";
  };
  const std::string same_data = R"("datasets":{"gpqa":{"sha256":"aa","n":100}})";
  write(d / "a.json", with("a", R"({"razor_version":"0.1.0","budget":32768,"served_model":"m1",)" + same_data +
                                    R"(,"server_command":["llama-server","-m","/x/a.gguf","-c","8192"],"artifact":{"path":"/x/a.gguf"}})"));
  write(d / "b.json", with("b", R"({"razor_version":"0.1.0","budget":32768,"served_model":"m2",)" + same_data +
                                    R"(,"server_command":["llama-server","-m","/x/b.gguf","-c","8192"],"artifact":{"path":"/x/b.gguf"}})"));
  write(d / "c.json", with("c", R"({"razor_version":"0.2.0","budget":16384,"datasets":{"gpqa":{"sha256":"bb","n":100}},)"
                                    R"("server_command":["llama-server","-m","/x/c.gguf","-c","4096"],"artifact":{"path":"/x/c.gguf"}})"));
  import_result a = import_result_file(d / "a.json"), b = import_result_file(d / "b.json"), c = import_result_file(d / "c.json");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  ASSERT_TRUE(a.results[0].provenance);
  // Only the model differs (its name, its file, the server's model path): nothing to warn about.
  EXPECT_TRUE(provenance_differences(a.results[0], b.results[0]).empty());
  EXPECT_EQ(provenance_differences(a.results[0], c.results[0]),
            (std::vector<std::string>{"razor_version", "budget", "gpqa data file", "server flags"}));
  bench_comparison cmp = compare_results(&a.results[0], &c.results[0]);
  EXPECT_NE(cmp.why.find("measured differently: razor_version, budget, gpqa data file, server flags"), std::string::npos)
      << cmp.why;
}
