// The OpenAI-compatible client against a fake server on loopback, and `razor eval` end to end (scripted answers,
// the result loaded by the workbench's importer, resume from the samples side file).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "eval/client.h"
#include "eval/runner.h"
#include "eval/fake_server.h"
#include "results/bench_result.h"  // the workbench importer (razor_results): our schema must load there
#include "eval/provenance.h"
#include "util/sha256.h"

using namespace razor::results;

using namespace razor::eval;
using razor::eval::testing::fake_reply;
using razor::eval::testing::fake_server;
using nlohmann::json;

namespace {

client_options fast_options(const std::string& url) {
  client_options o;
  o.endpoint = url;
  o.retries = 2;
  o.backoff_s = 0.01;  // keep the retry tests fast
  o.timeout_s = 20;
  o.connect_timeout_s = 2;
  return o;
}

std::filesystem::path scratch(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("razor-eval-test-" + std::to_string(getpid())) / name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace

TEST(Client, ChatSuccessAndRequestBody) {
  json seen;
  fake_server srv([&](const std::string& m, const std::string& path, const std::string& body) -> fake_reply {
    if (path == "/v1/models") return {200, R"({"object":"list","data":[{"id":"tiny"},{"id":"other"}]})"};
    seen = json::parse(body);
    return {200, fake_server::chat_body("Answer: B", "stop", 17, "thinking")};
  });
  client c(fast_options(srv.url()));
  chat_request rq;
  rq.model = "tiny";
  rq.prompt = "Q?";
  rq.max_tokens = 100;
  auto r = c.chat(rq);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->content, "Answer: B");
  EXPECT_EQ(r->finish_reason, "stop");
  EXPECT_EQ(r->completion_tokens, 17);
  EXPECT_EQ(r->full_text(), "thinking</think>Answer: B");
  EXPECT_EQ(seen["model"], "tiny");
  EXPECT_EQ(seen["messages"][0]["content"], "Q?");
  EXPECT_EQ(seen["max_tokens"], 100);
  EXPECT_DOUBLE_EQ(seen["temperature"].get<double>(), 0.6);
  EXPECT_EQ(seen["chat_template_kwargs"]["enable_thinking"], true);
  auto m = c.models();
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_EQ(*m, (std::vector<std::string>{"tiny", "other"}));
}

TEST(Client, ImagesGoFirstAsContentParts) {
  chat_request rq;
  rq.model = "m";
  rq.prompt = "What is shown?";
  EXPECT_TRUE(json::parse(chat_request_json(rq))["messages"][0]["content"].is_string());
  rq.images = {"data:image/png;base64,AAAA", "data:image/png;base64,BBBB"};
  const json c = json::parse(chat_request_json(rq))["messages"][0]["content"];
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0]["type"], "image_url");
  EXPECT_EQ(c[0]["image_url"]["url"], "data:image/png;base64,AAAA");
  EXPECT_EQ(c[1]["image_url"]["url"], "data:image/png;base64,BBBB");
  EXPECT_EQ(c[2], json({{"type", "text"}, {"text", "What is shown?"}}));
}

TEST(Client, RetriesA500ThenSucceeds) {
  std::atomic<int> calls{0};
  fake_server srv([&](auto&, auto&, auto&) -> fake_reply {
    if (calls++ == 0) return {500, R"({"error":"overloaded"})"};
    return {200, fake_server::chat_body("ok")};
  });
  client c(fast_options(srv.url()));
  auto r = c.chat({});
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->attempts, 2);
  EXPECT_EQ(srv.requests(), 2);
}

TEST(Client, PersistentErrorsAndNoRetryOn400) {
  fake_server s500([&](auto&, auto&, auto&) -> fake_reply { return {503, "busy busy"}; });
  auto r = client(fast_options(s500.url())).chat({});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("HTTP 503"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("busy busy"), std::string::npos);
  EXPECT_EQ(s500.requests(), 3);  // 1 + 2 retries

  fake_server s400([&](auto&, auto&, auto&) -> fake_reply { return {400, R"({"error":"bad model"})"}; });
  auto r4 = client(fast_options(s400.url())).chat({});
  ASSERT_FALSE(r4.ok());
  EXPECT_NE(r4.error().message().find("HTTP 400"), std::string::npos);
  EXPECT_NE(r4.error().message().find("bad model"), std::string::npos);
  EXPECT_EQ(s400.requests(), 1);
}

TEST(Client, MalformedJson) {
  fake_server srv([&](auto&, auto&, auto&) -> fake_reply { return {200, "{\"choices\": [oops"}; });
  auto r = client(fast_options(srv.url())).chat({});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), razor::errc::external);
  EXPECT_NE(r.error().message().find("malformed JSON"), std::string::npos) << r.error().message();
  fake_server empty([&](auto&, auto&, auto&) -> fake_reply { return {200, R"({"choices":[]})"}; });
  auto r2 = client(fast_options(empty.url())).chat({});
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message().find("no choices"), std::string::npos);
}

TEST(Client, UnreachablePort) {
  int port = razor::eval::testing::closed_port();
  auto r = client(fast_options("http://127.0.0.1:" + std::to_string(port))).chat({});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("cannot reach http://127.0.0.1:" + std::to_string(port) + "/v1/chat/completions"),
            std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find("3 attempts"), std::string::npos) << r.error().message();
}

TEST(Runner, SummaryAndGate) {
  std::vector<json> recs = {{{"correct", true}, {"finish_reason", "stop"}},
                            {{"correct", true}, {"finish_reason", "length"}},
                            {{"correct", false}, {"finish_reason", "length"}},
                            {{"correct", false}, {"finish_reason", "stop"}}};
  auto s = summarize("gpqa", recs);
  EXPECT_EQ(s.n, 4);
  EXPECT_EQ(s.n_finished, 2);
  EXPECT_EQ(s.trunc, 2);
  EXPECT_DOUBLE_EQ(s.acc, 50.0);
  EXPECT_DOUBLE_EQ(s.acc_finished, 50.0);
  json t = {{"gate_points", 2.0},
            {"targets", {{{"model", "Qwen/Qwen3.5-122B-A10B"}, {"benchmarks", {{"gpqa", 86.6}}}}}}};
  EXPECT_EQ(gate_entry("gpqa", 85.1, t, "qwen/qwen3.5-122b-a10b")["state"], "gated");
  EXPECT_EQ(gate_entry("gpqa", 80.0, t, "Qwen3.5-122B-A10B")["state"], "not gated");  // served under its basename
  EXPECT_EQ(gate_entry("mmlu_pro", 80.0, t, "Qwen/Qwen3.5-122B-A10B")["state"], "no target");
  EXPECT_EQ(gate_entry("gpqa", 80.0, t, "tiny")["state"], "no target");
}

#ifdef RAZOR_CLI_EXE
// razor eval on a 3-question MMLU-Pro file: Q1 answered right, Q2 wrong, Q3 right but truncated.
TEST(CliEval, EndToEndAndResume) {
  auto dir = scratch("e2e");
  {
    std::ofstream f(dir / "mmlu_pro.jsonl");
    f << R"({"question_id":1,"question":"Q-one?","options":["x","y","z","w"],"answer_index":1})" "\n"
      << R"({"question_id":2,"question":"Q-two?","options":["x","y","z","w"],"answer_index":0})" "\n"
      << R"({"question_id":3,"question":"Q-three?","options":["x","y","z","w"],"answer_index":2})" "\n";
  }
  std::atomic<int> chats{0};
  fake_server srv([&](auto&, const std::string& path, const std::string& body) -> fake_reply {
    ++chats;
    std::string p = json::parse(body)["messages"][0]["content"];
    if (p.find("Q-one?") != std::string::npos) return {200, fake_server::chat_body("<think>hmm</think>Answer: B")};
    if (p.find("Q-two?") != std::string::npos) return {200, fake_server::chat_body("<think>x</think>Answer: D")};
    return {200, fake_server::chat_body("<think>long... Answer: C", "length", 64)};
  });
  std::string out = (dir / "results.json").string();
  auto run = [&](int n) {
    std::string cmd = std::string(RAZOR_CLI_EXE) + " eval --endpoint " + srv.url() +
                      " --model Qwen/Qwen3.5-122B-A10B --benchmarks mmlu_pro --data " + dir.string() +
                      " --n " + std::to_string(n) + " --budget 64 --concurrency 2 --retries 0 --out " + out +
                      " --targets " + std::string(RAZOR_SOURCE_DIR_T) + "/resources/results/official_targets.json" +
                      " > " + (dir / "log.txt").string() + " 2>&1";
    return std::system(cmd.c_str());
  };
  ASSERT_EQ(run(2), 0);
  EXPECT_EQ(chats.load(), 2);
  ASSERT_EQ(run(3), 0);           // resumes: only Q3 is asked
  EXPECT_EQ(chats.load(), 3);

  std::ifstream rf(out);
  json res = json::parse(rf);
  EXPECT_EQ(res["tag"], "results");
  EXPECT_EQ(res["model"], "Qwen/Qwen3.5-122B-A10B");
  EXPECT_EQ(res["think"], true);
  EXPECT_EQ(res["budget"], 64);
  EXPECT_NEAR(res["mmlu_pro_acc"].get<double>(), 200.0 / 3, 1e-9);
  EXPECT_DOUBLE_EQ(res["mmlu_pro_acc_finished"].get<double>(), 50.0);
  EXPECT_EQ(res["mmlu_pro_n"], 3);
  EXPECT_EQ(res["mmlu_pro_n_finished"], 2);
  EXPECT_EQ(res["mmlu_pro_trunc"], 1);
  EXPECT_EQ(res["gate"]["mmlu_pro"]["state"], "not gated");
  EXPECT_DOUBLE_EQ(res["gate"]["mmlu_pro"]["official"].get<double>(), 86.7);
  // Provenance: the data file's SHA-256 (computed here independently) and what the run was asked.
  const json& prov = res["provenance"];
  EXPECT_EQ(prov["razor_version"], RAZOR_VERSION);
  EXPECT_EQ(prov["budget"], 64);
  EXPECT_EQ(prov["served_model"], "Qwen/Qwen3.5-122B-A10B");
  auto digest = razor::sha256_file((dir / "mmlu_pro.jsonl").string());
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(prov["datasets"]["mmlu_pro"]["sha256"], *digest);
  EXPECT_EQ(prov["datasets"]["mmlu_pro"]["n"], 3);
  EXPECT_FALSE(prov.contains("artifact"));  // no --artifact given

  // Per-sample side file.
  std::ifstream sf(samples_path(out));
  std::string line;
  int lines = 0;
  while (std::getline(sf, line)) {
    json r = json::parse(line);
    for (const char* k : {"bench", "id", "raw", "extracted", "gold", "correct", "tokens", "finish_reason"})
      EXPECT_TRUE(r.contains(k)) << k;
    if (r["id"] == "3") {
      EXPECT_EQ(r["finish_reason"], "length");
      EXPECT_EQ(r["extracted"], "C");
      EXPECT_EQ(r["correct"], true);
    }
    ++lines;
  }
  EXPECT_EQ(lines, 3);

  // The workbench importer reads it as the seed's schema.
  import_result imp = import_result_file(out);
  ASSERT_TRUE(imp.ok()) << imp.error;
  ASSERT_EQ(imp.results.size(), 1u);
  EXPECT_EQ(imp.results[0].bench, "mmlu_pro");
  EXPECT_NEAR(imp.results[0].acc, 200.0 / 3, 1e-9);
  EXPECT_EQ(imp.results[0].n, 3);
  EXPECT_EQ(imp.results[0].trunc.value_or(-1), 1);
  EXPECT_EQ(imp.results[0].budget.value_or(-1), 64);

  // A torn last line (a crash mid-write) is ignored and that sample is asked again.
  {
    std::ofstream app(samples_path(out), std::ios::app);
    app << R"({"bench":"mmlu_pro","id":"9)";
  }
  ASSERT_EQ(run(3), 0);
  EXPECT_EQ(chats.load(), 3);
}

TEST(CliEval, UnreachableEndpointKeepsNothingAndSaysWhy) {
  auto dir = scratch("down");
  {
    std::ofstream f(dir / "gpqa.jsonl");
    f << R"({"question":"Q a) 1 b) 2 c) 3 d) 4","answer":"A"})" "\n";
  }
  int port = razor::eval::testing::closed_port();
  std::string out = (dir / "r.json").string();
  std::string cmd = std::string(RAZOR_CLI_EXE) + " eval --endpoint http://127.0.0.1:" + std::to_string(port) +
                    " --model m --benchmarks gpqa --data " + dir.string() + " --retries 0 --out " + out + " > " +
                    (dir / "log.txt").string() + " 2>&1";
  EXPECT_NE(std::system(cmd.c_str()), 0);
  std::ifstream lf(dir / "log.txt");
  std::stringstream ss;
  ss << lf.rdbuf();
  EXPECT_NE(ss.str().find("cannot reach"), std::string::npos) << ss.str();
  EXPECT_FALSE(std::filesystem::exists(out));
}
#endif

// --artifact: a file's SHA-256; a checkpoint folder's shards by size, header and first / last MiB of data.
TEST(EvalProvenance, ArtifactFingerprints) {
  const std::string model = std::string(RAZOR_SOURCE_DIR_T) + "/resources/models/tiny-qwen3-moe";
  auto ck = razor::eval::artifact_fingerprint(model);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  ASSERT_EQ((*ck)["shards"].size(), 1u);
  const json& sh = (*ck)["shards"][0];
  EXPECT_EQ(sh["name"], "model.safetensors");
  EXPECT_EQ(sh["bytes"], std::filesystem::file_size(model + "/model.safetensors"));
  EXPECT_EQ(sh["header_sha256"].get<std::string>().size(), 64u);
  auto cfg = razor::eval::artifact_fingerprint(model + "/config.json");
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ((*cfg)["sha256"], *razor::sha256_file(model + "/config.json"));
  auto missing = razor::eval::artifact_fingerprint(model + "/nope.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("nope.gguf"), std::string::npos) << missing.error().message();
}

// Speed (eval/speed.h): with llama-server's timings the figures are the server's own; without them the client's
// wall clock. Two requests per context (max_tokens 1, then gen_tokens with ignore_eos), each prompt new.
TEST(Speed, ServerTimingsAndWallClock) {
  std::vector<json> bodies;
  bool with_timings = true;
  fake_server srv([&](const std::string&, const std::string& path, const std::string& body) -> fake_reply {
    json b = json::parse(body);
    bodies.push_back(b);
    const int gen = b["max_tokens"].get<int>();
    json r = json::parse(fake_server::chat_body("x", "length", gen, ""));
    r["usage"]["prompt_tokens"] = 100;
    // prefill 100 tokens in 50 ms (2000 tok/s); decode gen tokens at 40 tok/s
    if (with_timings)
      r["timings"] = {{"prompt_n", gen == 1 ? 100 : 0}, {"prompt_ms", gen == 1 ? 50.0 : 0.0},
                      {"predicted_n", gen}, {"predicted_ms", gen * 25.0}};
    return {200, r.dump()};
  });
  client c(fast_options(srv.url()));
  speed_options so;
  so.contexts = {100, 400};
  so.gen_tokens = 16;
  auto pts = measure_speed(c, "tiny", so);
  ASSERT_TRUE(pts.ok()) << pts.error().to_string();
  ASSERT_EQ(pts->size(), 2u);
  constexpr double kTol = 1e-9;  // the server's own figures, divided once
  EXPECT_EQ((*pts)[0].method, "server timings");
  EXPECT_NEAR((*pts)[0].prefill_tok_s, 2000.0, kTol);
  EXPECT_NEAR((*pts)[0].decode_tok_s, 40.0, kTol);
  EXPECT_EQ((*pts)[0].prompt_tokens, 100);
  EXPECT_EQ((*pts)[0].generated, 16);
  // the warm-up, then two requests per context
  ASSERT_EQ(bodies.size(), 5u);
  EXPECT_EQ(bodies[1]["max_tokens"], 1);
  EXPECT_EQ(bodies[2]["max_tokens"], 16);
  EXPECT_EQ(bodies[2]["ignore_eos"], true);
  EXPECT_FALSE(bodies[1].contains("ignore_eos"));
  EXPECT_FALSE(bodies[3].contains("ignore_eos"));
  EXPECT_EQ(bodies[1]["messages"][0]["content"], bodies[2]["messages"][0]["content"]);  // same prompt: cached for 2
  EXPECT_NE(bodies[1]["messages"][0]["content"], bodies[3]["messages"][0]["content"]);
  // The warm-up's 256 pieces counted as 100 tokens here: a 400-token context is sent as ~1024 pieces, 4x 100's.
  EXPECT_GT(bodies[3]["messages"][0]["content"].get<std::string>().size(),
            3 * bodies[1]["messages"][0]["content"].get<std::string>().size());
  with_timings = false;
  auto wall = measure_speed(c, "tiny", so);
  ASSERT_TRUE(wall.ok());
  EXPECT_EQ((*wall)[0].method, "client wall clock");
  EXPECT_GT((*wall)[0].prefill_tok_s, 0.0);
  const json j = speed_json(so, *wall);
  EXPECT_EQ(j["gen_tokens"], 16);
  EXPECT_EQ(j["points"].size(), 2u);
  EXPECT_EQ(j["points"][1]["context"], 400);
}

TEST(Speed, TokenCounts) {
  EXPECT_EQ(*parse_token_count("512", "x"), 512);
  EXPECT_EQ(*parse_token_count("4k", "x"), 4096);
  EXPECT_EQ(*parse_token_count("32K", "x"), 32768);
  for (const char* bad : {"", "k", "-1", "0", "1.5k", "99999999k", "12 k"}) {
    auto r = parse_token_count(bad, "--speed-contexts");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message().find("--speed-contexts"), std::string::npos);
  }
}
