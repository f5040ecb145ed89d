// Regular expressions for patterns users write (recipe overrides and protect lists, tensor-type recipe lines)
// and for the tokenizer's pre-tokenizer: PCRE2 behind one small interface, with limits, so that a hostile
// pattern can neither overflow the stack when it is compiled nor run for minutes when it is matched.
//
// Limits (regex_options): the pattern's length and parentheses nesting are bounded at compile time
// (pcre2_set_max_pattern_length, pcre2_set_parens_nest_limit: 30,000 nested groups are refused, not
// recursed into); a match is bounded by PCRE2's match, depth and heap limits (a match context). Reaching a
// limit is an error (errc::invalid_argument, "... backtracks too much ..."), never a silent no-match: the
// caller adds where the pattern came from (the recipe file and line).
//
// Syntax: PCRE2's. With `ecmascript` (the default, for recipes) three options bring it closer to the
// ECMAScript grammar of std::regex that llama-quantize uses for --tensor-type: \u0041 is a code point and
// \U a literal U (PCRE2_ALT_BSUX), [] and [^] are an empty class and "any character" (PCRE2_ALLOW_EMPTY_CLASS),
// and $ matches only at the very end (PCRE2_DOLLAR_ENDONLY). docs/gguf.md lists what still differs.
// With `utf`, patterns and subjects are UTF-8 with Unicode properties (\p{L}); a subject's invalid UTF-8
// bytes never match any item (PCRE2_MATCH_INVALID_UTF), so matching never reads past a malformed sequence.
//
// A compiled regex is immutable and may be shared and matched from several threads at once (copies share it).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "util/status.h"

namespace razor {

struct regex_options {
  bool utf = false;                      // UTF-8 + Unicode properties (the tokenizer)
  bool ecmascript = true;                // \uXXXX, [^], $ at the very end (recipes; see the file comment)
  size_t max_pattern_bytes = 4096;       // longer patterns are refused
  uint32_t max_nesting = 100;            // parentheses nested deeper are refused
  uint32_t match_limit = 1'000'000;      // backtracking steps of one match (pcre2_set_match_limit)
  uint32_t depth_limit = 100'000;        // backtracking depth of one match (pcre2_set_depth_limit)
  uint32_t heap_limit_kib = 64 * 1024;   // heap of one interpreted match (pcre2_set_heap_limit)
};

// [begin, end) byte offsets of a match in the subject.
struct regex_span {
  size_t begin = 0, end = 0;
};

class regex {
 public:
  regex() = default;
  // Compiles (and JIT-compiles where the platform allows). Errors (errc::invalid_argument) quote the pattern
  // and give PCRE2's reason and the byte offset: "invalid regex '(a': missing closing parenthesis at byte 2".
  static result<regex> compile(std::string_view pattern, const regex_options& opt = {});

  // Whether the pattern matches anywhere in `subject` (std::regex_search). An error when a limit was reached.
  result<bool> search(std::string_view subject) const;
  // The first match that starts at or after byte `start`; nullopt when there is none.
  result<std::optional<regex_span>> find(std::string_view subject, size_t start = 0) const;

  const std::string& pattern() const;
  bool empty() const { return !p_; }

 private:
  struct impl;
  std::shared_ptr<const impl> p_;
};

// `s` for an error message: at most `max_bytes`, control and non-ASCII bytes as \xNN, "..." when cut.
std::string printable_excerpt(std::string_view s, size_t max_bytes = 80);

}  // namespace razor
