#include <gtest/gtest.h>

#include <chrono>

#include "jobs/methods.h"
#include "jobs/protocol.h"

using namespace razor;
using namespace razor::jobs;
using nlohmann::json;
using namespace std::chrono_literals;

TEST(Protocol, RequestRoundTrips) {
  request r;
  r.id = 7;
  r.method = "quantize";
  r.params = {{"model", "m"}, {"out", "o"}};
  auto back = parse_request(encode_request(r));
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(back->kind, request_kind::req);
  EXPECT_EQ(back->id, 7);
  EXPECT_EQ(back->method, "quantize");
  EXPECT_EQ(back->params, r.params);

  request c;
  c.kind = request_kind::cancel;
  c.id = 9;
  EXPECT_EQ(encode_request(c), R"({"t":"cancel","id":9})");
  auto cb = parse_request(encode_request(c));
  ASSERT_TRUE(cb.ok());
  EXPECT_EQ(cb->kind, request_kind::cancel);
  EXPECT_EQ(cb->id, 9);

  auto s = parse_request(R"({"t":"shutdown"})");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->kind, request_kind::shutdown);
}

TEST(Protocol, MissingParamsIsAnEmptyObject) {
  auto r = parse_request(R"({"t":"req","id":1,"method":"echo"})");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->params.is_object());
  EXPECT_TRUE(r->params.empty());
}

TEST(Protocol, MalformedRequestsAreProtocolErrorsWithTheirId) {
  struct bad_case {
    const char* line;
    std::optional<int64_t> id;
  };
  const bad_case cases[] = {
      {"not json", std::nullopt},
      {"[1,2,3]", std::nullopt},
      {R"({"id":3})", 3},                                         // no "t"
      {R"({"t":"req","method":"echo"})", std::nullopt},          // no id
      {R"({"t":"req","id":4})", 4},                               // no method
      {R"({"t":"req","id":5,"method":""})", 5},                   // empty method
      {R"({"t":"req","id":6,"method":"echo","params":[1]})", 6},  // params not an object
      {R"({"t":"launch","id":8})", 8},                            // unknown type
      {R"({"t":"cancel"})", std::nullopt},                        // cancel without id
  };
  for (auto& c : cases) {
    std::optional<int64_t> id;
    auto r = parse_request(c.line, &id);
    EXPECT_FALSE(r.ok()) << c.line;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code(), errc::protocol) << c.line;
    }
    EXPECT_EQ(id, c.id) << c.line;
  }
}

TEST(Protocol, EventsHaveTheDocumentedFields) {
  auto keys = [](const json& j) {
    std::vector<std::string> k;
    for (auto& [key, v] : j.items()) k.push_back(key);
    return k;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(keys(progress_message(1, 2, 3, "x")), (V{"done", "id", "t", "total", "what"}));
  EXPECT_EQ(keys(log_message(std::nullopt, "info", "m")), (V{"id", "level", "msg", "t"}));
  EXPECT_TRUE(log_message(std::nullopt, "info", "m")["id"].is_null());
  EXPECT_EQ(keys(artifact_message(1, {"p", "gguf", "", {}, json::object()})),
            (V{"dtype", "id", "kind", "path", "shape", "t"}));
  EXPECT_EQ(keys(result_message(1, json::object(), 0.5)), (V{"id", "result", "seconds", "t"}));
  EXPECT_EQ(keys(error_message(1, status(errc::not_found, "x"))), (V{"code", "id", "message", "t"}));
  EXPECT_EQ(error_message(1, status(errc::not_found, "x"))["code"], "not_found");
  json h = hello_message(json::array(), method_names(), "cpu");
  EXPECT_EQ(h["t"], "hello");
  EXPECT_EQ(h["proto"], kProtocolVersion);
  EXPECT_EQ(h["version"], RAZOR_VERSION);
  EXPECT_TRUE(h["pid"].is_number_integer());
  EXPECT_TRUE(h["gpus"].is_array());
}

TEST(Protocol, BulkDataNeverTravelsInJsonArtifactsOnlyDescribeIt) {
  artifact a{"/tmp/x.h5", "h5", "f64", {48, 128}, {{"bytes", 49152}}};
  json j = artifact_message(3, a);
  EXPECT_EQ(j["shape"], json::array({48, 128}));
  EXPECT_EQ(j["dtype"], "f64");
  EXPECT_EQ(j["bytes"], 49152);
  EXPECT_LT(encode_line(j).size(), 200u);
}

TEST(Protocol, EncodeLineIsOneLineAndSurvivesInvalidUtf8) {
  std::string bad = "a\xff\nb";
  std::string line = encode_line(log_message(1, "info", bad));
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_FALSE(json::parse(line, nullptr, false).is_discarded());
}

TEST(Protocol, ErrorCodesAreTheStatusTableAndTheProtocolOnes) {
#define X(name, num, text)                               \
  if (errc::name != errc::ok) {                            \
    EXPECT_TRUE(is_error_code(#name)) << #name;            \
  }
  RAZOR_ERROR_CODES(X)
#undef X
  EXPECT_FALSE(is_error_code("ok"));
  for (const char* c : {"unknown_method", "bad_request", "busy", "duplicate_id", "shutting_down", "worker_crashed",
                        "superseded", "no_worker"})
    EXPECT_TRUE(is_error_code(c)) << c;
  EXPECT_FALSE(is_error_code("no_such_code"));
}

TEST(Protocol, ThrottleSendsAtMostOnePer100msAndTheLastValueWins) {
  progress_throttle t(100ms);
  auto t0 = progress_throttle::clock::time_point{} + 10s;
  auto first = t.offer(1, 10, "a", t0);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->done, 1);
  EXPECT_FALSE(t.offer(2, 10, "b", t0 + 10ms));
  EXPECT_FALSE(t.offer(3, 10, "c", t0 + 50ms));
  EXPECT_FALSE(t.flush_due(t0 + 99ms));
  auto due = t.flush_due(t0 + 100ms);
  ASSERT_TRUE(due);
  EXPECT_EQ(due->done, 3);  // the last value, not the first held back
  EXPECT_EQ(due->what, "c");
  EXPECT_FALSE(t.flush_due(t0 + 300ms));  // nothing pending
  EXPECT_FALSE(t.offer(4, 10, "d", t0 + 150ms));
  auto pend = t.take_pending();
  ASSERT_TRUE(pend);
  EXPECT_EQ(pend->done, 4);
  EXPECT_FALSE(t.take_pending());
}

TEST(Methods, TableHasTheDocumentedMethods) {
  for (const char* m : {"echo", "sleep", "inspect", "footprint", "quantize", "synth", "pack", "eval-ppl", "probe"})
    EXPECT_NE(find_method(m), nullptr) << m;
  EXPECT_EQ(find_method("nope"), nullptr);
  for (auto& m : method_table()) {
    EXPECT_FALSE(m.help.empty()) << m.name;
    EXPECT_TRUE(bool(m.run)) << m.name;
  }
}

TEST(Methods, MissingOrMistypedParamsAreInvalidArgument) {
  job_context ctx;
  ctx.progress = [](double, double, const char*) { return true; };
  ctx.log = [](std::string_view, std::string_view) {};
  ctx.emit_artifact = [](const artifact&) {};
  auto r = find_method("inspect")->run(json::object(), ctx);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), errc::invalid_argument);
  EXPECT_NE(r.error().message().find("params.model"), std::string::npos);
  auto s = find_method("sleep")->run({{"ms", "long"}}, ctx);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), errc::invalid_argument);
}

// eval-ppl without params.text scores the bundled held-out text (resources/data/README.md), as the CLI does.
TEST(Methods, EvalPplDefaultsToTheBundledHeldOutText) {
  job_context ctx;
  ctx.progress = [](double, double, const char*) { return true; };
  ctx.log = [](std::string_view, std::string_view) {};
  ctx.emit_artifact = [](const artifact&) {};
  ctx.allow_gpu = false;
  auto r = find_method("eval-ppl")->run({{"model", RAZOR_MODELS_DIR "/tiny-qwen3-moe"}, {"windows", 1}}, ctx);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_NE((*r)["text"].get<std::string>().find("resources/data/kernel-docs-eval.txt"), std::string::npos);
  EXPECT_EQ((*r)["n_tokens"], 69195);
}

TEST(Methods, SleepStopsWhenProgressReturnsFalse) {
  std::atomic<bool> cancel{false};
  job_context ctx;
  int calls = 0;
  ctx.cancelled = &cancel;
  ctx.progress = [&](double, double, const char*) { return ++calls < 3; };
  ctx.log = [](std::string_view, std::string_view) {};
  ctx.emit_artifact = [](const artifact&) {};
  auto t0 = std::chrono::steady_clock::now();
  auto r = find_method("sleep")->run({{"ms", 60000}}, ctx);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), errc::cancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}
