// Inference servers as child processes (core/eval/serve.h): the argv of each engine, the GPU count behind the
// tensor parallel size, and the life cycle against small local programs (sh, sleep, a python3 http.server that
// answers /v1/models): ready, stopped with its whole process group, dead at once, never ready, dead while serving.
// Also the eval runner's progress and cancel, which the worker's `eval` method relies on.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "eval/fake_server.h"
#include "eval/runner.h"
#include "eval/serve.h"
#include "util/shell.h"
#include "jobs/child_worker.h"  // tests/jobs: a child process on pipes

namespace fs = std::filesystem;
using razor::errc;
using razor::shell_join;
using namespace razor::eval;
using strings = std::vector<std::string>;

namespace {

using razor::test::find_on_path;

// A process that was stopped and reaped is gone: kill(pid, 0) says ESRCH.
bool process_gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }
// An orphan is reaped by init, or never where PID 1 does not reap: a zombie is not running either.
bool not_running(pid_t pid) {
  if (process_gone(pid)) return true;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(f, stat);
  auto rp = stat.rfind(')');
  return rp != std::string::npos && rp + 2 < stat.size() && (stat[rp + 2] == 'Z' || stat[rp + 2] == 'X');
}

pid_t read_pid(const fs::path& f) {
  std::ifstream in(f);
  long v = -1;
  in >> v;
  return pid_t(v);
}

struct temp_dir {
  fs::path path;
  explicit temp_dir(const std::string& tag) {
    path = fs::temp_directory_path() / ("razor-serve-" + tag + "-" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};


serve_options quick(strings command, const fs::path& dir) {
  serve_options o;
  o.engine = "command";
  o.command = std::move(command);
  o.ready_timeout_s = 60;
  o.poll_interval_s = 0.05;
  o.stop_grace_s = 5;
  o.log_path = (dir / "server.log").string();
  return o;
}

}  // namespace

TEST(ServeArgv, VllmWithTensorParallelNameContextAndExtraArgs) {
  serve_options o;
  o.engine = "vllm";
  o.model = "/models/Qwen3.5-397B-A17B razor";
  o.name = "q397";
  o.ctx = 40960;
  o.gpu_memory_utilization = 0.92;
  o.args = {"--enable-expert-parallel", "--override-generation-config", R"({"temperature": 0.6})"};
  auto v = server_argv(o, 8123, 4);
  ASSERT_TRUE(v.ok()) << v.error().to_string();
  EXPECT_EQ(*v, (strings{"vllm", "serve", "/models/Qwen3.5-397B-A17B razor", "--host", "127.0.0.1", "--port", "8123",
                         "--tensor-parallel-size", "4", "--served-model-name", "q397", "--max-model-len", "40960",
                         "--gpu-memory-utilization", "0.92", "--enable-expert-parallel",
                         "--override-generation-config", R"({"temperature": 0.6})"}));
  // The log line quotes what a shell would need quoted, nothing else.
  EXPECT_EQ(shell_join(*v),
            "vllm serve '/models/Qwen3.5-397B-A17B razor' --host 127.0.0.1 --port 8123 --tensor-parallel-size 4 "
            "--served-model-name q397 --max-model-len 40960 --gpu-memory-utilization 0.92 --enable-expert-parallel "
            "--override-generation-config '{\"temperature\": 0.6}'");

  serve_options m;  // defaults: no name, no context, vLLM's memory fraction; the program from params
  m.model = "Qwen/Qwen3-30B-A3B";
  m.program = "/opt/venv/bin/vllm";
  auto w = server_argv(m, 9000, 1);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, (strings{"/opt/venv/bin/vllm", "serve", "Qwen/Qwen3-30B-A3B", "--host", "127.0.0.1", "--port", "9000",
                         "--tensor-parallel-size", "1"}));
}

TEST(ServeArgv, LlamaServerSplitsLayersOverTheGpus) {
  serve_options o;
  o.engine = "llama-server";
  o.model = "/m/q.gguf";
  auto one = server_argv(o, 8080, 1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, (strings{"llama-server", "-m", "/m/q.gguf", "--host", "127.0.0.1", "--port", "8080", "-ngl", "999",
                           "-c", std::to_string(kDefaultLlamaCtx)}));
  o.name = "q";
  o.ctx = 66560;
  o.host = "0.0.0.0";
  o.args = {"-np", "8", "--jinja"};
  auto three = server_argv(o, 8080, 3);
  ASSERT_TRUE(three.ok());
  EXPECT_EQ(*three, (strings{"llama-server", "-m", "/m/q.gguf", "--host", "0.0.0.0", "--port", "8080", "-ngl", "999",
                             "-c", "66560", "--alias", "q", "-sm", "layer", "-ts", "1,1,1", "-np", "8", "--jinja"}));
}

TEST(ServeArgv, CommandPlaceholdersAndErrors) {
  serve_options o;
  o.engine = "command";
  o.model = "/m/tiny.gguf";
  o.name = "tiny";
  o.host = "127.0.0.1";
  o.command = {"node", "server.mjs", "{model}", "{port}", "--name={name}", "http://{host}:{port}", "{unknown}",
               R"({"a": 1})"};
  o.args = {"--extra", "{port}"};
  auto v = server_argv(o, 4242, 2);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, (strings{"node", "server.mjs", "/m/tiny.gguf", "4242", "--name=tiny", "http://127.0.0.1:4242",
                         "{unknown}", R"({"a": 1})", "--extra", "4242"}));
  o.program = "/usr/bin/node";  // params.program replaces the command's program
  EXPECT_EQ(server_argv(o, 1, 1)->at(0), "/usr/bin/node");

  serve_options bad;
  bad.engine = "tgi";
  EXPECT_EQ(server_argv(bad, 1, 1).error().code(), errc::invalid_argument);
  bad.engine = "command";
  EXPECT_EQ(server_argv(bad, 1, 1).error().code(), errc::invalid_argument);
  bad.engine = "vllm";
  EXPECT_EQ(server_argv(bad, 1, 1).error().code(), errc::invalid_argument);  // no model
  bad.engine = "llama-server";
  EXPECT_EQ(server_argv(bad, 1, 1).error().code(), errc::invalid_argument);
  bad.model = "m";
  EXPECT_EQ(server_argv(bad, 1, 0).error().code(), errc::invalid_argument);  // no GPU count
}

TEST(ServeArgv, VisibleGpusFromCudaVisibleDevices) {
  EXPECT_EQ(visible_gpu_count("0,1,2,3", 8), 4);       // the environment wins over the runtime's count
  EXPECT_EQ(visible_gpu_count("5", 0), 1);
  EXPECT_EQ(visible_gpu_count(" 2, 3 ", 0), 2);
  EXPECT_EQ(visible_gpu_count("GPU-8f1e2c3a,GPU-77aa01b2", 0), 2);  // UUIDs count too
  EXPECT_EQ(visible_gpu_count("0,1,-1,3", 0), 2);      // CUDA stops at the first invalid index
  EXPECT_EQ(visible_gpu_count("", 4), 1);              // no GPU visible: still a size of 1, never 0
  EXPECT_EQ(visible_gpu_count(nullptr, 3), 3);         // unset: the CUDA runtime's devices
  EXPECT_EQ(visible_gpu_count(nullptr, 0, 8), 8);      // no CUDA in this build: /dev/nvidia<N>
  EXPECT_EQ(visible_gpu_count(nullptr, 0, 0), 1);
}

TEST(ServeArgv, FreePort) {
  auto p = free_port("127.0.0.1");
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  EXPECT_GT(*p, 0);
  EXPECT_LT(*p, 65536);
}

TEST(ServeProcess, ServerThatExitsAtOnceIsAnExternalErrorWithItsLog) {
  temp_dir d("exits");
  auto o = quick({"sh", "-c", "echo loading weights; echo 'RuntimeError: CUDA out of memory' >&2; exit 3"}, d.path);
  auto s = inference_server::start(o, {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), errc::external);
  const std::string m = s.error().message();
  EXPECT_NE(m.find("exited with status 3 before it was ready"), std::string::npos) << m;
  EXPECT_NE(m.find("RuntimeError: CUDA out of memory"), std::string::npos) << m;
  EXPECT_NE(m.find("loading weights"), std::string::npos) << m;
  EXPECT_NE(m.find((d.path / "server.log").string()), std::string::npos) << m;

  auto f = inference_server::start(quick({"false"}, d.path), {});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), errc::external);
  EXPECT_NE(f.error().message().find("exited with status 1"), std::string::npos) << f.error().message();

  auto missing = quick({"/nonexistent/vllm"}, d.path);
  auto n = inference_server::start(missing, {});
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().code(), errc::not_found);
  EXPECT_NE(n.error().message().find("/nonexistent/vllm"), std::string::npos);
}

TEST(ServeProcess, ServerThatNeverBecomesReadyIsKilledAtTheTimeout) {
  temp_dir d("never");
  // Ignores SIGTERM (an ignored signal stays ignored across exec): only the SIGKILL after the grace ends it.
  auto o = quick({"sh", "-c", "trap '' TERM; echo $$ > " + (d.path / "pid").string() + "; exec sleep 60"}, d.path);
  o.ready_timeout_s = 0.5;
  o.stop_grace_s = 0.3;
  auto s = inference_server::start(o, {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), errc::external);
  EXPECT_NE(s.error().message().find("was not ready after 0.5 s"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().message().find("SIGKILL"), std::string::npos) << s.error().message();
  pid_t pid = read_pid(d.path / "pid");
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(process_gone(pid)) << pid;
}

TEST(ServeProcess, CancelWhileLoadingStopsTheServer) {
  temp_dir d("cancel");
  auto o = quick({"sh", "-c", "echo $$ > " + (d.path / "pid").string() + "; exec sleep 60"}, d.path);
  int calls = 0;
  auto s = inference_server::start(o, [&](double, double, const char*) {
    return ++calls < 3 || !fs::exists(d.path / "pid");  // cancel once the child has written its pid
  });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), errc::cancelled);
  pid_t pid = read_pid(d.path / "pid");
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(process_gone(pid));
}

class ServePython : public ::testing::Test {
 protected:
  void SetUp() override {
    python_ = find_on_path("python3");
    if (python_.empty()) GTEST_SKIP() << "python3 is not on PATH (the stand-in server is a python http.server)";
    fs::copy_file(RAZOR_SOURCE_DIR_T "/tests/common/fake_models_server.py", dir_.path / "server.py");
  }
  temp_dir dir_{"py"};
  std::string python_;
};

TEST_F(ServePython, ReadyThenStoppedWithItsWholeProcessGroup) {
  // The server forks a helper into its group first, as vLLM's tensor-parallel workers are.
  auto child = (dir_.path / "child").string();
  auto o = quick({"sh", "-c", "sleep 60 & echo $! > " + child + "; exec " + python_ + " " +
                                  (dir_.path / "server.py").string() + " {port}"},
                 dir_.path);
  o.name = "unused";
  std::vector<double> loading;
  auto s = inference_server::start(o, [&](double el, double total, const char*) {
    loading.push_back(total);
    return true;
  });
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  auto& srv = **s;
  EXPECT_EQ(srv.url(), "http://127.0.0.1:" + std::to_string(srv.port()) + "/v1");
  EXPECT_EQ(srv.served_models(), strings{"fake"});
  for (double t : loading) EXPECT_EQ(t, o.ready_timeout_s);
  pid_t pid = srv.pid(), helper = read_pid(child);
  ASSERT_GT(helper, 0);
  EXPECT_TRUE(srv.alive());

  int reports = 0;
  auto st = srv.serve([&](double up, double total, const char* what) {
    EXPECT_EQ(total, 0);
    EXPECT_NE(std::string(what).find(srv.url()), std::string::npos);
    ++reports;
    return true;
  }, [&] { return reports >= 1; }, 0.01);
  EXPECT_EQ(st.code(), errc::cancelled);
  EXPECT_NE(st.message().find("stopped the command server"), std::string::npos) << st.message();
  EXPECT_TRUE(process_gone(pid));
  EXPECT_TRUE(not_running(helper)) << helper;  // SIGTERMed with the group (an orphan: init reaps it, or not)
  EXPECT_FALSE(srv.stop());  // idempotent
}

TEST_F(ServePython, ServerThatDiesWhileServingEndsTheJobWithItsLog) {
  auto o = quick({python_, (dir_.path / "server.py").string(), "{port}"}, dir_.path);
  auto s = inference_server::start(o, {});
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  auto& srv = **s;
  ASSERT_EQ(::kill(srv.pid(), SIGKILL), 0);
  auto st = srv.serve({}, {});
  EXPECT_EQ(st.code(), errc::external);
  EXPECT_NE(st.message().find("was killed by signal 9"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("while serving " + srv.url()), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("fake server on " + std::to_string(srv.port())), std::string::npos) << st.message();
  EXPECT_TRUE(process_gone(srv.pid()));
}

#ifdef RAZOR_CLI_EXE
TEST_F(ServePython, CliPrintsTheUrlAndCtrlCStopsTheServer) {
  razor::test::child_worker cli;
  auto pidf = (dir_.path / "pid").string();
  ASSERT_TRUE(cli.start(RAZOR_CLI_EXE, {"serve", "--engine", "command", "--log", (dir_.path / "cli.log").string(),
                                        "--", "sh", "-c", "echo $$ > " + pidf + "; exec " + python_ + " " +
                                        (dir_.path / "server.py").string() + " {port}"}));
  auto url = cli.read_line(60000);
  ASSERT_TRUE(url) << cli.stderr_text();
  EXPECT_EQ(url->rfind("http://127.0.0.1:", 0), 0u) << *url;
  pid_t pid = read_pid(pidf);
  ASSERT_GT(pid, 0);
  EXPECT_EQ(::kill(pid, 0), 0);
  ::kill(cli.pid(), SIGINT);
  EXPECT_EQ(cli.wait_exit(30000), 0) << cli.stderr_text();
  EXPECT_TRUE(process_gone(pid));
  EXPECT_NE(cli.stderr_text().find("models: fake"), std::string::npos) << cli.stderr_text();
  EXPECT_NE(cli.stderr_text().find("stopped the command server at " + *url), std::string::npos) << cli.stderr_text();
}
#endif

// ---- the eval job's progress and cancel (core/eval/runner.h), as the worker's `eval` method drives them ----
using razor::eval::testing::fake_reply;
using razor::eval::testing::fake_server;

namespace {
void write_three_questions(const fs::path& dir) {
  std::ofstream f(dir / "mmlu_pro.jsonl");
  f << R"({"question_id":1,"question":"Q-one?","options":["a","b","c","d"],"answer_index":1})" "\n"
    << R"({"question_id":2,"question":"Q-two?","options":["a","b","c","d"],"answer_index":3})" "\n"
    << R"({"question_id":3,"question":"Q-three?","options":["a","b","c","d"],"answer_index":2})" "\n";
}
size_t lines_of(const std::string& path) {
  std::ifstream f(path);
  size_t n = 0;
  for (std::string l; std::getline(f, l);) ++n;
  return n;
}
}  // namespace

TEST(EvalProgress, ProgressPerQuestionAndCancelKeepsTheSamples) {
  temp_dir d("evalprog");
  write_three_questions(d.path);
  fake_server srv([](auto&, auto&, auto&) -> fake_reply { return {200, fake_server::chat_body("Answer: B")}; });
  eval_options o;
  o.client.endpoint = srv.url();
  o.client.retries = 0;
  o.model = "m";
  o.benchmarks = {"mmlu_pro"};
  o.data_dir = d.path.string();
  o.concurrency = 1;
  o.out = (d.path / "r.json").string();
  std::vector<std::pair<double, double>> seen;
  std::vector<std::string> what;
  o.progress = [&](double done, double total, const char* w) {
    seen.push_back({done, total});
    what.push_back(w);
    return done < 1;  // cancel once the first answer is graded
  };
  auto r = run_eval(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), errc::cancelled);
  EXPECT_NE(r.error().message().find("re-run to resume"), std::string::npos) << r.error().message();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], (std::pair<double, double>{0, 3}));
  EXPECT_EQ(seen[1], (std::pair<double, double>{1, 3}));
  EXPECT_EQ(what[1], "mmlu_pro 1");
  EXPECT_EQ(lines_of(samples_path(o.out)), 1u);
  EXPECT_FALSE(fs::exists(o.out));

  // The re-run resumes: progress starts at the one kept, and the run completes.
  seen.clear();
  o.progress = [&](double done, double total, const char*) {
    seen.push_back({done, total});
    return true;
  };
  auto r2 = run_eval(o);
  ASSERT_TRUE(r2.ok()) << r2.error().to_string();
  EXPECT_EQ(seen.front(), (std::pair<double, double>{1, 3}));
  EXPECT_EQ(seen.back(), (std::pair<double, double>{3, 3}));
  EXPECT_EQ((*r2)["mmlu_pro_n"], 3);
}

TEST(EvalProgress, CancelAbortsTheRequestInFlight) {
  temp_dir d("evalabort");
  write_three_questions(d.path);
  std::mutex mu;
  std::condition_variable cv;
  bool released = false, entered = false;
  std::atomic<bool> released_by_timeout{false};
  fake_server srv([&](auto&, auto&, auto&) -> fake_reply {
    std::unique_lock lk(mu);
    entered = true;
    cv.notify_all();
    // A reply that would take "forever": only the test's release (after run_eval returned) ends it. The bound
    // only keeps a broken abort from hanging the suite.
    released_by_timeout = !cv.wait_for(lk, std::chrono::seconds(60), [&] { return released; });
    return {200, fake_server::chat_body("Answer: B")};
  });
  eval_options o;
  o.client.endpoint = srv.url();
  o.client.retries = 0;
  o.client.timeout_s = 600;
  o.client.cancelled = [&] {  // the worker's job_context::is_cancelled: true once the request is in flight
    std::lock_guard lk(mu);
    return entered;
  };
  o.model = "m";
  o.benchmarks = {"mmlu_pro"};
  o.data_dir = d.path.string();
  o.concurrency = 1;
  o.out = (d.path / "r.json").string();
  auto r = run_eval(o);
  {
    std::lock_guard lk(mu);
    released = true;
  }
  cv.notify_all();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), errc::cancelled) << r.error().to_string();
  EXPECT_EQ(lines_of(samples_path(o.out)), 0u);
  EXPECT_FALSE(released_by_timeout);
}
