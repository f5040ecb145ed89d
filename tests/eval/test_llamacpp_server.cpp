// `razor eval` end to end against the real llama.cpp: the tiny Qwen3-MoE fixture is packed to a Q8_0 GGUF with
// the razor CLI, served by tools/llamacpp/openai_server.mjs (node-llama-cpp, test tooling only) on loopback, and a
// 3-question MMLU-Pro file is run through it; the result must load in the workbench's comparison view.
// Skipped (with the reason) when node or the node-llama-cpp oracle (scripts/install-oracle.sh) is missing.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "eval/runner.h"
// import_result_file: the workbench importer (razor_results).
#include "results/bench_result.h"

using namespace razor::results;

using nlohmann::json;
namespace fs = std::filesystem;

#if defined(RAZOR_CLI_EXE) && defined(RAZOR_ORACLE_DIR)
namespace {

using razor::test::find_on_path;
using razor::test::slurp;

// The server as a child process: its stdout comes through a pipe (for "listening <port>"), stderr to a log file.
// The destructor kills it (SIGTERM, then SIGKILL) and reaps it, so a failing assertion does not leave it behind.
class node_server {
 public:
  node_server(const std::string& node, const std::vector<std::string>& args, const fs::path& log) {
    int fds[2];
    if (::pipe(fds) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], STDOUT_FILENO);
      FILE* lf = std::fopen(log.c_str(), "w");
      if (lf) ::dup2(fileno(lf), STDERR_FILENO);
      ::close(fds[0]);
      ::close(fds[1]);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(node.c_str()));
      for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(node.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    out_ = fds[0];
  }
  ~node_server() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      for (int i = 0; i < 50; ++i) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) { pid_ = -1; break; }
        ::usleep(100 * 1000);
      }
      if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
      }
    }
    if (out_ >= 0) ::close(out_);
  }
  // Reads stdout until "listening <port>" and returns the port, or -1 on exit/timeout.
  int wait_listening(double timeout_s) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    std::string buf;
    while (out_ >= 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return -1;
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, int(left.count())) <= 0) return -1;
      char tmp[256];
      ssize_t k = ::read(out_, tmp, sizeof tmp);
      if (k <= 0) return -1;  // the server exited
      buf.append(tmp, size_t(k));
      auto at = buf.find("listening ");
      if (at != std::string::npos) {
        auto eol = buf.find('\n', at);
        if (eol != std::string::npos) return std::atoi(buf.c_str() + at + 10);
      }
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
};

}  // namespace

TEST(LlamaCppServer, EvalEndToEndWithRealLlamaCpp) {
  std::string node = find_on_path("node");
  if (node.empty()) GTEST_SKIP() << "node is not on PATH (needed for tools/llamacpp/openai_server.mjs)";
  fs::path oracle = RAZOR_ORACLE_DIR;
  if (!fs::exists(oracle / "node_modules" / "node-llama-cpp" / "package.json"))
    GTEST_SKIP() << "node-llama-cpp oracle not installed in " << oracle.string() << " (scripts/install-oracle.sh)";
  fs::path src = RAZOR_SOURCE_DIR_T;
  fs::path script = src / "tools" / "llamacpp" / "openai_server.mjs";
  fs::path fixture = fs::path(RAZOR_MODELS_DIR) / "tiny-qwen3-moe";
  ASSERT_TRUE(fs::exists(script)) << script;
  ASSERT_TRUE(fs::exists(fixture)) << fixture;

  auto dir = fs::temp_directory_path() / ("razor-eval-llamacpp-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  struct cleanup {
    fs::path d;
    ~cleanup() { std::error_code ec; fs::remove_all(d, ec); }
  } rm{dir};

  // 1. The fixture's GGUF export.
  fs::path gguf = dir / "tiny.gguf";
  std::string pack = std::string(RAZOR_CLI_EXE) + " pack " + fixture.string() + " --type q8_0 --out " +
                     gguf.string() + " > " + (dir / "pack.log").string() + " 2>&1";
  ASSERT_EQ(std::system(pack.c_str()), 0) << slurp(dir / "pack.log");
  ASSERT_TRUE(fs::exists(gguf));

  // 2. The server; port 0 lets the kernel pick a free port, which the server prints.
  node_server srv(node, {script.string(), gguf.string(), "0", "--oracle", oracle.string(), "--ctx", "1024"},
                  dir / "server.log");
  int port = srv.wait_listening(30);
  ASSERT_GT(port, 0) << "the server did not start: " << slurp(dir / "server.log");

  // 3. Three rows each of MMLU-Pro, AIME 2026, HMMT, LiveCodeBench and the four multimodal sets in the datasets' own
  // fields (docs/eval.md).
  const std::vector<std::string> benches = {"mmlu_pro", "aime2026", "hmmt", "lcb", "mmmu", "mmmu_pro", "mathvision", "medxpert"};
  {
    std::ofstream f(dir / "mmlu_pro.jsonl");
    f << R"({"question_id":101,"question":"What is 2 + 2?","options":["3","4","5","6"],"answer_index":1,"answer":"B"})" "\n"
      << R"({"question_id":102,"question":"Which planet is known as the red planet?","options":["Venus","Mars","Jupiter","Saturn"],"answer_index":1,"answer":"B"})" "\n"
      << R"({"question_id":103,"question":"What is the chemical symbol for water?","options":["O2","CO2","H2O","NaCl"],"answer_index":2,"answer":"C"})" "\n";
    for (const char* key : {"aime2026", "hmmt"}) {
      std::ofstream m(dir / (std::string(key) + ".jsonl"));
      m << R"({"id":"1","problem":"What is 6 times 7?","answer":"42"})" "\n"
        << R"({"id":"2","problem":"What is 10 minus 3?","answer":"7"})" "\n"
        << R"({"id":"3","problem":"What is 2 to the power 5?","answer":"32"})" "\n";
    }
    // MMMU-Pro rows as docs/eval.md's export writes them (images as data URLs); the tiny text model gets the image
    // parts too (the test server drops them: the fixture has no vision tower), so this checks the plumbing.
    const std::string png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    for (const char* key : {"mmmu", "mmmu_pro"}) {
      std::ofstream v(dir / (std::string(key) + ".jsonl"));
      for (int i = 0; i < 3; ++i)
        v << json({{"id", "v" + std::to_string(i)}, {"question", "<image 1> Which colour is the pixel?"},
                   {"options", "['red', 'green', 'blue', 'black']"}, {"answer", "D"}, {"images", {png}}}).dump() << "\n";
    }
    std::ofstream mv(dir / "mathvision.jsonl");
    for (int i = 0; i < 3; ++i)
      mv << json({{"id", std::to_string(i)}, {"question", "How many pixels does the image have?"},
                  {"options", json::array()}, {"answer", "1"}, {"images", {png}}}).dump() << "\n";
    std::ofstream mx(dir / "medxpert.jsonl");
    for (int i = 0; i < 3; ++i)
      mx << json({{"id", "MM-" + std::to_string(i)}, {"question", "Which finding does the image show?"},
                  {"options", {{"A", "edema"}, {"B", "fracture"}, {"C", "mass"}}}, {"label", "C"}, {"images", {png}}}).dump() << "\n";
    std::ofstream l(dir / "lcb.jsonl");
    l << R"({"question_id":"a1","question_content":"Read n and print 2n.","starter_code":"","public_test_cases":"[{\"input\": \"2\\n\", \"output\": \"4\\n\", \"testtype\": \"stdin\"}]","private_test_cases":"","metadata":"{}"})" "\n"
      << R"({"question_id":"a2","question_content":"Read a line and print it reversed.","starter_code":"","public_test_cases":"[{\"input\": \"abc\\n\", \"output\": \"cba\\n\", \"testtype\": \"stdin\"}]","private_test_cases":"","metadata":"{}"})" "\n"
      << R"({"question_id":"3000","question_content":"Return the sum of nums.","starter_code":"class Solution:\n    def total(self, nums: List[int]) -> int:\n        ","public_test_cases":"[{\"input\": \"[1, 2]\", \"output\": \"3\", \"testtype\": \"functional\"}]","private_test_cases":"","metadata":"{\"func_name\": \"total\"}"})" "\n";
  }

  // 4. razor eval through the real llama.cpp.
  std::string out = (dir / "results.json").string();
  std::string cmd = std::string(RAZOR_CLI_EXE) + " eval --endpoint http://127.0.0.1:" + std::to_string(port) +
                    "/v1 --model tiny --benchmarks mmlu_pro,aime2026,hmmt,lcb,mmmu,mmmu_pro,mathvision,medxpert --data " + dir.string() +
                    " --n 3 --budget 32 --concurrency 2 --retries 1 --timeout 60 --speed-contexts 64,256 --speed-gen 8 --out " + out +
                    " --targets " + (src / "resources" / "results" / "official_targets.json").string() + " > " +
                    (dir / "eval.log").string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp(dir / "eval.log") << "\nserver: " << slurp(dir / "server.log");

  std::ifstream rf(out);
  json res = json::parse(rf);
  EXPECT_EQ(res["tag"], "results");
  EXPECT_EQ(res["model"], "tiny");
  EXPECT_EQ(res["budget"], 32);
  for (const std::string& b : benches) {
    EXPECT_EQ(res[b + "_n"], 3) << b;
    double a = res[b + "_acc"].get<double>();
    EXPECT_GE(a, 0.0) << b;
    EXPECT_LE(a, 100.0) << b;
    EXPECT_EQ(res[b + "_n_finished"].get<int>() + res[b + "_trunc"].get<int>(), 3) << b;
  }
  double acc = res["mmlu_pro_acc"].get<double>();
  EXPECT_EQ(res["gate"]["mmlu_pro"]["state"], "no target");
  // Speed of the served GGUF at two prompt lengths (from the timings the server reports, as llama-server's).
  ASSERT_TRUE(res.contains("speed")) << res.dump();
  ASSERT_EQ(res["speed"]["points"].size(), 2u) << res["speed"].dump();
  for (const auto& p : res["speed"]["points"]) {
    EXPECT_GT(p["prefill_tok_s"].get<double>(), 0.0) << p.dump();
    EXPECT_GT(p["prompt_tokens"].get<int>(), 0) << p.dump();
    EXPECT_GT(p["decode_tok_s"].get<double>(), 0.0) << p.dump();
    EXPECT_EQ(p["method"], "server timings");
  }
  EXPECT_GT(res["speed"]["points"][1]["prompt_tokens"].get<int>(), res["speed"]["points"][0]["prompt_tokens"].get<int>());
  std::printf("[llamacpp] speed %s\n", res["speed"]["points"].dump().c_str());

  // Per-sample side file: one record per question, with what llama.cpp said and why it stopped.
  std::ifstream sf(razor::eval::samples_path(out));
  std::string line, reasons;
  int lines = 0;
  std::map<std::string, int> truncated;
  while (std::getline(sf, line)) {
    json r = json::parse(line);
    for (const char* k : {"bench", "id", "raw", "extracted", "gold", "correct", "tokens", "finish_reason"})
      EXPECT_TRUE(r.contains(k)) << k << " in " << line;
    std::string bench = r["bench"];
    EXPECT_NE(std::find(benches.begin(), benches.end(), bench), benches.end()) << bench;
    std::string fr = r["finish_reason"];
    reasons += (reasons.empty() ? "" : ",") + fr;
    EXPECT_TRUE(fr == "stop" || fr == "length") << fr;
    if (fr == "length") {
      ++truncated[bench];
      EXPECT_EQ(r["tokens"], 32) << line;  // the budget was honoured
    }
    EXPECT_LE(r["tokens"].get<int>(), 32) << line;
    ++lines;
  }
  EXPECT_EQ(lines, static_cast<int>(3 * benches.size()));  // one record per question
  for (const std::string& b : benches) EXPECT_EQ(res[b + "_trunc"], truncated[b]) << b;
  std::printf("[llamacpp] mmlu_pro acc %.2f, finish reasons %s, %.1f s\n", acc, reasons.c_str(),
              res.value("seconds", 0.0));

  // The comparison view's importer reads it.
  import_result imp = import_result_file(out);
  ASSERT_TRUE(imp.ok()) << imp.error;
  ASSERT_EQ(imp.results.size(), benches.size());
  EXPECT_EQ(imp.results[0].bench, "mmlu_pro");
  EXPECT_EQ(imp.results[0].n, 3);
  EXPECT_NEAR(imp.results[0].acc, acc, 1e-9);
  EXPECT_EQ(imp.results[0].budget.value_or(-1), 32);
}
#endif
