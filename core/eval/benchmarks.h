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
#include "results/benchmarks.h"
#include "util/status.h"

namespace razor::eval {

// The benchmarks `razor eval` runs: the rows of the one benchmark table (results/benchmarks.h) with a default n.
// Their CLI help, loaders, result keys and tests read that table.
using results::bench_id;
using bench_info = results::benchmark_info;
std::span<const bench_info> bench_table();  // the runnable rows, in table order
const bench_info* find_bench(std::string_view key);
std::string bench_keys();  // "mmlu_pro, gpqa, ..."

// One question, ready to send.
inline constexpr size_t kMaxImages = 8;  // per prompt, as the seed's limit_mm_per_prompt

// A Python list literal of strings ("['a', \"b\"]", MMMU's options field; the seed calls eval() on it): read
// as data, never evaluated. Errors name `what`.
result<std::vector<std::string>> parse_python_str_list(std::string_view s, const std::string& what);

struct bench_item {
  std::string id;
  std::string prompt;
  std::string gold;       // letter, number, string; "" for code
  std::vector<std::string> images;  // multimodal: data URLs, sent before the text (at most kMaxImages)
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
