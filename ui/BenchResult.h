// Benchmark results: one normalized record per (run, benchmark), an importer for every result-file schema
// the seed wrote and for ours, and the statistics the comparison view draws its verdicts from.
// Plain C++ (nlohmann-json, no Qt), so the importer and the statistics are testable on their own.
//
// Accepted files (docs/comparison.md; seed-reference §4.6):
//   Eval8        vllm_eval8.py: "<b>_acc", "<b>_acc_finished", "<b>_n", "<b>_n_finished", "<b>_trunc";
//                HumanEval as "humaneval_pass1"/"he_*", MBPP as "mbpp_pass1"/"mbpp_*"; tag, model, think, seconds
//   EvalLegacy   vllm_eval.py: "<b>_acc", "<b>_n", "<b>_trunc", "humaneval_pass@1", "budget"; no finished fields
//   Bench8       the early 8-benchmark harness: "<b>_acc/_n/_trunc" only, multimodal keys mixed in
//   LlamaCpp     llamacpp_eval8.py: like Eval8 with "backend":"llama.cpp", "tokenizer", "budget", no "model"
//   Multimodal   mm_eval.py (results/mm/): "<b>_acc/_n/_trunc", no "think", no "seconds"
//   SingleBench  {"tag","bench","model","n","acc",...} (the budget-forcing experiment)
//   QuantCompare moe_compare.py: {"model","bits","group","summary":{method:{mean_nmse,median_nmse,n_experts}}}
//                -> one record per method, bench "expert_nmse", lower is better, no proportion statistics
//   Razor        ours: {"format":"razor-bench/1","run","model","backend","budget","footprint_gb",
//                "results":[{"bench","acc","acc_finished","n","n_finished","trunc"}]}
// A file that is not a JSON object, holds no score, or has a score of the wrong type or range is rejected
// as a whole with a message naming the file and the key. The seed's "<tag>_dbg.json" companions
// (per-question {gold, parsed, tail} lists) are recognised and rejected as "not a result file".
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

// ---- the benchmark table (house style 10: the importer, the view's rows and the tests read it) ----------
struct BenchmarkInfo {
  std::string_view key;          // normalized key: "mmlu_pro"
  std::string_view name;         // display name: "MMLU-Pro"
  std::string_view accKey;       // primary accuracy key ("" = "<key>_acc")
  std::string_view accKeyAlt;    // an older spelling ("humaneval_pass@1"), "" if none
  std::string_view countPrefix;  // prefix of _n / _n_finished / _trunc ("" = key)
  std::string_view group;        // "knowledge", "reasoning", "math", "code", "multimodal", "quant"
  bool higherIsBetter;
};

// clang-format off
#define RAZOR_BENCHMARKS(X)                                                                           \
  /*  key           name                 accKey               accKeyAlt            prefix  group  hib */ \
  X(mmlu_pro,    "MMLU-Pro",          "",                  "",                  "",     "knowledge",  true)  \
  X(gpqa,        "GPQA-Diamond",      "",                  "",                  "",     "knowledge",  true)  \
  X(mmmlu,       "MMMLU",             "",                  "",                  "",     "knowledge",  true)  \
  X(hle,         "HLE (no tools)",    "",                  "",                  "",     "knowledge",  true)  \
  X(bbeh,        "BBEH",              "",                  "",                  "",     "reasoning",  true)  \
  X(aime,        "AIME",              "",                  "",                  "",     "math",       true)  \
  X(aime2026,    "AIME 2026",         "",                  "",                  "",     "math",       true)  \
  X(hmmt,        "HMMT",              "",                  "",                  "",     "math",       true)  \
  X(math500,     "MATH-500",          "",                  "",                  "",     "math",       true)  \
  X(gsm8k,       "GSM8K",             "",                  "",                  "",     "math",       true)  \
  X(lcb,         "LiveCodeBench v6",  "",                  "",                  "",     "code",       true)  \
  X(humaneval,   "HumanEval",         "humaneval_pass1",   "humaneval_pass@1",  "he",   "code",       true)  \
  X(mbpp,        "MBPP",              "mbpp_pass1",        "",                  "mbpp", "code",       true)  \
  X(tau2,        "τ²-Bench",          "",                  "",                  "",     "agent",      true)  \
  X(mmmu,        "MMMU",              "",                  "",                  "",     "multimodal", true)  \
  X(mmmu_pro,    "MMMU-Pro",          "",                  "",                  "",     "multimodal", true)  \
  X(mathvision,  "MATH-Vision",       "",                  "",                  "",     "multimodal", true)  \
  X(medxpert,    "MedXpertQA",        "",                  "",                  "",     "multimodal", true)  \
  X(expert_nmse, "Expert NMSE (mean)", "",                 "",                  "",     "quant",      false)
// clang-format on

std::span<const BenchmarkInfo> benchmarkTable();
// The row for `key`, or nullptr for a benchmark the table does not know (such results are still imported).
const BenchmarkInfo* findBenchmark(std::string_view key);
// Display name: the table's, or the key itself.
std::string benchmarkName(std::string_view key);
// Table order of `key` (unknown keys sort after every known one).
int benchmarkOrder(std::string_view key);

// ---- one result ------------------------------------------------------------------------------------------
enum class SchemaVariant { Eval8, EvalLegacy, Bench8, LlamaCpp, Multimodal, SingleBench, QuantCompare, Razor };
std::string_view schemaVariantName(SchemaVariant v);

struct BenchResult {
  std::string run;                    // the file's "tag" (or "run"); the file name without .json otherwise
  std::string bench;                  // normalized key (benchmarkTable), e.g. "gpqa"
  double acc = 0;                     // percent, truncations counted wrong (NMSE for expert_nmse)
  std::optional<double> accFinished;  // percent among finished generations
  int n = 0;                          // questions; 0 = unknown (no interval, no test)
  std::optional<int> nFinished;
  std::optional<int> trunc;           // truncated generations
  std::optional<int> budget;          // max new tokens, when the file says
  std::string backend;                // "vllm", "llama.cpp", "razor", "moe_compare"
  std::optional<double> footprint;    // GB (1e9 bytes); files rarely say; see ResultsModel's run catalogue
  std::string model;                  // "model", else "tokenizer"; "" when absent
  std::string source;                 // file it came from
  SchemaVariant variant = SchemaVariant::Eval8;
  bool higherIsBetter = true;
  bool isProportion() const { return higherIsBetter && n > 0; }
};

struct ImportResult {
  std::vector<BenchResult> results;
  std::string error;  // empty on success: "gpqa_n: expected a non-negative integer, got \"x\""
  bool ok() const { return error.empty(); }
};

// Normalizes one parsed file. `sourceName` is used for the run name when the file has no tag and in
// messages; it is stored in BenchResult::source.
ImportResult importResultJson(const nlohmann::json& doc, const std::string& sourceName);
// Reads and parses `path` (messages start with the path).
ImportResult importResultFile(const std::string& path);
// True when `doc` is one of the seed's per-question "<tag>_dbg.json" files.
bool isDebugDump(const nlohmann::json& doc);

// ---- statistics --------------------------------------------------------------------------------------------
// z for a two-sided 95% interval / test.
inline constexpr double kZ95 = 1.959963984540054;

struct Interval {
  double lo = 0, hi = 0;  // percent
};
// Wilson score interval of a proportion given in percent over n trials (n > 0), in percent.
Interval wilsonInterval(double pct, int n, double z = kZ95);
// Pooled two-proportion z statistic of b versus a (positive: b higher); 0 when either n is 0 or the pooled
// variance is 0 (both 0% or both 100%).
double twoProportionZ(double pctA, int nA, double pctB, int nB);

enum class Verdict {
  Baseline,        // the column everything is compared with
  Better,          // significantly better (two-proportion test, 95%)
  WithinNoise,     // the difference is within noise
  RecoverableGap,  // significantly worse on acc, but acc_finished is not: the loss is truncation
  Worse,           // significantly worse, not explained by truncation
  NoTest,          // no n (or not a proportion): only the delta is shown
  Missing          // one side has no result
};
std::string_view verdictName(Verdict v);  // "better", "within noise", "recoverable gap", ...

struct BenchComparison {
  Verdict verdict = Verdict::Missing;
  double delta = 0;                     // candidate - baseline, points
  std::optional<double> deltaFinished;  // on acc_finished, when both have it
  double z = 0;                         // two-proportion z on acc
  std::optional<double> zFinished;      // on acc_finished over n_finished
  std::string why;                      // one sentence for tooltips and the CSV
};
BenchComparison compareResults(const BenchResult* baseline, const BenchResult* candidate);

// ---- the validation gate -------------------------------------------------------------------------------------
// resources/results/official_targets.json: {"gate_points":2.0,"targets":[{"model","label","source",
// "benchmarks":{key: percent}}]}
struct OfficialTarget {
  std::string model;  // as results name it: "Qwen/Qwen3.5-122B-A10B"
  std::string label;  // "Qwen3.5-122B"
  std::string source;
  std::vector<std::pair<std::string, double>> benchmarks;
  std::optional<double> target(std::string_view bench) const;
};
struct OfficialTargets {
  double gatePoints = 2.0;
  std::vector<OfficialTarget> targets;
  const OfficialTarget* forModel(std::string_view model) const;  // case-insensitive
};
// Parses the targets file; error text in `error` (targets empty then).
OfficialTargets parseOfficialTargets(const nlohmann::json& doc, std::string* error);

enum class GateState { Gated, NotGated, NoTarget };
struct GateStatus {
  GateState state = GateState::NoTarget;
  std::string evidence;  // "gemma4_ladder_32k (google/gemma-4-31b-it) 85.4 vs official 85.2 (+0.2)"
  std::optional<double> offBy;
};
// The gate of one benchmark axis: gated when any result of a model that has an official number for `bench`
// reproduces it within gatePoints; the closest such result is the evidence.
GateStatus gateFor(std::string_view bench, std::span<const BenchResult> results, const OfficialTargets& targets);
std::string_view gateStateName(GateState s);  // "gated", "not gated", "no target"
