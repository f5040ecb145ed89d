// Benchmark results: one normalized record per (run, benchmark), an importer for every result-file schema
// the seed wrote and for ours, and the statistics the comparison view draws its verdicts from.
// Plain C++ (nlohmann-json, no Qt): the workbench's comparison view, `razor eval`'s tests and test_ui read it.
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
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "results/benchmarks.h"
#include "results/paired.h"

namespace razor::results {

// ---- one result ------------------------------------------------------------------------------------------
enum class schema_variant { eval8, eval_legacy, bench8, llama_cpp, multimodal, single_bench, quant_compare, razor };
std::string_view schema_variant_name(schema_variant v);

struct bench_result {
  std::string run;                    // the file's "tag" (or "run"); the file name without .json otherwise
  std::string bench;                  // normalized key (benchmark_table), e.g. "gpqa"
  double acc = 0;                     // percent, truncations counted wrong (NMSE for expert_nmse)
  std::optional<double> acc_finished;  // percent among finished generations
  int n = 0;                          // questions; 0 = unknown (no interval, no test)
  std::optional<int> n_finished;
  std::optional<int> trunc;           // truncated generations
  std::optional<int> budget;          // max new tokens, when the file says
  std::string backend;                // "vllm", "llama.cpp", "razor", "moe_compare"
  std::optional<double> footprint;    // GB (1e9 bytes); files rarely say; see ResultsModel's run catalogue
  std::string model;                  // "model", else "tokenizer"; "" when absent
  std::string source;                 // file it came from
  schema_variant variant = schema_variant::eval8;
  bool higher_is_better = true;
  // id -> correct from the per-sample side file ("<file>.samples.jsonl", results/paired.h) when there is one:
  // two runs that both have it are compared item by item (McNemar) as well.
  std::shared_ptr<const std::map<std::string, bool>> samples;
  // The file's "provenance" (`razor eval` results, eval/provenance.h): what was measured; null when absent.
  std::shared_ptr<const nlohmann::json> provenance;
  bool is_proportion() const { return higher_is_better && n > 0; }
};

struct import_result {
  std::vector<bench_result> results;
  std::string error;  // empty on success: "gpqa_n: expected a non-negative integer, got \"x\""
  std::string note;   // a side file of per-sample records that could not be read (the summary still imports)
  // The file's run (also when only the server's speed was measured: such a file has no results), its "speed" block
  // (`razor eval --speed-contexts`, eval/speed.h speed_json) and its "provenance"; null when absent.
  std::string run;
  std::shared_ptr<const nlohmann::json> speed, provenance;
  bool ok() const { return error.empty(); }
};

// Normalizes one parsed file. `source_name` is used for the run name when the file has no tag and in
// messages; it is stored in bench_result::source.
import_result import_result_json(const nlohmann::json& doc, const std::string& source_name);
// Reads and parses `path` (messages start with the path).
import_result import_result_file(const std::string& path);
// True when `doc` is one of the seed's per-question "<tag>_dbg.json" files.
bool is_debug_dump(const nlohmann::json& doc);

// ---- statistics --------------------------------------------------------------------------------------------
// z for a two-sided 95% interval / test.
inline constexpr double kZ95 = 1.959963984540054;

struct interval {
  double lo = 0, hi = 0;  // percent
};
// Wilson score interval of a proportion given in percent over n trials (n > 0), in percent.
interval wilson_interval(double pct, int n, double z = kZ95);
// Pooled two-proportion z statistic of b versus a (positive: b higher); 0 when either n is 0 or the pooled
// variance is 0 (both 0% or both 100%).
double two_proportion_z(double pct_a, int n_a, double pct_b, int n_b);

enum class verdict_kind {
  baseline,        // the column everything is compared with
  better,          // significantly better (two-proportion test, 95%)
  within_noise,     // the difference is within noise
  recoverable_gap,  // significantly worse on acc, but acc_finished is not: the loss is truncation
  worse,           // significantly worse, not explained by truncation
  no_test,          // no n (or not a proportion): only the delta is shown
  missing          // one side has no result
};
std::string_view verdict_name(verdict_kind v);  // "better", "within noise", "recoverable gap", ...

struct bench_comparison {
  verdict_kind verdict = verdict_kind::missing;
  double delta = 0;                     // candidate - baseline, points
  std::optional<double> delta_finished;  // on acc_finished, when both have it
  double z = 0;                         // two-proportion z on acc
  std::optional<paired_test> paired;     // McNemar on the items both runs graded, when both have samples
  std::optional<double> z_finished;      // on acc_finished over n_finished
  std::string why;                      // one sentence for tooltips and the CSV
};
bench_comparison compare_results(const bench_result* baseline, const bench_result* candidate);

// What two results' provenance records disagree on beyond the model (the endpoint, the served name and the
// artifact are the model): razor's version, the budget, this benchmark's data file (SHA-256 and questions), the
// server's flags other than its model path. Empty when they agree or either has no record.
std::vector<std::string> provenance_differences(const bench_result& a, const bench_result& b);

// ---- the validation gate -------------------------------------------------------------------------------------
// resources/results/official_targets.json: {"gate_points":2.0,"targets":[{"model","label","source",
// "benchmarks":{key: percent}}]}
struct official_target {
  std::string model;  // as results name it: "Qwen/Qwen3.5-122B-A10B"
  std::string label;  // "Qwen3.5-122B"
  std::string source;
  std::vector<std::pair<std::string, double>> benchmarks;
  std::optional<double> target(std::string_view bench) const;
};
struct official_targets {
  double gate_points = 2.0;
  std::vector<official_target> targets;
  const official_target* for_model(std::string_view model) const;  // case-insensitive
};
// Parses the targets file; error text in `error` (targets empty then).
official_targets parse_official_targets(const nlohmann::json& doc, std::string* error);

enum class gate_state { gated, not_gated, no_target };
struct gate_status {
  gate_state state = gate_state::no_target;
  std::string evidence;  // "gemma4_ladder_32k (google/gemma-4-31b-it) 85.4 vs official 85.2 (+0.2)"
  std::optional<double> off_by;
};
// The gate of one benchmark axis: gated when any result of a model that has an official number for `bench`
// reproduces it within gate_points; the closest such result is the evidence.
gate_status gate_for(std::string_view bench, std::span<const bench_result> results, const official_targets& targets);
std::string_view gate_state_name(gate_state s);  // "gated", "not gated", "no target"

}  // namespace razor::results
