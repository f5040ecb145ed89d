// LiveCodeBench v6 (livecodebench/code_generation_lite, the seed's `lcb`; seed-reference §4.2): test-case decoding,
// code extraction and the two runners, each as the seed's harness does it after its fixes.
//  - Test cases: a field holds the JSON text of a list of {input, output, testtype}, or (the private tests)
//    base64 -> zlib -> either that JSON text or a pickled Python str holding it. The pickle is read, never run:
//    only the opcodes that build one str are accepted (unpickle_str), anything else is an error naming the
//    opcode and its offset.
//  - Functional problems (LeetCode style, metadata.func_name): one driver process runs every test as
//    Solution().<func_name>(*args) with a per-test SIGALRM; arguments are the whole input as one JSON value, else
//    one JSON value per non-empty line, else the raw string; results compare recursively (lists and tuples
//    alike, bools exactly, numbers within 1e-6). The verdict is the driver's last line (tagged with a nonce the
//    program cannot know).
//  - Stdin problems: one process per test, stdin = the input, pass = exit code 0 and the output's lines equal
//    the expected ones after stripping trailing whitespace (trailing empty lines ignored).
//  - Code extraction is grading.h's lcb_code. Every program starts with the seed's import preamble; at most 300 tests a problem.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "eval/sandbox.h"
#include "util/status.h"

namespace razor::eval {

inline constexpr int kLcbMaxTests = 300;
inline constexpr double kLcbOuterTimeoutCap = 600;  // seconds, the functional driver's whole run at most

// The str a pickle holds (protocols 1-5: PROTO, FRAME, SHORT_BINUNICODE / BINUNICODE / BINUNICODE8, MEMOIZE,
// BINPUT / LONG_BINPUT, STOP). `what` names the input in errors.
result<std::string> unpickle_str(std::string_view bytes, const std::string& what);

// A test-case field as a JSON array of {input, output, testtype?} objects ("" is an empty list).
result<nlohmann::json> decode_lcb_tests(std::string_view field, const std::string& what);

// The seed's import preamble every program starts with.
std::string_view lcb_preamble();

struct lcb_verdict {
  bool passed = false;
  int tests = 0;          // tests in the problem (at most kLcbMaxTests)
  int failed_test = -1;   // index of the first failing test, -1 when all passed
  std::string detail;     // why it failed ("timeout", "wrong answer", "exit 1: <tail>")
};
// Runs `code` against `tests` (decode_lcb_tests' array). `per_test.timeout_s` is the per-test time limit (the
// seed's 10 s); the functional driver's whole run is bounded by min(timeout * tests + 30, 600) s.
lcb_verdict run_lcb(const std::string& code, bool functional, const std::string& func_name,
                    const nlohmann::json& tests, const sandbox_limits& per_test);

}  // namespace razor::eval
