// The worker's `serve` and `eval` methods end to end (docs/serving.md): a real `razor worker` serves the tiny
// fixture's Q8_0 GGUF through tools/llamacpp/openai_server.mjs (the real llama.cpp via node-llama-cpp) with
// engine "command", a second worker evaluates two MMLU-Pro questions against the endpoint it announced, and a
// cancel stops the server; a fake `vllm` program (a shell script that records its argv and execs the same
// server) proves the vLLM command line with the tensor parallel size taken from CUDA_VISIBLE_DEVICES.
// The llama.cpp tests are skipped (with the reason) when node or the oracle (scripts/install-oracle.sh) is missing.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/test_util.h"
#include "child_worker.h"

namespace fs = std::filesystem;
using nlohmann::json;
using razor::test::child_worker;

namespace {

using razor::test::find_on_path;
using razor::test::slurp;

bool process_gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

void start_worker(child_worker& w) {
  ASSERT_TRUE(w.start(RAZOR_CLI_EXE, {"worker", "--cpu", "--telemetry-ms", "0"}, RAZOR_SOURCE_DIR_T));
  auto h = w.read_message();
  ASSERT_TRUE(h) << w.stderr_text();
  ASSERT_EQ((*h)["t"], "hello") << h->dump();
}

// The events of job `id` up to and including its result / error (progress and logs collected on the way).
struct job_events {
  std::vector<json> progress, logs, artifacts;
  json end;  // the result or error message
};

// Reads until the artifact of `kind` (returned) or the job's end (then `ev.end` is set and nothing returned).
std::optional<json> read_until_artifact(child_worker& w, int64_t id, const std::string& kind, job_events& ev,
                                        int timeout_ms = 120000) {
  for (;;) {
    auto m = w.read_message(timeout_ms);
    if (!m) return std::nullopt;
    if ((*m).value("id", json()) != id) continue;
    std::string t = (*m)["t"];
    if (t == "progress") ev.progress.push_back(*m);
    else if (t == "log") ev.logs.push_back(*m);
    else if (t == "artifact") {
      ev.artifacts.push_back(*m);
      if ((*m)["kind"] == kind) return *m;
    } else if (t == "result" || t == "error") {
      ev.end = *m;
      return std::nullopt;
    }
  }
}

json read_until_end(child_worker& w, int64_t id, job_events& ev, int timeout_ms = 120000) {
  read_until_artifact(w, id, "\x01none", ev, timeout_ms);
  return ev.end;
}

// Shared by the llama.cpp tests: the fixture packed once, node and the oracle found.
class ServeLlamaCpp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    node_ = find_on_path("node");
    if (node_.empty()) {
      skip_ = "node is not on PATH (needed for tools/llamacpp/openai_server.mjs)";
      return;
    }
    if (!fs::exists(fs::path(RAZOR_ORACLE_DIR) / "node_modules" / "node-llama-cpp" / "package.json")) {
      skip_ = std::string("node-llama-cpp oracle not installed in ") + RAZOR_ORACLE_DIR + " (scripts/install-oracle.sh)";
      return;
    }
    dir_ = fs::temp_directory_path() / ("razor-serve-worker-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    gguf_ = dir_ / "tiny.gguf";
    std::string pack = std::string(RAZOR_CLI_EXE) + " pack " + RAZOR_MODELS_DIR + "/tiny-qwen3-moe --type q8_0 --out " +
                       gguf_.string() + " > " + (dir_ / "pack.log").string() + " 2>&1";
    if (std::system(pack.c_str()) != 0) skip_ = "FAIL pack: " + slurp(dir_ / "pack.log");
    std::ofstream f(dir_ / "mmlu_pro.jsonl");
    f << R"({"question_id":101,"question":"What is 2 + 2?","options":["3","4","5","6"],"answer_index":1,"answer":"B"})" "\n"
      << R"({"question_id":102,"question":"Which planet is known as the red planet?","options":["Venus","Mars","Jupiter","Saturn"],"answer_index":1,"answer":"B"})" "\n"
      << R"({"question_id":103,"question":"What is the chemical symbol for water?","options":["O2","CO2","H2O","NaCl"],"answer_index":2,"answer":"C"})" "\n";
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  void SetUp() override {
    if (skip_.rfind("FAIL", 0) == 0) FAIL() << skip_;
    if (!skip_.empty()) GTEST_SKIP() << skip_;
  }
  static std::string script() { return (fs::path(RAZOR_SOURCE_DIR_T) / "tools" / "llamacpp" / "openai_server.mjs").string(); }

  static inline std::string node_, skip_;
  static inline fs::path dir_, gguf_;
};

}  // namespace

TEST_F(ServeLlamaCpp, WorkerServesAWorkerEvaluatesCancelStops) {
  child_worker server;
  start_worker(server);
  fs::path log = dir_ / "serve-a.log";
  server.send({{"t", "req"},
               {"id", 1},
               {"method", "serve"},
               {"params",
                {{"engine", "command"},
                 {"model", gguf_.string()},
                 {"command", {node_, script(), "{model}", "{port}", "--oracle", RAZOR_ORACLE_DIR, "--ctx", "1024"}},
                 {"ready_timeout_s", 120},
                 {"log", log.string()}}}});
  job_events sev;
  auto ep = read_until_artifact(server, 1, "endpoint", sev);
  ASSERT_TRUE(ep) << sev.end.dump() << "\n" << server.stderr_text() << "\nserver log: " << slurp(log);
  std::string url = (*ep)["path"];
  EXPECT_EQ(url.rfind("http://127.0.0.1:", 0), 0u) << url;
  EXPECT_EQ(url.substr(url.size() - 3), "/v1");
  EXPECT_EQ((*ep)["engine"], "command");
  EXPECT_EQ((*ep)["model"], gguf_.string());
  EXPECT_EQ((*ep)["served_models"], json::array({"tiny"}));
  EXPECT_EQ((*ep)["name"], "tiny");
  EXPECT_EQ((*ep)["log"], log.string());
  EXPECT_GE((*ep)["tensor_parallel"].get<int>(), 1);
  EXPECT_EQ(url, "http://127.0.0.1:" + std::to_string((*ep)["port"].get<int>()) + "/v1");
  pid_t pid = (*ep)["pid"].get<int>();
  ASSERT_GT(pid, 0);
  EXPECT_EQ(::kill(pid, 0), 0);  // running
  for (auto& p : sev.progress) EXPECT_NE(p["what"].get<std::string>().find("loading command"), std::string::npos) << p;

  // A second worker evaluates against the endpoint; the model is the first id of /v1/models.
  child_worker evaluator;
  start_worker(evaluator);
  std::string out = (dir_ / "results.json").string();
  evaluator.send({{"t", "req"},
                  {"id", 7},
                  {"method", "eval"},
                  {"params",
                   {{"endpoint", url},
                    {"benchmarks", "mmlu_pro"},
                    {"data", dir_.string()},
                    {"n", 2},
                    {"budget", 16},
                    {"concurrency", 1},
                    {"retries", 1},
                    {"timeout_s", 60},
                    {"out", out},
                    {"targets", std::string(RAZOR_SOURCE_DIR_T) + "/resources/results/official_targets.json"}}}});
  job_events eev;
  json end = read_until_end(evaluator, 7, eev);
  ASSERT_EQ(end["t"], "result") << end.dump() << "\n" << evaluator.stderr_text() << "\nserver log: " << slurp(log);
  const json& r = end["result"];
  EXPECT_EQ(r["model"], "tiny");
  EXPECT_EQ(r["mmlu_pro_n"], 2);
  EXPECT_EQ(r["budget"], 16);
  EXPECT_EQ(r["endpoint"], url);
  EXPECT_EQ(r["out"], out);
  EXPECT_EQ(r["mmlu_pro_n_finished"].get<int>() + r["mmlu_pro_trunc"].get<int>(), 2);
  ASSERT_FALSE(eev.progress.empty());  // per question; the last value is the whole run
  EXPECT_EQ(eev.progress.back()["done"], 2.0);
  EXPECT_EQ(eev.progress.back()["total"], 2.0);
  ASSERT_EQ(eev.artifacts.size(), 2u);
  EXPECT_EQ(eev.artifacts[0]["kind"], "result");
  EXPECT_EQ(eev.artifacts[0]["path"], out);
  EXPECT_EQ(eev.artifacts[1]["kind"], "file");
  EXPECT_TRUE(fs::exists(out));
  json file = json::parse(slurp(out));
  EXPECT_EQ(file["mmlu_pro_n"], 2);
  EXPECT_EQ(file["tag"], "results");
  bool logged_model = false;
  for (auto& l : eev.logs) logged_model |= l["msg"].get<std::string>().find("model tiny") != std::string::npos;
  EXPECT_TRUE(logged_model);
  evaluator.send({{"t", "shutdown"}});
  EXPECT_EQ(evaluator.wait_exit(), 0);

  // The server is still serving (progress = uptime); cancel stops it, and nothing is left behind.
  server.send({{"t", "cancel"}, {"id", 1}});
  json send_ = read_until_end(server, 1, sev, 30000);
  EXPECT_EQ(send_["t"], "error") << send_.dump();
  EXPECT_EQ(send_["code"], "cancelled");
  EXPECT_NE(send_["message"].get<std::string>().find("stopped the command server at " + url), std::string::npos)
      << send_.dump();
  EXPECT_TRUE(process_gone(pid)) << pid;
  bool serving = false;
  for (auto& p : sev.progress) serving |= p["what"] == "serving " + url;
  EXPECT_TRUE(serving);
  server.send({{"t", "shutdown"}});
  auto bye = server.read_message();
  ASSERT_TRUE(bye);
  EXPECT_EQ((*bye)["t"], "bye");
  EXPECT_EQ(server.wait_exit(), 0);
}

TEST_F(ServeLlamaCpp, FakeVllmGetsTheRealVllmCommandLine) {
  // `vllm` stand-in: records its argv, then runs the llama.cpp server on the port and name it was given.
  fs::path bin = dir_ / "bin";
  fs::create_directories(bin);
  fs::path argv_file = dir_ / "vllm-argv.txt";
  {
    std::ofstream f(bin / "vllm");
    f << "#!/bin/sh\n"
      << "printf '%s\\n' \"$@\" > '" << argv_file.string() << "'\n"
      << "model=$2; port=; name=\n"
      << "while [ $# -gt 0 ]; do\n"
      << "  case \"$1\" in --port) port=$2; shift;; --served-model-name) name=$2; shift;; esac; shift\n"
      << "done\n"
      << "exec '" << node_ << "' '" << script() << "' \"$model\" \"$port\" --oracle '" << RAZOR_ORACLE_DIR
      << "' --ctx 1024 --name \"$name\"\n";
  }
  fs::permissions(bin / "vllm", fs::perms::owner_all);

  // The worker sees two GPUs through CUDA_VISIBLE_DEVICES (a CPU build: the variable is all it has).
  const char* old = std::getenv("CUDA_VISIBLE_DEVICES");
  std::string saved = old ? old : "";
  ::setenv("CUDA_VISIBLE_DEVICES", "0,1", 1);
  child_worker w;
  start_worker(w);
  if (old) ::setenv("CUDA_VISIBLE_DEVICES", saved.c_str(), 1);
  else ::unsetenv("CUDA_VISIBLE_DEVICES");

  w.send({{"t", "req"},
          {"id", 3},
          {"method", "serve"},
          {"params",
           {{"engine", "vllm"},
            {"program", (bin / "vllm").string()},
            {"model", gguf_.string()},
            {"name", "tiny-vllm"},
            {"ctx", 1024},
            {"gpu_memory_utilization", 0.5},
            {"args", {"--enforce-eager", "--trust-remote-code"}},
            {"ready_timeout_s", 120},
            {"log", (dir_ / "vllm.log").string()}}}});
  job_events ev;
  auto ep = read_until_artifact(w, 3, "endpoint", ev);
  ASSERT_TRUE(ep) << ev.end.dump() << "\n" << w.stderr_text() << "\nlog: " << slurp(dir_ / "vllm.log");
  EXPECT_EQ((*ep)["tensor_parallel"], 2);
  EXPECT_EQ((*ep)["served_models"], json::array({"tiny-vllm"}));
  EXPECT_EQ((*ep)["name"], "tiny-vllm");
  int port = (*ep)["port"];
  std::vector<std::string> got;
  {
    std::ifstream f(argv_file);
    for (std::string line; std::getline(f, line);) got.push_back(line);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"serve", gguf_.string(), "--host", "127.0.0.1", "--port",
                                           std::to_string(port), "--tensor-parallel-size", "2",
                                           "--served-model-name", "tiny-vllm", "--max-model-len", "1024",
                                           "--gpu-memory-utilization", "0.5", "--enforce-eager",
                                           "--trust-remote-code"}));
  // The log's first line is the command as run.
  std::string log = slurp(dir_ / "vllm.log");
  EXPECT_EQ(log.rfind("razor serve: " + (bin / "vllm").string() + " serve ", 0), 0u) << log;

  // shutdown (not cancel) also stops the server before the worker says bye.
  pid_t pid = (*ep)["pid"].get<int>();
  w.send({{"t", "shutdown"}});
  json end = read_until_end(w, 3, ev, 30000);
  EXPECT_EQ(end["code"], "cancelled") << end.dump();
  auto bye = w.read_message();
  ASSERT_TRUE(bye);
  EXPECT_EQ((*bye)["t"], "bye");
  EXPECT_EQ(w.wait_exit(), 0);
  EXPECT_TRUE(process_gone(pid)) << pid;
}

// No node needed: the failures come back as job errors with the server's own words.
TEST(ServeWorker, ServerThatExitsOrNeverAnswersIsAnExternalError) {
  fs::path dir = fs::temp_directory_path() / ("razor-serve-errors-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  struct cleanup {
    fs::path d;
    ~cleanup() { std::error_code ec; fs::remove_all(d, ec); }
  } rm{dir};
  child_worker w;
  start_worker(w);
  w.send({{"t", "req"},
          {"id", 1},
          {"method", "serve"},
          {"params", {{"engine", "command"}, {"command", {"sh", "-c", "echo 'ValueError: no GPU found' >&2; false"}},
                      {"log", (dir / "a.log").string()}}}});
  job_events a;
  json e1 = read_until_end(w, 1, a, 30000);
  EXPECT_EQ(e1["t"], "error");
  EXPECT_EQ(e1["code"], "external");
  std::string m1 = e1["message"];
  EXPECT_NE(m1.find("exited with status 1 before it was ready"), std::string::npos) << m1;
  EXPECT_NE(m1.find("ValueError: no GPU found"), std::string::npos) << m1;
  EXPECT_TRUE(a.artifacts.empty());

  w.send({{"t", "req"},
          {"id", 2},
          {"method", "serve"},
          {"params", {{"engine", "command"}, {"command", {"sleep", "30"}}, {"ready_timeout_s", 0.5},
                      {"log", (dir / "b.log").string()}}}});
  job_events b;
  json e2 = read_until_end(w, 2, b, 30000);
  EXPECT_EQ(e2["code"], "external") << e2.dump();
  EXPECT_NE(e2["message"].get<std::string>().find("was not ready after 0.5 s"), std::string::npos) << e2.dump();

  w.send({{"t", "req"}, {"id", 3}, {"method", "serve"}, {"params", {{"engine", "tgi"}, {"model", "m"}}}});
  job_events c;
  EXPECT_EQ(read_until_end(w, 3, c)["code"], "invalid_argument");
  w.send({{"t", "req"}, {"id", 4}, {"method", "serve"}, {"params", {{"engine", "vllm"}, {"model", "m"},
                                                                   {"program", "/nonexistent/vllm"}}}});
  job_events d;
  EXPECT_EQ(read_until_end(w, 4, d)["code"], "not_found");
  w.send({{"t", "req"}, {"id", 5}, {"method", "eval"}, {"params", {{"endpoint", "http://127.0.0.1:9"}}}});
  job_events e;
  EXPECT_EQ(read_until_end(w, 5, e)["code"], "invalid_argument");  // no data, no out
  w.send({{"t", "shutdown"}});
  EXPECT_EQ(w.wait_exit(), 0);
}
