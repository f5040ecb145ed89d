// The text benchmarks the seed's harness runs (seed-reference §4.2), read from local JSONL files
// (<data>/<key>.jsonl, one dataset row per line, fields as the Hugging Face dataset has them; docs/eval.md says
// how to export each one). The selection is the first n rows in file order: export the rows in the seed's order
// (shuffled with seed 0 where the seed shuffles) and the subset is the seed's.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "eval/sandbox.h"
#include "util/status.h"

namespace razor::eval {

// One table drives the benchmark list (house style 10): the CLI help, the loaders, the result keys, the tests.
// key, default n, accuracy key suffix, count prefix ("" = key), fields read from each JSONL row
// clang-format off
#define RAZOR_EVAL_BENCHMARKS(X)                                                                                     \
  X(mmlu_pro,  150, "acc",   "",     "question, options (list of up to 10), answer_index; id: question_id")          \
  X(gpqa,      198, "acc",   "",     "question (options a)-d) embedded), answer (letter A-D)")                       \
  X(mmmlu,     150, "acc",   "",     "Question, A, B, C, D, Answer (letter)")                                        \
  X(bbeh,      120, "acc",   "",     "input, target")                                                                \
  X(aime,       30, "acc",   "",     "problem (or question), answer; id")                                            \
  X(math500,   120, "acc",   "",     "problem, answer; unique_id")                                                   \
  X(gsm8k,     200, "acc",   "",     "question, answer (solution ending '#### <number>')")                           \
  X(hle,       500, "acc",   "",     "id, question, answer, answer_type (multipleChoice|exactMatch), image (rows with one are skipped)") \
  X(humaneval, 164, "pass1", "he",   "task_id, prompt, test, entry_point")                                           \
  X(mbpp,      150, "pass1", "mbpp", "task_id, prompt, test_list, test_imports")
// clang-format on

enum class bench_id {
#define X(key, n, acc, prefix, fields) key,
  RAZOR_EVAL_BENCHMARKS(X)
#undef X
};

struct bench_info {
  bench_id id;
  std::string_view key;
  int default_n;
  std::string_view acc_suffix;    // "<key>_acc" or "<key>_pass1"
  std::string_view count_prefix;  // "<prefix>_n", "_n_finished", "_trunc"
  std::string_view fields;
};
std::span<const bench_info> bench_table();
const bench_info* find_bench(std::string_view key);
std::string bench_keys();  // "mmlu_pro, gpqa, ..."

// One question, ready to send.
struct bench_item {
  std::string id;
  std::string prompt;
  std::string gold;       // letter, number, string; "" for code
  nlohmann::json extra;   // code tests, HLE answer_type, HumanEval prompt
};

// Reads <data_dir>/<key>.jsonl (first `n` usable rows; n <= 0: all). Messages name the file, line and field.
result<std::vector<bench_item>> load_bench(const bench_info& b, const std::string& data_dir, int n);
// Builds one item from a parsed row (exposed for tests); `line` numbers the message.
result<bench_item> make_item(const bench_info& b, const nlohmann::json& row, size_t line);

struct grade_result {
  std::string extracted;  // what the parser read ("" when nothing)
  bool correct = false;
};
// Grades the full generation (thought included) as the seed does: extraction after the last </think>.
grade_result grade(const bench_info& b, const bench_item& item, const std::string& output, const sandbox_limits& lim);

}  // namespace razor::eval
