// `razor worker` run as a child process through pipes: hello, methods, errors, cancel, shutdown, and the
// example session of docs/protocol.md replayed against it.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "child_worker.h"
#include "jobs/protocol.h"

namespace fs = std::filesystem;
using nlohmann::json;
using razor::test::child_worker;

namespace {

// A cancelled sleep must end well before it would have: the cancel is read while the job runs and checked
// every step_ms (10 ms). 5 s allows for a loaded two-core machine.
constexpr auto kCancelLatencyBound = std::chrono::seconds(5);

void start_worker(child_worker& w, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"worker", "--cpu", "--telemetry-ms", "0"};
  args.insert(args.end(), extra.begin(), extra.end());
  ASSERT_TRUE(w.start(RAZOR_CLI_EXE, args, RAZOR_SOURCE_DIR_T));
}

json expect_hello(child_worker& w) {
  auto h = w.read_message();
  EXPECT_TRUE(h.has_value()) << w.stderr_text();
  if (!h) return {};
  EXPECT_EQ((*h)["t"], "hello") << h->dump();
  return *h;
}

}  // namespace

TEST(Worker, SaysHelloWithVersionPidAndGpus) {
  child_worker w;
  start_worker(w);
  json h = expect_hello(w);
  EXPECT_EQ(h["proto"], razor::jobs::kProtocolVersion);
  EXPECT_EQ(h["version"], RAZOR_VERSION);
  EXPECT_EQ(h["pid"], w.pid());
  EXPECT_TRUE(h["gpus"].is_array());
  EXPECT_EQ(h["role"], "cpu");
  std::set<std::string> methods;
  for (auto& m : h["methods"]) methods.insert(m.get<std::string>());
  for (const char* m : {"echo", "sleep", "inspect", "footprint", "quantize", "synth"}) EXPECT_TRUE(methods.count(m)) << m;
  w.send({{"t", "shutdown"}});
  auto bye = w.read_message();
  ASSERT_TRUE(bye);
  EXPECT_EQ((*bye)["t"], "bye");
  EXPECT_EQ(w.wait_exit(), 0);
}

TEST(Worker, InspectsTheTinyFixture) {
  child_worker w;
  start_worker(w);
  expect_hello(w);
  w.send({{"t", "req"}, {"id", 1}, {"method", "inspect"}, {"params", {{"model", RAZOR_MODELS_DIR "/tiny-qwen3-moe"}}}});
  auto r = w.read_message();
  ASSERT_TRUE(r) << w.stderr_text();
  ASSERT_EQ((*r)["t"], "result") << r->dump();
  EXPECT_EQ((*r)["id"], 1);
  auto& inv = (*r)["result"];
  EXPECT_EQ(inv["format"], "razor.inventory/1");
  EXPECT_EQ(inv["model_type"], "qwen3_moe");
  EXPECT_GT(inv["experts"]["total"].get<int>(), 1);
  EXPECT_FALSE(inv.contains("tensors"));  // tensors: false by default, the message stays small
}

TEST(Worker, MissingModelIsNotFoundWithTheRequestId) {
  child_worker w;
  start_worker(w);
  expect_hello(w);
  w.send({{"t", "req"}, {"id", 5}, {"method", "inspect"}, {"params", {{"model", "/nonexistent/model"}}}});
  auto r = w.read_message();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["t"], "error");
  EXPECT_EQ((*r)["id"], 5);
  EXPECT_TRUE(razor::jobs::is_error_code((*r)["code"].get<std::string>())) << r->dump();
  EXPECT_FALSE((*r)["message"].get<std::string>().empty());
}

TEST(Worker, UnknownMethodIsAnErrorAndTheWorkerCarriesOn) {
  child_worker w;
  start_worker(w);
  expect_hello(w);
  w.send({{"t", "req"}, {"id", 2}, {"method", "transmogrify"}, {"params", json::object()}});
  auto r = w.read_message();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["t"], "error");
  EXPECT_EQ((*r)["id"], 2);
  EXPECT_EQ((*r)["code"], "unknown_method");
  w.send({{"t", "req"}, {"id", 3}, {"method", "echo"}, {"params", {{"x", 1}}}});
  auto e = w.read_message();
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["t"], "result");
  EXPECT_EQ((*e)["result"], json({{"x", 1}}));
}

TEST(Worker, BadJsonLinesAreBadRequestAndTheWorkerCarriesOn) {
  child_worker w;
  start_worker(w);
  expect_hello(w);
  w.write_line("{this is not json");
  auto r = w.read_message();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["t"], "error");
  EXPECT_TRUE((*r)["id"].is_null());
  EXPECT_EQ((*r)["code"], "bad_request");
  // A request with an id but a bad field is answered under that id.
  w.write_line(R"({"t":"req","id":12,"method":"echo","params":"no"})");
  auto r2 = w.read_message();
  ASSERT_TRUE(r2);
  EXPECT_EQ((*r2)["id"], 12);
  EXPECT_EQ((*r2)["code"], "bad_request");
  w.send({{"t", "req"}, {"id", 13}, {"method", "echo"}, {"params", json::object()}});
  auto ok = w.read_message();
  ASSERT_TRUE(ok);
  EXPECT_EQ((*ok)["t"], "result");
}

TEST(Worker, OverlongRequestLineIsDiscardedAndReported) {
  child_worker w;
  start_worker(w);
  expect_hello(w);
  // 17 MiB without a newline, then the newline: over kMaxLineBytes (16 MiB). Written from a thread because
  // the pipe holds 64 KiB and the worker reports the line while we are still writing it.
  std::string big(size_t(razor::jobs::kMaxLineBytes) + (1 << 20), 'x');
  std::thread writer([&] { w.write_line(big); });
  auto r = w.read_message();
  writer.join();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["t"], "error");
  EXPECT_EQ((*r)["code"], "bad_request");
  EXPECT_NE((*r)["message"].get<std::string>().find("longer than"), std::string::npos);
  w.send({{"t", "req"}, {"id", 1}, {"method", "echo"}, {"params", json::object()}});
  auto ok = w.read_message();
  ASSERT_TRUE(ok);
  EXPECT_EQ((*ok)["t"], "result") << ok->dump();  // the rest of the long line was not taken as a request
}

TEST(Worker, CancelStopsASleepWhileItRuns) {
  child_worker w;
  start_worker(w);
  expect_hello(w);
  auto t0 = std::chrono::steady_clock::now();
  w.send({{"t", "req"}, {"id", 4}, {"method", "sleep"}, {"params", {{"ms", 60000}}}});
  auto p = w.read_message();
  ASSERT_TRUE(p);
  EXPECT_EQ((*p)["t"], "progress");
  EXPECT_EQ((*p)["total"], 60000);
  w.send({{"t", "cancel"}, {"id", 4}});
  json last;
  int progress_lines = 0;
  for (;;) {
    auto m = w.read_message();
    ASSERT_TRUE(m);
    if ((*m)["t"] == "progress") {
      ++progress_lines;
      continue;
    }
    last = *m;
    break;
  }
  EXPECT_EQ(last["t"], "error");
  EXPECT_EQ(last["id"], 4);
  EXPECT_EQ(last["code"], "cancelled");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, kCancelLatencyBound);
}

TEST(Worker, ProgressIsThrottledToTenPerSecond) {
  child_worker w;
  start_worker(w);
  expect_hello(w);
  // 1500 ms of sleep in 1 ms steps asks for 1500 progress reports; at most 10 per second go out, plus the
  // first and the final value (last value wins).
  w.send({{"t", "req"}, {"id", 1}, {"method", "sleep"}, {"params", {{"ms", 1500}, {"step_ms", 1}}}});
  int progress = 0;
  json last_progress;
  for (;;) {
    auto m = w.read_message();
    ASSERT_TRUE(m);
    if ((*m)["t"] == "progress") {
      ++progress;
      last_progress = *m;
      continue;
    }
    EXPECT_EQ((*m)["t"], "result");
    break;
  }
  EXPECT_GE(progress, 3);
  EXPECT_LE(progress, 1500 / 100 + 2);
  EXPECT_EQ(last_progress["done"], 1500);  // the final value is not lost to the throttle
}

TEST(Worker, QueuesRequestsWhileBusyAndCancelsQueuedOnes) {
  child_worker w;
  start_worker(w);
  expect_hello(w);
  w.send({{"t", "req"}, {"id", 1}, {"method", "sleep"}, {"params", {{"ms", 400}}}});
  w.send({{"t", "req"}, {"id", 2}, {"method", "echo"}, {"params", {{"n", 2}}}});
  w.send({{"t", "req"}, {"id", 3}, {"method", "echo"}, {"params", {{"n", 3}}}});
  w.send({{"t", "req"}, {"id", 1}, {"method", "echo"}, {"params", json::object()}});  // duplicate id
  w.send({{"t", "cancel"}, {"id", 3}});
  std::vector<json> ends;
  while (ends.size() < 4) {
    auto m = w.read_message(20000, {"gpu", "progress"});
    ASSERT_TRUE(m);
    ends.push_back(*m);
  }
  // The duplicate and the cancelled queued job are answered at once, before the sleep ends; then 1, then 2.
  EXPECT_EQ(ends[0]["code"], "duplicate_id");
  EXPECT_EQ(ends[1]["id"], 3);
  EXPECT_EQ(ends[1]["code"], "cancelled");
  EXPECT_EQ(ends[2]["id"], 1);
  EXPECT_EQ(ends[2]["t"], "result");
  EXPECT_EQ(ends[3]["id"], 2);
  EXPECT_EQ(ends[3]["result"]["n"], 2);
}

TEST(Worker, StrayStdoutGoesToStderr) {
  child_worker w;
  start_worker(w);
  expect_hello(w);
  w.send({{"t", "req"}, {"id", 1}, {"method", "echo"}, {"params", {{"stdout", "stray library chatter\n"}}}});
  auto r = w.read_message();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["t"], "result");  // not "<not json>": the chatter did not reach the protocol
  w.send({{"t", "shutdown"}});
  EXPECT_EQ(w.wait_exit(), 0);
  EXPECT_NE(w.stderr_text().find("stray library chatter"), std::string::npos);
}

TEST(Worker, EndOfInputShutsDownAndCancelsTheRunningJob) {
  child_worker w;
  start_worker(w);
  expect_hello(w);
  w.send({{"t", "req"}, {"id", 1}, {"method", "sleep"}, {"params", {{"ms", 60000}}}});
  auto p = w.read_message();
  ASSERT_TRUE(p);
  w.close_stdin();
  json end;
  do {
    auto m = w.read_message();
    ASSERT_TRUE(m);
    end = *m;
  } while (end["t"] == "progress");
  EXPECT_EQ(end["code"], "cancelled");
  auto bye = w.read_message();
  ASSERT_TRUE(bye);
  EXPECT_EQ((*bye)["t"], "bye");
  EXPECT_EQ(w.wait_exit(), 0);
}

TEST(Worker, AbsentNvmlIsOneLogLineNotAnError) {
  child_worker w;
  ASSERT_TRUE(w.start(RAZOR_CLI_EXE, {"worker", "--cpu", "--telemetry-ms", "100", "--nvml", "/nonexistent/libnvml.so"}));
  expect_hello(w);
  auto m = w.read_message(5000);
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["t"], "log");
  EXPECT_TRUE((*m)["id"].is_null());
  EXPECT_NE((*m)["msg"].get<std::string>().find("GPU telemetry off"), std::string::npos);
  // No gpu samples follow, and the worker still works.
  w.send({{"t", "req"}, {"id", 1}, {"method", "echo"}, {"params", json::object()}});
  auto r = w.read_message(5000, {});
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["t"], "result");
}

// ---- docs/protocol.md's example session, replayed ----
namespace {

// Fields whose values change from run to run (or with the build): only their presence and JSON type count.
const std::set<std::string> kVolatile = {"pid", "version", "seconds", "time", "gpus", "gpus_note", "cuda",
                                         "methods", "schema", "enums", "message", "msg", "done", "path"};

bool same_type(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return true;
  return a.type() == b.type();
}

// Empty when `actual` has the shape of `expected`: the same keys, the same types, equal values except under
// volatile keys.
std::string shape_diff(const json& expected, const json& actual, const std::string& where, bool values = true) {
  if (!same_type(expected, actual)) return where + ": type " + actual.type_name() + ", expected " + expected.type_name();
  if (expected.is_object()) {
    for (auto& [k, v] : expected.items()) {
      if (!actual.contains(k)) return where + "." + k + ": missing";
      auto d = shape_diff(v, actual[k], where + "." + k, values && !kVolatile.count(k));
      if (!d.empty()) return d;
    }
    for (auto& [k, v] : actual.items())
      if (!expected.contains(k)) return where + "." + k + ": not in the documented example";
    return {};
  }
  if (expected.is_array()) {
    if (!values) return {};
    if (expected.size() != actual.size()) return where + ": " + std::to_string(actual.size()) + " elements, expected " +
                                                  std::to_string(expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      auto d = shape_diff(expected[i], actual[i], where + "[" + std::to_string(i) + "]", values);
      if (!d.empty()) return d;
    }
    return {};
  }
  if (values && expected != actual) {
    // Numbers written in the docs may be rounded: compare them to 1e-9 relative.
    if (expected.is_number() && actual.is_number()) {
      double e = expected.get<double>(), a = actual.get<double>();
      if (std::abs(e - a) <= 1e-9 * std::max(1.0, std::abs(e))) return {};
    }
    return where + ": " + actual.dump() + ", expected " + expected.dump();
  }
  return {};
}

}  // namespace

TEST(Worker, ReplaysTheExampleSessionOfTheDocs) {
  std::ifstream f(RAZOR_SOURCE_DIR_T "/docs/protocol.md");
  ASSERT_TRUE(f) << "docs/protocol.md is missing";
  std::vector<std::pair<char, std::string>> script;  // '>' sent, '<' received
  bool in = false;
  std::string line;
  while (std::getline(f, line)) {
    if (line.find("<!-- example-session:begin -->") != std::string::npos) in = true;
    else if (line.find("<!-- example-session:end -->") != std::string::npos) in = false;
    else if (in && line.size() > 2 && (line[0] == '>' || line[0] == '<') && line[1] == ' ')
      script.push_back({line[0], line.substr(2)});
  }
  ASSERT_GE(script.size(), 8u) << "no example session between the marker lines";
  ASSERT_EQ(script[0].first, '<');

  child_worker w;
  start_worker(w);
  size_t n_checked = 0;
  for (size_t i = 0; i < script.size(); ++i) {
    auto& [dir, text] = script[i];
    if (dir == '>') {
      ASSERT_TRUE(w.write_line(text));
      continue;
    }
    json expected = json::parse(text, nullptr, false);
    ASSERT_FALSE(expected.is_discarded()) << "docs line is not JSON: " << text;
    // Rate-dependent and unsolicited events may appear where the example shows none.
    std::vector<std::string> skip = {"gpu"};
    if (expected["t"] != "progress") skip.push_back("progress");
    std::optional<json> actual;
    for (;;) {
      actual = w.read_message(30000, skip);
      ASSERT_TRUE(actual) << "no answer for docs line: " << text << "\nstderr: " << w.stderr_text();
      if ((*actual)["t"] == "log" && (*actual)["id"].is_null() && expected["t"] != "log") continue;
      break;
    }
    auto d = shape_diff(expected, *actual, (*actual)["t"].dump());
    EXPECT_TRUE(d.empty()) << "docs line " << text << "\nworker sent " << actual->dump() << "\n" << d;
    ++n_checked;
  }
  EXPECT_GE(n_checked, 6u);
  EXPECT_EQ(w.wait_exit(), 0);
}
