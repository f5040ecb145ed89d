// Session workers (core/jobs/session.h, docs/remote.md) driven through `razor worker --connect` bridges, the
// way the workbench drives them through ssh: a dropped bridge leaves the job running, the next bridge's hello
// lists it, attach replays what it reported (and its result when it ended meanwhile), kill ends the worker.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "child_worker.h"

namespace fs = std::filesystem;
using nlohmann::json;

#ifdef RAZOR_CLI_EXE
namespace {

class Session : public ::testing::Test {
 protected:
  void SetUp() override {
    ws_ = fs::temp_directory_path() / ("razor-session-" + std::to_string(getpid()) + "-" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(ws_);
    fs::create_directories(ws_);
  }
  void TearDown() override {
    // No session worker outlives its test.
    std::error_code ec;
    for (auto& e : fs::directory_iterator(ws_ / ".razor" / "sessions", ec))
      if (e.path().extension() == ".lock") {
        pid_t pid = session_pid(e.path().stem().string());
        if (pid > 0 && lock_held(e.path().stem().string())) ::kill(pid, SIGKILL);
      }
    fs::remove_all(ws_, ec);
  }

  std::unique_ptr<razor::test::child_worker> connect(const std::string& slot) {
    auto w = std::make_unique<razor::test::child_worker>();
    EXPECT_TRUE(w->start(RAZOR_CLI_EXE, {"worker", "--connect", "--workspace", ws_.string(), "--slot", slot, "--cpu",
                                         "--telemetry-ms", "0", "--idle-exit", "120"}));
    return w;
  }
  json hello(razor::test::child_worker& w) {
    auto h = w.read_message();
    EXPECT_TRUE(h) << w.stderr_text();
    if (!h) return json::object();
    EXPECT_EQ(h->value("t", ""), "hello") << h->dump();
    EXPECT_TRUE(h->contains("session")) << h->dump();
    return *h;
  }
  // The next message about job `id` (skipping other jobs' and worker-wide ones).
  json next_of(razor::test::child_worker& w, int64_t id, int timeout_ms = 30000) {
    for (;;) {
      auto m = w.read_message(timeout_ms, {"gpu"});
      if (!m) return json{{"t", "<nothing>"}};
      if (m->contains("id") && (*m)["id"].is_number_integer() && (*m)["id"].get<int64_t>() == id) return *m;
    }
  }
  json until_end(razor::test::child_worker& w, int64_t id, std::vector<json>* seen = nullptr) {
    for (;;) {
      json m = next_of(w, id);
      if (seen) seen->push_back(m);
      const std::string t = m.value("t", "");
      if (t == "result" || t == "error" || t == "<nothing>") return m;
    }
  }
  pid_t session_pid(const std::string& slot) {
    std::ifstream f(ws_ / ".razor" / "sessions" / (slot + ".lock"));
    pid_t pid = 0;
    f >> pid;
    return pid;
  }
  bool lock_held(const std::string& slot) {
    int fd = ::open((ws_ / ".razor" / "sessions" / (slot + ".lock")).c_str(), O_RDONLY);
    if (fd < 0) return false;
    bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0;
    ::close(fd);
    return held;
  }
  bool wait_lock_released(const std::string& slot) {
    for (int i = 0; i < 500 && lock_held(slot); ++i) ::usleep(20000);
    return !lock_held(slot);
  }

  fs::path ws_;
};

TEST_F(Session, ADroppedLinkLeavesTheJobRunningAndAttachResumesIt) {
  auto a = connect("cpu");
  json h = hello(*a);
  EXPECT_TRUE(h["session"]["jobs"].empty());
  EXPECT_EQ(h["session"]["slot"], "cpu");
  EXPECT_EQ(h["session"]["workspace"], fs::canonical(ws_).string());
  const pid_t worker = pid_t(h["pid"].get<int64_t>());
  EXPECT_NE(worker, a->pid()) << "the bridge relays; the worker is another process";

  ASSERT_TRUE(a->send({{"t", "req"}, {"id", 7}, {"method", "sleep"}, {"params", {{"ms", 1500}, {"step_ms", 10}}}}));
  EXPECT_EQ(next_of(*a, 7).value("t", ""), "progress");
  ::kill(a->pid(), SIGKILL);  // the link drops
  a->wait_exit();

  auto b = connect("cpu");
  h = hello(*b);
  EXPECT_EQ(h["pid"].get<int64_t>(), worker) << "the same session worker answers";
  ASSERT_EQ(h["session"]["jobs"].size(), 1u) << h.dump();
  EXPECT_EQ(h["session"]["jobs"][0], (json{{"id", 7}, {"method", "sleep"}, {"state", "running"}}));
  EXPECT_EQ(h["session"]["next_id"], 8);
  // Until attached, this connection sees nothing of job 7; then the last progress and the result.
  ASSERT_TRUE(b->send({{"t", "attach"}, {"id", 7}}));
  std::vector<json> seen;
  json end = until_end(*b, 7, &seen);
  EXPECT_EQ(end.value("t", ""), "result") << end.dump();
  EXPECT_EQ(end["result"]["slept_ms"], 1500);
  EXPECT_EQ(seen.front().value("t", ""), "progress");

  // A reused id is refused while the session remembers the job; forget drops it.
  ASSERT_TRUE(b->send({{"t", "req"}, {"id", 7}, {"method", "echo"}, {"params", json::object()}}));
  json dup = next_of(*b, 7);
  EXPECT_EQ(dup.value("code", ""), "duplicate_id") << dup.dump();
  ASSERT_TRUE(b->send({{"t", "forget"}, {"id", 7}}));
  ASSERT_TRUE(b->send({{"t", "attach"}, {"id", 7}}));
  EXPECT_EQ(next_of(*b, 7).value("code", ""), "unknown_job");

  // shutdown stops the session worker itself (a bridge's end of input only detaches).
  ASSERT_TRUE(b->send({{"t", "shutdown"}}));
  EXPECT_EQ(b->read_message()->value("t", ""), "bye");
  EXPECT_EQ(b->wait_exit(), 0);
  EXPECT_TRUE(wait_lock_released("cpu"));
}

TEST_F(Session, AJobThatEndedWhileDetachedIsReplayedWithItsArtifacts) {
  const std::string out = (ws_ / "q").string();
  {
    auto a = connect("cpu");
    hello(*a);
    ASSERT_TRUE(a->send({{"t", "req"},
                         {"id", 3},
                         {"method", "quantize"},
                         {"params", {{"model", std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe"},
                                     {"out", out},
                                     {"recipe", "uniform-int4"},
                                     {"cpu", true}}}}));
    a->close_stdin();  // the client goes away at once: end of input detaches, it does not cancel
    EXPECT_EQ(a->wait_exit(), 0);
  }
  // Wait for the job to end with nobody connected.
  for (int i = 0; i < 600 && !fs::exists(out); ++i) ::usleep(50000);
  ASSERT_TRUE(fs::exists(out));

  auto b = connect("cpu");
  json h = hello(*b);
  ASSERT_EQ(h["session"]["jobs"].size(), 1u);
  EXPECT_EQ(h["session"]["jobs"][0]["state"], "ended");
  ASSERT_TRUE(b->send({{"t", "attach"}, {"id", 3}}));
  std::vector<json> seen;
  json end = until_end(*b, 3, &seen);
  EXPECT_EQ(end.value("t", ""), "result") << end.dump();
  int artifacts = 0;
  for (auto& m : seen) artifacts += m.value("t", "") == "artifact";
  EXPECT_EQ(artifacts, 2) << "checkpoint and summary are replayed";
}

TEST_F(Session, ANewConnectionTakesOverAndKillEndsTheWorker) {
  auto a = connect("gpu0");
  json ha = hello(*a);
  auto b = connect("gpu0");
  json hb = hello(*b);
  EXPECT_EQ(ha["pid"], hb["pid"]);
  auto bye = a->read_message(5000);
  ASSERT_TRUE(bye);
  EXPECT_EQ(*bye, (json{{"t", "bye"}, {"reason", "taken_over"}})) << "the old client is told why";
  EXPECT_FALSE(a->read_line(5000)) << "the old connection is closed";
  EXPECT_EQ(a->wait_exit(), 0);

  ASSERT_TRUE(b->send({{"t", "req"}, {"id", 1}, {"method", "sleep"}, {"params", {{"ms", 60000}}}}));
  EXPECT_EQ(next_of(*b, 1).value("t", ""), "progress");
  ASSERT_TRUE(b->send({{"t", "kill"}, {"id", 1}}));
  json end = next_of(*b, 1);
  EXPECT_EQ(end.value("code", ""), "cancelled") << end.dump();
  EXPECT_EQ(b->wait_exit(), 0) << "the bridge ends with the worker";
  EXPECT_TRUE(wait_lock_released("gpu0"));

  // The next bridge starts a fresh session worker, which knows nothing of job 1.
  auto c = connect("gpu0");
  json hc = hello(*c);
  EXPECT_NE(hc["pid"], hb["pid"]);
  ASSERT_TRUE(c->send({{"t", "attach"}, {"id", 1}}));
  EXPECT_EQ(next_of(*c, 1).value("code", ""), "unknown_job");
}

TEST_F(Session, ProbeReportsTheHostAndItsSessions) {
  auto a = connect("cpu");
  hello(*a);
  razor::test::child_worker p;
  ASSERT_TRUE(p.start(RAZOR_CLI_EXE, {"worker", "--probe", "--workspace", ws_.string()}));
  auto line = p.read_line();
  ASSERT_TRUE(line);
  json j = json::parse(*line);
  EXPECT_EQ(j["t"], "probe");
  EXPECT_EQ(j["proto"], 1);
  EXPECT_TRUE(j["workspace_ok"].get<bool>());
  ASSERT_EQ(j["sessions"].size(), 1u) << j.dump();
  EXPECT_EQ(j["sessions"][0]["slot"], "cpu");
  EXPECT_TRUE(j["sessions"][0]["alive"].get<bool>());

  razor::test::child_worker q;
  ASSERT_TRUE(q.start(RAZOR_CLI_EXE, {"worker", "--probe", "--workspace", (ws_ / "missing").string()}));
  json k = json::parse(*q.read_line());
  EXPECT_FALSE(k["workspace_ok"].get<bool>());
  EXPECT_NE(k["workspace_note"].get<std::string>().find("not a writable directory"), std::string::npos);
}

TEST_F(Session, ConnectFailsClearlyWithoutAWorkspace) {
  razor::test::child_worker w;
  ASSERT_TRUE(w.start(RAZOR_CLI_EXE, {"worker", "--connect", "--workspace", (ws_ / "nope").string()}));
  EXPECT_EQ(w.wait_exit(), 1);
  EXPECT_NE(w.stderr_text().find("not a directory"), std::string::npos) << w.stderr_text();
}

}  // namespace
#endif
