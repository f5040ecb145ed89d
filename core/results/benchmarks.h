// The benchmark table (house style 10: one table per enumeration). Every benchmark razor knows: the result
// importer (bench_result.h), the comparison view's rows, `razor eval`'s loaders and result keys
// (core/eval/benchmarks.h, the rows with a default n), the CLI's help and the tests all read it.
#pragma once
#include <span>
#include <string>
#include <string_view>

namespace razor::results {

// The rows' names, in table order.
enum class bench_id;

struct benchmark_info {
  bench_id id;
  std::string_view key;           // normalized key: "mmlu_pro"
  std::string_view name;          // display name: "MMLU-Pro"
  std::string_view acc_key;       // primary accuracy key ("" = "<key>_acc")
  std::string_view acc_key_alt;   // an older spelling ("humaneval_pass@1"), "" if none
  std::string_view count_prefix;  // prefix of _n / _n_finished / _trunc ("" = key)
  std::string_view group;         // "knowledge", "reasoning", "math", "code", "multimodal", "quant"
  bool higher_is_better;
  int default_n;                  // questions `razor eval` runs by default; 0: razor does not run it (imported only)
  std::string_view fields;        // what `razor eval` reads from each JSONL row (docs/eval.md), "" when not run

  bool runnable() const { return default_n > 0; }
  std::string primary_acc_key() const { return acc_key.empty() ? std::string(key) + "_acc" : std::string(acc_key); }
  std::string counts_prefix() const { return count_prefix.empty() ? std::string(key) : std::string(count_prefix); }
};

// clang-format off
#define RAZOR_BENCHMARKS(X)                                                                                           \
  /*  key        name                  acc_key            acc_key_alt         prefix  group         hib    n    fields read by `razor eval` */ \
  X(mmlu_pro,    "MMLU-Pro",           "",                "",                 "",     "knowledge",  true,  150, "question, options (list of up to 10), answer_index; id: question_id") \
  X(gpqa,        "GPQA-Diamond",       "",                "",                 "",     "knowledge",  true,  198, "question (options a)-d) embedded), answer (letter A-D)") \
  X(mmmlu,       "MMMLU",              "",                "",                 "",     "knowledge",  true,  150, "Question, A, B, C, D, Answer (letter)") \
  X(bbeh,        "BBEH",               "",                "",                 "",     "reasoning",  true,  120, "input, target") \
  X(aime,        "AIME",               "",                "",                 "",     "math",       true,   30, "problem (or question), answer; id") \
  X(aime2026,    "AIME 2026",          "",                "",                 "",     "math",       true,   30, "problem (or question), answer; id") \
  X(hmmt,        "HMMT",               "",                "",                 "",     "math",       true,   30, "problem (or question), answer; id") \
  X(math500,     "MATH-500",           "",                "",                 "",     "math",       true,  120, "problem, answer; unique_id") \
  X(gsm8k,       "GSM8K",              "",                "",                 "",     "math",       true,  200, "question, answer (solution ending '#### <number>')") \
  X(lcb,         "LiveCodeBench v6",   "",                "",                 "",     "code",       true,  200, "question_content, starter_code, public_test_cases / private_test_cases (JSON list, or base64 -> zlib -> JSON or a pickled str), metadata.func_name; id: question_id") \
  X(hle,         "HLE (no tools)",     "",                "",                 "",     "knowledge",  true,  500, "id, question, answer, answer_type (multipleChoice|exactMatch), image (rows with one are skipped)") \
  X(humaneval,   "HumanEval",          "humaneval_pass1", "humaneval_pass@1", "he",   "code",       true,  164, "task_id, prompt, test, entry_point") \
  X(mbpp,        "MBPP",               "mbpp_pass1",      "",                 "mbpp", "code",       true,  150, "task_id, prompt, test_list, test_imports") \
  X(tau2,        "τ²-Bench",           "",                "",                 "",     "agent",      true,    0, "") \
  X(mmmu,        "MMMU",               "",                "",                 "",     "multimodal", true,  120, "question, options (list or its Python literal), answer (letter, or the value when no options), images (data URLs); id") \
  X(mmmu_pro,    "MMMU-Pro",           "",                "",                 "",     "multimodal", true,  120, "question, options (list or its Python literal), answer (letter), images (data URLs); id") \
  X(mathvision,  "MATH-Vision",        "",                "",                 "",     "multimodal", true,  120, "question, options (list, may be empty), answer, images (data URLs); id") \
  X(medxpert,    "MedXpertQA",         "",                "",                 "",     "multimodal", true,  120, "question, options ({letter: text}), label (letter), images (data URLs); id") \
  X(expert_nmse, "Expert NMSE (mean)", "",                "",                 "",     "quant",      false,   0, "")
// clang-format on

enum class bench_id {
#define X(key, name, acc_key, acc_key_alt, prefix, group, hib, n, fields) key,
  RAZOR_BENCHMARKS(X)
#undef X
};


std::span<const benchmark_info> benchmark_table();
// The row for `key`, or nullptr for a benchmark the table does not know (such results are still imported).
const benchmark_info* find_benchmark(std::string_view key);
// The row of `id`.
const benchmark_info& benchmark(bench_id id);
// Display name: the table's, or the key itself.
std::string benchmark_name(std::string_view key);
// Table order of `key` (unknown keys sort after every known one).
int benchmark_order(std::string_view key);

}  // namespace razor::results
