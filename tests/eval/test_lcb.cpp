// LiveCodeBench v6 (eval/lcb.h): test-case decoding (JSON, base64 -> zlib -> JSON or a pickled str, and the
// pickles that are refused), code extraction, the functional and stdin runners in the sandbox, and grading on
// hand-written outputs. The encoded fields below were made with Python's pickle / zlib / base64 (protocols 2, 4
// and 5), as the dataset's private_test_cases are.
#include <gtest/gtest.h>

#include "eval/benchmarks.h"
#include "eval/grading.h"
#include "eval/lcb.h"
#include "util/base64.h"

using namespace razor;
using namespace razor::eval;
using nlohmann::json;

namespace {

// [{"input": "3\n", "output": "9\n", "testtype": "stdin"}, {"input": "0\n", "output": "0\n", "testtype": "stdin"}]
const char* kStdinP2 = "eJxrYIooYGBgiK5WyswrKC1RslJQMo7JU9JRUMovLYEKWEIESlKLS0oqC1JBQsUlKZl5SrU6Ckj6DND1GeDUF1vIoAcAiyskWA==";
const char* kStdinP4 = "eJxrYJlawgABPQXR1UqZeQWlJUpWCkrGMXlKOgpK+aUlUAFLiEBJanFJSWVBKkiouCQlM0+pVkcBSZ8Buj4DnPpip+gBAAGNJbo=";
const char* kStdinP5 = "eJxrYJ1awgABPQXR1UqZeQWlJUpWCkrGMXlKOgpK+aUlUAFLiEBJanFJSWVBKkiouCQlM0+pVkcBSZ8Buj4DnPpip+gBAAILJbs=";
const char* kStdinJson = "eJyLrlbKzCsoLVGyUlAyjslT0lFQyi8tgQpYQgRKUotLSioLUkFCxSUpmXlKtToKSPoM0PUZ4NQXCwCHBSJv";
// pickle.dumps([1, 2], protocol=4): a list, not a str
const char* kList = "eJxrYJnKyQABsVM0vBm9mVL1ACJhA2g=";
// b"cos\nsystem\n(S'echo hi'\ntR.": the classic code-running pickle
const char* kReduce = "eJxLzi/mKq4sLknN5dIIVk9NzshXyMhU5yoJ0gMAeEMIVg==";
// [{"input": "[1,2,3]\n2", "output": "[2, 4, 6]", ...functional}, {"input": "[]\n5", "output": "[]", ...}], protocol 4
const char* kFunc = "eJxrYJnawwABPR3R1UqZeQWlJUpWCkrRhjpGOsaxMXlGSjoKSvmlJTBxIx0FEx0Fs1iQcElqcUlJZUEqSCKtNC+5JDM/LzFHqVZHAdkkoCGmaIbg1R07RQ8AlwAtFQ==";

json stdin_row() {
  return {{"question_id", "abc301_a"},
          {"question_content", "Read n, print n squared."},
          {"starter_code", ""},
          {"public_test_cases", R"([{"input": "2\n", "output": "4\n", "testtype": "stdin"}])"},
          {"private_test_cases", kStdinP4},
          {"metadata", "{}"}};
}
json functional_row() {
  return {{"question_id", "3000"},
          {"question_content", "Multiply every element by k."},
          {"starter_code", "class Solution:\n    def scale(self, nums: List[int], k: int) -> List[int]:\n        "},
          {"public_test_cases", R"([{"input": "[5]\n3", "output": "[15]", "testtype": "functional"}])"},
          {"private_test_cases", kFunc},
          {"metadata", R"({"func_name": "scale"})"}};
}
bench_item item_of(const json& row) {
  auto it = make_item(*find_bench("lcb"), row, 1);
  EXPECT_TRUE(it.ok()) << it.error().to_string();
  return it.ok() ? it.value() : bench_item{};
}
bool passes(const bench_item& it, const std::string& out, double per_test_s = 10) {
  sandbox_limits lim;
  lim.timeout_s = per_test_s;
  return grade(*find_bench("lcb"), it, out, lim).correct;
}

}  // namespace

TEST(Base64, RoundTripAndErrors) {
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    auto d = base64_decode(base64_encode(s), "t");
    ASSERT_TRUE(d.ok()) << d.error().to_string();
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(base64_encode("Man"), "TWFu");
  EXPECT_EQ(base64_encode("Ma"), "TWE=");
  EXPECT_EQ(*base64_decode("TW\nE=", "t"), "Ma");
  auto bad = base64_decode("TW!u", "field x");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("field x: not base64 at offset 2"), std::string::npos);
  EXPECT_FALSE(base64_decode("TWE", "t").ok());     // a partial group
  EXPECT_FALSE(base64_decode("TWE=TWFu", "t").ok()); // data after padding
  EXPECT_FALSE(base64_decode("T===", "t").ok());
}

TEST(LcbTests, DecodesEveryEncodingTheDatasetUses) {
  for (const char* enc : {kStdinP2, kStdinP4, kStdinP5, kStdinJson}) {
    auto t = decode_lcb_tests(enc, "row");
    ASSERT_TRUE(t.ok()) << t.error().to_string();
    ASSERT_EQ(t->size(), 2u);
    EXPECT_EQ((*t)[0]["input"], "3\n");
    EXPECT_EQ((*t)[1]["output"], "0\n");
  }
  auto plain = decode_lcb_tests(R"([{"input": "1", "output": "2"}])", "row");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->size(), 1u);
  EXPECT_TRUE(decode_lcb_tests("", "row")->empty());
}

TEST(LcbTests, RefusesPicklesThatAreNotOneStr) {
  auto code = decode_lcb_tests(kReduce, "lcb.jsonl line 7 private_test_cases");
  ASSERT_FALSE(code.ok());
  // "cos\nsystem..." starts with GLOBAL ('c' = 0x63): refused before anything is built, and named.
  // (It is not even taken for a pickle: no PROTO byte, so it is parsed as JSON and fails there.)
  EXPECT_NE(code.error().message().find("lcb.jsonl line 7 private_test_cases"), std::string::npos);
  auto list = decode_lcb_tests(kList, "row");
  ASSERT_FALSE(list.ok());
  EXPECT_NE(list.error().message().find("outside the accepted subset"), std::string::npos) << list.error().message();

  // unpickle_str directly: the REDUCE pickle after a PROTO byte is refused at its first opcode.
  std::string reduce = std::string("\x80\x04", 2) + "cos\nsystem\n(S'echo hi'\ntR.";
  auto r = unpickle_str(reduce, "p");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("pickle offset 2: opcode 0x63"), std::string::npos) << r.error().message();
  EXPECT_FALSE(unpickle_str(std::string("\x80\x04\x8c\x05" "ab", 6), "p").ok());  // string past the end
  EXPECT_FALSE(unpickle_str(std::string("\x80\x04\x8c\x01" "a", 5), "p").ok());   // no STOP
  EXPECT_FALSE(unpickle_str(std::string("\x80\x04\x8c\x01" "a\x8c\x01" "b.", 9), "p").ok());  // two values
  auto ok = unpickle_str(std::string("\x80\x04\x95\x06\0\0\0\0\0\0\0\x8c\x02hi\x94.", 17), "p");
  ASSERT_TRUE(ok.ok()) << ok.error().to_string();
  EXPECT_EQ(*ok, "hi");
}

TEST(LcbTests, BadFieldsNameTheRow) {
  auto b64 = decode_lcb_tests("not*base64", "lcb.jsonl line 3 private_test_cases");
  ASSERT_FALSE(b64.ok());
  EXPECT_NE(b64.error().message().find("lcb.jsonl line 3 private_test_cases: not base64"), std::string::npos);
  auto notz = decode_lcb_tests(base64_encode("plain bytes, not zlib"), "row");
  ASSERT_FALSE(notz.ok());
  EXPECT_NE(notz.error().message().find("not zlib data"), std::string::npos);
  auto noout = decode_lcb_tests(R"([{"input": "1"}])", "row");
  ASSERT_FALSE(noout.ok());
  EXPECT_NE(noout.error().message().find("test 0 has no input / output"), std::string::npos);
  json row = stdin_row();
  row["private_test_cases"] = "%%%";
  auto it = make_item(*find_bench("lcb"), row, 4);
  ASSERT_FALSE(it.ok());
  EXPECT_NE(it.error().message().find("line 4 private_test_cases"), std::string::npos) << it.error().message();
  json f = functional_row();
  f["metadata"] = "{}";
  auto nf = make_item(*find_bench("lcb"), f, 5);
  ASSERT_FALSE(nf.ok());
  EXPECT_NE(nf.error().message().find("func_name"), std::string::npos);
}

TEST(LcbCode, ExtractionOrder) {
  // 1. the last closed block after </think>
  EXPECT_EQ(lcb_code("<think>```python\nA\n```</think>x\n```python\nB\n```\n```python\nC\n```"), "C\n");
  // 2. else the last closed block anywhere (written inside the thought)
  EXPECT_EQ(lcb_code("<think>```python\nA\n```\n</think>no code here"), "A\n");
  // 3. else from the last unclosed fence to the end (truncated)
  EXPECT_EQ(lcb_code("<think>hmm</think>```python\nprint(1)\nprint("), "print(1)\nprint(");
  // 4. else nothing
  EXPECT_EQ(lcb_code("the answer is 4"), "");
}

TEST(LcbGrading, StdinProblems) {
  bench_item it = item_of(stdin_row());
  EXPECT_EQ(it.id, "abc301_a");
  EXPECT_EQ(it.extra["n_tests"], 3);
  EXPECT_NE(it.prompt.find("Read from stdin, write to stdout."), std::string::npos);
  // right (trailing spaces and blank lines do not matter)
  EXPECT_TRUE(passes(it, "<think>easy</think>```python\nn = int(input())\nprint(n * n, '  ')\nprint()\n```"));
  // wrong on a private test only (3 -> 9): the private tests are run
  EXPECT_FALSE(passes(it, "```python\nn = int(input())\nprint(4 if n == 2 else 0)\n```"));
  // several answers: the last block counts
  EXPECT_TRUE(passes(it, "```python\nprint(0)\n```\nBetter:\n```python\nprint(int(input())**2)\n```"));
  // truncated inside the code: salvaged, and here it fails to run
  EXPECT_FALSE(passes(it, "<think>```python\nn = int(input(\n"));
  // no answer
  EXPECT_FALSE(passes(it, "I do not know."));
  // a crash fails the test even with the right output first
  EXPECT_FALSE(passes(it, "```python\nprint(int(input())**2)\nraise SystemExit(3)\n```"));
}

TEST(LcbGrading, FunctionalProblems) {
  bench_item it = item_of(functional_row());
  EXPECT_TRUE(it.extra["functional"].get<bool>());
  EXPECT_NE(it.prompt.find("EXACTLY this class/method signature:\n```python\nclass Solution:"), std::string::npos);
  const std::string right = "```python\nclass Solution:\n    def scale(self, nums: List[int], k: int) -> List[int]:\n"
                            "        return [x * k for x in nums]\n```";
  EXPECT_TRUE(passes(it, right));
  // tuples compare like lists; the preamble's imports (List from typing) are there
  EXPECT_TRUE(passes(it, "```python\nclass Solution:\n    def scale(self, nums, k):\n        return tuple(x * k for x in nums)\n```"));
  EXPECT_FALSE(passes(it, "```python\nclass Solution:\n    def scale(self, nums, k):\n        return [x * k + 1 for x in nums]\n```"));
  EXPECT_FALSE(passes(it, "```python\nclass Solution:\n    def other(self, nums, k):\n        return []\n```"));  // wrong name
  // printing the verdict does not pass: the driver's line carries a nonce
  EXPECT_FALSE(passes(it, "```python\nimport sys\nprint('PASS')\nsys.exit(0)\nclass Solution: pass\n```"));
}

TEST(LcbRunner, ComparisonRules) {
  json tests = json::array({{{"input", "1.0"}, {"output", "0.3333333"}}, {{"input", "2.0"}, {"output", "0.6666667"}}});
  EXPECT_TRUE(run_lcb("class Solution:\n    def f(self, x):\n        return x / 3\n", true, "f", tests, {}).passed);
  json bools = json::array({{{"input", "1"}, {"output", "true"}}});
  EXPECT_TRUE(run_lcb("class Solution:\n    def f(self, x):\n        return True\n", true, "f", bools, {}).passed);
  EXPECT_FALSE(run_lcb("class Solution:\n    def f(self, x):\n        return 1\n", true, "f", bools, {}).passed);  // 1 is not true
  auto wrong = run_lcb("class Solution:\n    def f(self, x):\n        return x\n", true, "f", tests, {});
  EXPECT_FALSE(wrong.passed);
  EXPECT_EQ(wrong.failed_test, 0);
  EXPECT_EQ(wrong.detail, "wrong answer");
}

TEST(LcbRunner, RunawayTestsAreKilledAndNetworkIsRefused) {
  sandbox_limits lim;
  lim.timeout_s = 1;  // per test (the seed's is 10 s)
  json tests = json::array({{{"input", "1"}, {"output", "1"}}, {{"input", "2"}, {"output", "2"}}});
  auto loop = run_lcb("class Solution:\n    def f(self, x):\n        while x == 2: pass\n        return x\n", true, "f",
                      tests, lim);
  EXPECT_FALSE(loop.passed);
  EXPECT_EQ(loop.failed_test, 1);
  EXPECT_EQ(loop.detail, "timeout");
  auto stdin_loop = run_lcb("x = input()\nwhile x == '2': pass\nprint(x)\n", false, "", tests, lim);
  EXPECT_FALSE(stdin_loop.passed);
  EXPECT_EQ(stdin_loop.failed_test, 1);
  EXPECT_EQ(stdin_loop.detail, "timeout");
  auto probe = run_python("print('hi')\n", lim);
  if (!probe.net_isolated) {
    GTEST_LOG_(INFO) << "no network namespace here: generated code would run with the host network";
    return;
  }
  auto net = run_lcb("import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=1)\nprint(input())\n", false,
                     "", tests, lim);
  EXPECT_FALSE(net.passed);
  EXPECT_NE(net.detail.find("exit 1"), std::string::npos) << net.detail;
}
