// Hostile worker requests (issue 15): lines nested 200,000 deep, ids that do not fit, negative queue sizes.
// Each is answered with an error and the worker carries on.
#include <gtest/gtest.h>

#include <string>

#include "child_worker.h"
#include "common/test_util.h"
#include "jobs/protocol.h"

using nlohmann::json;
using namespace razor;
using namespace razor::jobs;

namespace {

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

std::string deep_request(int depth) {
  return R"({"t":"req","id":5,"method":"echo","params":{"a":)" + std::string(size_t(depth), '[') +
         std::string(size_t(depth), ']') + "}}";
}

}  // namespace

TEST(ProtocolLimits, DeepNestingIsAProtocolError) {
  std::optional<int64_t> id;
  auto r = parse_request(deep_request(200000), &id);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), errc::protocol);
  EXPECT_TRUE(contains(r.error().message(), "nested deeper than 64 levels at byte")) << r.error().message();
  EXPECT_TRUE(parse_request(deep_request(40)).ok());
}

TEST(ProtocolLimits, IdsOutsideTheStatedRangeAreRefusedNotWrapped) {
  struct c {
    std::string id;
    bool ok;
    int64_t value;
  };
  const std::vector<c> cases = {
      {"18446744073709551615", false, 0},  // 2^64 - 1 used to be answered as -1
      {"9007199254740992", false, 0},      // 2^53
      {"-9007199254740992", false, 0},
      {"1e300", false, 0},
      {"7.5", false, 0},
      {"\"7\"", false, 0},
      {"9007199254740991", true, 9007199254740991},
      {"-3", true, -3},
      {"7.0", true, 7},
  };
  for (auto& x : cases) {
    std::optional<int64_t> id;
    auto r = parse_request(R"({"t":"req","method":"echo","id":)" + x.id + "}", &id);
    EXPECT_EQ(r.ok(), x.ok) << x.id;
    if (x.ok) {
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(r->id, x.value);
      EXPECT_EQ(id, std::optional<int64_t>(x.value));
    } else {
      EXPECT_FALSE(id.has_value()) << x.id;  // nothing to address the error to but null
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error().code(), errc::protocol);
      EXPECT_TRUE(contains(r.error().message(), "\"id\"")) << r.error().message();
    }
  }
}

TEST(WorkerLimits, DeepAndOutOfRangeRequestsAreAnsweredAndTheWorkerCarriesOn) {
  razor::test::child_worker w;
  ASSERT_TRUE(w.start(RAZOR_CLI_EXE, {"worker", "--cpu", "--telemetry-ms", "0"}, RAZOR_SOURCE_DIR_T));
  auto h = w.read_message();
  ASSERT_TRUE(h) << w.stderr_text();
  // The issue's 200 KB line that killed the worker.
  ASSERT_TRUE(w.write_line(deep_request(100000)));
  auto e = w.read_message();
  ASSERT_TRUE(e) << w.stderr_text();
  EXPECT_EQ((*e)["t"], "error");
  EXPECT_EQ((*e)["code"], "bad_request");
  EXPECT_TRUE(contains((*e)["message"].get<std::string>(), "nested deeper")) << e->dump();
  ASSERT_TRUE(w.write_line(R"({"t":"req","id":18446744073709551615,"method":"echo"})"));
  e = w.read_message();
  ASSERT_TRUE(e) << w.stderr_text();
  EXPECT_EQ((*e)["code"], "bad_request");
  EXPECT_TRUE((*e)["id"].is_null()) << e->dump();
  ASSERT_TRUE(w.send({{"t", "req"}, {"id", 6}, {"method", "echo"}, {"params", {{"x", 1}}}}));
  auto ok = w.read_message();
  ASSERT_TRUE(ok) << w.stderr_text();
  EXPECT_EQ((*ok)["t"], "result") << ok->dump();
  EXPECT_EQ((*ok)["id"], 6);
}

TEST(WorkerLimits, NegativeMaxQueueIsRejected) {
  auto r = razor::test::run_razor("worker --max-queue -1 </dev/null");
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "--max-queue")) << r.out;
  EXPECT_FALSE(contains(r.out, "\"hello\"")) << r.out;
}
