// rollouts.jsonl, the file between razor recover's phases A, B and C (docs/recovery.md, "the files"):
//   {"pid": 3, "k": 1, "prompt_ids": [..], "gen_ids": [..], "finish_reason": "stop" | "length", "correct": null}
// one line per rollout, pid-major (pid 0 k 0, pid 0 k 1, ...). gen_ids exclude the prompt; "stop" when an end
// token was sampled (it is the last of gen_ids), "length" when max_new stopped it. Plain format code (util and
// JSON only): the fuzz target tests/fuzz/fuzz_rollouts.cpp compiles it in.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace razor::recover {

struct rollout {
  int64_t pid = 0, k = 0;
  std::vector<int32_t> prompt_ids, gen_ids;
  std::string finish_reason = "length";  // "stop" | "length" | "text" (a teacher-forced piece of the text, not sampled)
  nlohmann::json correct = nullptr;      // null for text prompts
};

// The lines of rollouts.jsonl, written atomically.
std::string rollout_line(const rollout& r);
status write_rollouts(const std::vector<rollout>& rs, const std::string& path);
// Reads and checks every line: the keys and their types, token ids in [0, vocab), finish_reason one of the two;
// errors (errc::bad_format) name the file, the line and the key. At most max_lines lines, each at most 64 MiB.
result<std::vector<rollout>> read_rollouts(const std::string& path, int64_t vocab, size_t max_lines = 1u << 24);
// The same checks on the text of such a file; `where` names it in errors.
result<std::vector<rollout>> parse_rollouts(std::string_view text, const std::string& where, int64_t vocab,
                                            size_t max_lines = 1u << 24);

}  // namespace razor::recover
