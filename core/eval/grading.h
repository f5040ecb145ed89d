// Answer extraction and grading, reimplemented from the seed's harness (seed-reference §4.1-4.2: vllm_eval.py
// parse_letter / extract_boxed / norm_math / math_eq, bench8_loaders free_answer / norm_free, _he_extract).
// Every function is pure and works on UTF-8 bytes; regular expressions follow Python's `re` semantics for the
// patterns used (ASCII classes; bytes >= 0x80 count as word characters, as Python's Unicode \w would for
// letters). Deviations from the seed are listed in docs/eval.md.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace razor::eval {

// The text after the last "</think>"; the whole text when there is none (a truncated thought).
std::string post_think(std::string_view s);

// Letter index (0 = A) read from the last 600 characters, letters A..A+k-1; -1 when nothing matches.
//  1. case-insensitive (final answer|answer|option|correct)\s*(is|:)?\s*\*{0,2}\(?([letters])\)?\*{0,2}, last match
//  2. \boxed{X}, last match
//  3. the last standalone capital letter on the last non-empty line
int parse_letter(std::string_view s, int k);

// Content of the last \boxed{...} (braces matched); else the last capture of
// (final answer|answer)\s*(is|:)?\s*\$?\\?\(?([-\d.,/]+)\)?\$?  (case-insensitive); nullopt when neither.
std::optional<std::string> extract_boxed(std::string_view s);

// Removes \! \, "\ " spaces \left \right $ \text{ \mathrm{ "dollars" \% % and commas, then trailing '}' and
// surrounding '.'.
std::string norm_math(std::string_view s);
// norm_math string equality, or both parse as numbers within 1e-3.
bool math_eq(const std::optional<std::string>& pred, std::string_view gold);

// The last capture of (?:final answer|answer)\s*(?:is|:)?\s*(.+) in the last 600 characters after </think>
// (case-insensitive), else the last non-empty line; trimmed.
std::string free_answer(std::string_view output);
// Lowercase, "(a)" -> "a", non-word characters removed.
std::string norm_free(std::string_view s);

// The last number in `s` (commas removed), for GSM8K; nullopt when none.
std::optional<double> last_number(std::string_view s);

// HumanEval completion -> program text: the largest fenced block (a leading "python" line dropped); used as-is
// when it starts with def/from/import, otherwise cut at the first \ndef, \nclass, \nif __name__, \nprint(, \n#,
// \n@ or \n``` and appended to `prompt`.
std::string he_extract(std::string_view output, std::string_view prompt);
// MBPP: the last ```(python)? fenced block, else the whole text.
std::string last_code_block(std::string_view s);
// LiveCodeBench: the last closed fenced block after </think>, else the last closed block anywhere (code written
// inside the thought), else from the last unclosed fence to the end, else "".
std::string lcb_code(std::string_view output);

}  // namespace razor::eval
