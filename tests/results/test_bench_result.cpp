// The result importer (every schema the seed wrote, ours, the rejections) and the comparison statistics of
// core/results (bench_result.h), on the bundled seed result files. The models and views built on them are tested
// in tests/ui/test_comparison.cpp.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "results/bench_result.h"

using namespace razor::results;

using nlohmann::json;

namespace {

const std::string kSeed = RAZOR_SOURCE_DIR_T "/resources/results/seed";

// Published numbers carry one decimal: compare rounded to 0.05.
constexpr double kOneDecimal = 0.05;
// Wilson bounds checked against values computed by hand to 4 significant digits.
constexpr double kWilsonTol = 0.01;

const bench_result* find(const std::vector<bench_result>& rs, const std::string& bench) {
  for (auto& r : rs)
    if (r.bench == bench) return &r;
  return nullptr;
}

import_result seedFile(const std::string& rel) { return import_result_file(kSeed + "/" + rel); }

}  // namespace

// ---- importer: every variant ---------------------------------------------------------------------------------
TEST(ResultImport, Eval8WithFinishedFields) {
  import_result r = seedFile("vllm_eval/q36_clip.json");
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.results.size(), 5u);  // mmlu_pro gpqa mmmlu math500 lcb
  const bench_result* g = find(r.results, "gpqa");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->run, "q36_clip");
  EXPECT_EQ(g->variant, schema_variant::eval8);
  EXPECT_NEAR(g->acc, 73.23232323232324, 1e-12);
  ASSERT_TRUE(g->acc_finished.has_value());
  EXPECT_NEAR(*g->acc_finished, 86.45161290322581, 1e-12);
  EXPECT_EQ(g->n, 198);
  EXPECT_EQ(g->n_finished.value_or(-1), 155);
  EXPECT_EQ(g->trunc.value_or(-1), 43);
  EXPECT_EQ(g->model, "models/q36_ptq3b_clip");
  EXPECT_EQ(g->backend, "vllm");
  EXPECT_FALSE(g->budget.has_value());
  EXPECT_EQ(r.results.front().bench, "mmlu_pro");  // table order
}

TEST(ResultImport, LegacyEvalWithHumanEvalPassAtOneAndBudget) {
  import_result r = seedFile("vllm_eval/q122_ptq3b_clip_think.json");
  ASSERT_TRUE(r.ok()) << r.error;
  const bench_result* he = find(r.results, "humaneval");
  ASSERT_NE(he, nullptr);
  EXPECT_NEAR(he->acc, 97.5609756097561, 1e-12);
  EXPECT_EQ(he->n, 164);  // from he_n
  EXPECT_EQ(he->trunc.value_or(-1), 0);
  EXPECT_EQ(he->variant, schema_variant::eval_legacy);
  EXPECT_EQ(he->budget.value_or(0), 32768);
  EXPECT_FALSE(he->acc_finished.has_value());
  ASSERT_NE(find(r.results, "gsm8k"), nullptr);
  EXPECT_NEAR(find(r.results, "mmlu_pro")->acc, 88.5, 1e-12);
  EXPECT_EQ(find(r.results, "mmlu_pro")->n, 200);
}

TEST(ResultImport, LlamaCppFileWithoutModel) {
  import_result r = seedFile("vllm_eval/gguf_iq3xxs.json");
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.results.size(), 2u);
  EXPECT_EQ(r.results[0].variant, schema_variant::llama_cpp);
  EXPECT_EQ(r.results[0].backend, "llama.cpp");
  EXPECT_EQ(r.results[0].model, "Qwen/Qwen3.5-122B-A10B");  // the tokenizer stands in
  EXPECT_EQ(r.results[0].budget.value_or(0), 32768);
  EXPECT_NEAR(find(r.results, "mmlu_pro")->acc, 90.67, kOneDecimal);
  EXPECT_NEAR(find(r.results, "gpqa")->acc, 80.8, kOneDecimal);
}

TEST(ResultImport, MultimodalFile) {
  import_result r = seedFile("mm/mm_ours.json");
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.results.size(), 4u);
  const bench_result* mv = find(r.results, "mathvision");
  ASSERT_NE(mv, nullptr);
  EXPECT_EQ(mv->variant, schema_variant::multimodal);
  EXPECT_NEAR(mv->acc, 70.0, 1e-12);
  EXPECT_EQ(mv->trunc.value_or(-1), 24);
  EXPECT_NEAR(find(r.results, "mmmu_pro")->acc, 80.8, kOneDecimal);
}

TEST(ResultImport, EarlyBench8WithMultimodalKeysMixedIn) {
  import_result r = seedFile("vllm_eval/q122clip_b8.json");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.results.size(), 8u);
  EXPECT_EQ(r.results[0].variant, schema_variant::bench8);
  EXPECT_NE(find(r.results, "mmmu_pro"), nullptr);
  EXPECT_NEAR(find(r.results, "mathvision")->acc, 77.5, 1e-12);
}

TEST(ResultImport, SingleBenchmarkFile) {
  import_result r = seedFile("vllm_eval/q122clip_bbeh_bf.json");
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.results.size(), 1u);
  EXPECT_EQ(r.results[0].bench, "bbeh");
  EXPECT_EQ(r.results[0].n, 100);
  EXPECT_NEAR(r.results[0].acc, 51.0, 1e-12);
  EXPECT_EQ(r.results[0].variant, schema_variant::single_bench);
}

TEST(ResultImport, QuantCompareFile) {
  import_result r = seedFile("quant_compare_q36.json");
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.results.size(), 5u);
  for (auto& x : r.results) {
    EXPECT_EQ(x.bench, "expert_nmse");
    EXPECT_FALSE(x.higher_is_better);
    EXPECT_EQ(x.n, 160);
    EXPECT_EQ(x.variant, schema_variant::quant_compare);
  }
  auto clip = std::find_if(r.results.begin(), r.results.end(), [](auto& x) { return x.run == "quant_compare_q36:ours_clip"; });
  ASSERT_NE(clip, r.results.end());
  EXPECT_NEAR(clip->acc, 0.10044394962023943, 1e-15);
}

TEST(ResultImport, OurFormat) {
  json doc = {{"format", "razor-bench/1"}, {"run", "tiny_q4k"}, {"model", "tiny"}, {"backend", "llama.cpp"},
              {"budget", 4096}, {"footprint_gb", 0.01},
              {"results", {{{"bench", "gpqa"}, {"acc", 50.0}, {"acc_finished", 55.0}, {"n", 198}, {"n_finished", 180}, {"trunc", 18}},
                           {{"bench", "brand_new"}, {"acc", 10.0}, {"n", 10}}}}};
  import_result r = import_result_json(doc, "ours.json");
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.results.size(), 2u);
  EXPECT_EQ(r.results[0].run, "tiny_q4k");
  EXPECT_EQ(r.results[0].trunc.value_or(-1), 18);
  EXPECT_NEAR(r.results[0].footprint.value_or(0), 0.01, 1e-12);
  EXPECT_EQ(r.results[0].variant, schema_variant::razor);
  EXPECT_EQ(r.results[1].bench, "brand_new");  // unknown benchmarks are kept under their key
}


TEST(ResultImport, RejectsMalformedFilesWithAClearError) {
  struct Case {
    json doc;
    std::string expect;
  };
  const Case cases[] = {
      {json::array({1, 2}), "top level is not a JSON object"},
      {json{{"tag", "x"}, {"seconds", 1.0}}, "no benchmark score found"},
      {json{{"tag", "x"}, {"gpqa_acc", "high"}, {"gpqa_n", 198}}, "gpqa_acc: expected a number"},
      {json{{"tag", "x"}, {"gpqa_acc", 180.0}, {"gpqa_n", 198}}, "gpqa_acc: 180.0 is not a percentage"},
      {json{{"tag", "x"}, {"gpqa_acc", 80.0}, {"gpqa_n", -3}}, "gpqa_n: -3 is not a plausible count"},
      {json{{"tag", "x"}, {"gpqa_acc", 80.0}, {"gpqa_n", "198"}}, "gpqa_n: expected a non-negative integer"},
      {json{{"tag", "x"}, {"gpqa_acc", 80.0}, {"gpqa_n", 198}, {"gpqa_trunc", 300}}, "300 truncations out of 198"},
      {json{{"tag", "x"}, {"gpqa_acc", 80.0}, {"gpqa_n", 198}, {"gpqa_acc_finished", nullptr}}, "gpqa_acc_finished: expected a number"},
      {json{{"mmlu_pro", {{{"gold", "D"}, {"parsed", "D"}, {"tail", "..."}}}}}, "debug dump"},
      {json{{"model", "m"}, {"bits", 3}, {"summary", {{"awq", {{"median_nmse", 0.1}}}}}}, "summary.awq.mean_nmse"},
      {json{{"format", "razor-bench/1"}, {"results", {{{"acc", 50}}}}}, "results[0]"},
      {json{{"format", "razor-bench/2"}, {"results", json::array()}}, "newer than this workbench reads"},
  };
  for (const Case& c : cases) {
    import_result r = import_result_json(c.doc, "bad.json");
    EXPECT_FALSE(r.ok()) << c.doc.dump();
    EXPECT_TRUE(r.results.empty());
    EXPECT_NE(r.error.find("bad.json: "), std::string::npos) << r.error;
    EXPECT_NE(r.error.find(c.expect), std::string::npos) << "expected \"" << c.expect << "\" in: " << r.error;
  }
}


// ---- statistics ----------------------------------------------------------------------------------------------
TEST(ResultStats, WilsonInterval) {
  interval a = wilson_interval(50.0, 100);  // 50/100: [40.38, 59.62]
  EXPECT_NEAR(a.lo, 40.38, kWilsonTol);
  EXPECT_NEAR(a.hi, 59.62, kWilsonTol);
  interval b = wilson_interval(100.0, 3);  // 3/3: [43.85, 100]
  EXPECT_NEAR(b.lo, 43.85, kWilsonTol);
  EXPECT_NEAR(b.hi, 100.0, 1e-9);
  interval c = wilson_interval(0.0, 40);  // 0/40: [0, 8.76]
  EXPECT_NEAR(c.lo, 0.0, 1e-9);
  EXPECT_NEAR(c.hi, 8.76, kWilsonTol);
}

TEST(ResultStats, TwoProportionTest) {
  // 60/100 vs 75/100: pooled 0.675, se 0.06624, z = 2.264
  EXPECT_NEAR(two_proportion_z(60, 100, 75, 100), 2.264, 0.001);
  EXPECT_NEAR(two_proportion_z(75, 100, 60, 100), -2.264, 0.001);
  EXPECT_EQ(two_proportion_z(100, 10, 100, 20), 0.0);  // no variance
  EXPECT_EQ(two_proportion_z(50, 0, 60, 10), 0.0);     // no n
}

TEST(ResultStats, Verdicts) {
  bench_result base;
  base.run = "base";
  base.bench = "gpqa";
  base.acc = 80;
  base.acc_finished = 82;
  base.n = 200;
  base.n_finished = 195;
  base.trunc = 5;
  bench_result close = base;
  close.run = "close";
  close.acc = 78;
  EXPECT_EQ(compare_results(&base, &close).verdict, verdict_kind::within_noise);
  bench_result better = base;
  better.run = "better";
  better.acc = 90;
  EXPECT_EQ(compare_results(&base, &better).verdict, verdict_kind::better);
  bench_result trunc = base;  // loses 15 points overall, but not among finished answers
  trunc.run = "trunc";
  trunc.acc = 65;
  trunc.acc_finished = 81;
  trunc.n_finished = 160;
  trunc.trunc = 40;
  bench_comparison t = compare_results(&base, &trunc);
  EXPECT_EQ(t.verdict, verdict_kind::recoverable_gap);
  EXPECT_NEAR(t.delta, -15.0, 1e-12);
  EXPECT_NE(t.why.find("truncation"), std::string::npos);
  bench_result worse = trunc;  // loses among finished answers too
  worse.run = "worse";
  worse.acc_finished = 60;
  EXPECT_EQ(compare_results(&base, &worse).verdict, verdict_kind::worse);
  bench_result noN = base;
  noN.run = "non";
  noN.n = 0;
  EXPECT_EQ(compare_results(&base, &noN).verdict, verdict_kind::no_test);
  EXPECT_EQ(compare_results(&base, nullptr).verdict, verdict_kind::missing);
  EXPECT_EQ(compare_results(&base, &base).verdict, verdict_kind::baseline);
}

// ---- the validation gate -------------------------------------------------------------------------------------
