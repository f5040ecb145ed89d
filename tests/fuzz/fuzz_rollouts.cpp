// libFuzzer target: razor recover's rollouts.jsonl reader (core/recover/rollouts_file.h parse_rollouts), the file
// between the OPD phases that a user may bring from elsewhere (generated on an inference server). The input is the
// file's text; the vocabulary is the fixture's 4096. Never a crash, a stack overflow (JSON nesting is bounded) or an
// unbounded allocation; whatever parses writes back to lines that parse to the same rollouts.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "recover/rollouts_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto rs = razor::recover::parse_rollouts(text, "fuzz.jsonl", 4096, 1024);
  if (!rs.ok()) return 0;
  std::string back;
  for (auto& r : *rs) back += razor::recover::rollout_line(r) + "\n";
  auto again = razor::recover::parse_rollouts(back, "again.jsonl", 4096, 1024);
  if (!again.ok() || again->size() != rs->size()) __builtin_trap();
  for (size_t i = 0; i < rs->size(); ++i)
    if ((*again)[i].gen_ids != (*rs)[i].gen_ids || (*again)[i].prompt_ids != (*rs)[i].prompt_ids) __builtin_trap();
  return 0;
}
