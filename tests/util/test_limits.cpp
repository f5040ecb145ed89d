// Bounded input: JSON nesting and size limits (util/json_limits.h), escaping users' bytes in messages
// (util/printable.h), and refusing anything but a regular file where a user's file is read (mapped_file.h).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/test_util.h"
#include "util/atomic_file.h"
#include "util/json_limits.h"
#include "util/mapped_file.h"
#include "util/printable.h"
#include "util/sha256.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {

struct temp_dir : razor::test::scratch_dir {
  temp_dir() : scratch_dir("limits-test") {}
  const fs::path& p = dir;
};

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

}  // namespace

TEST(JsonLimits, DepthScanIgnoresBracketsInStrings) {
  EXPECT_FALSE(json_depth_exceeded(R"({"a":[1,[2]]})", 3).has_value());
  EXPECT_EQ(json_depth_exceeded(R"({"a":[1,[2]]})", 2), std::optional<size_t>(8));
  // Brackets inside strings, escaped quotes included, do not count.
  EXPECT_FALSE(json_depth_exceeded(R"({"a":"[[[[\"[[[["})", 1).has_value());
  EXPECT_FALSE(json_depth_exceeded(R"(["\\",["x"]])", 2).has_value());
}

TEST(JsonLimits, DeepNestingIsAnErrorNamingTheInputAndByte) {
  // 300,000 levels: the nlohmann DOM's recursive copy/dump/destroy would overflow the stack.
  const std::string deep(300000, '[');
  auto r = parse_json(deep, "recipe.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), errc::bad_format);
  EXPECT_TRUE(contains(r.error().message(), "recipe.json")) << r.error().message();
  EXPECT_TRUE(contains(r.error().message(), "deeper than 64")) << r.error().message();
  EXPECT_TRUE(contains(r.error().message(), "byte 64")) << r.error().message();
  // Within the limit it parses; the caller's code is used for every error.
  std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(parse_json(ok, "x").ok());
  json_limits lim;
  lim.code = errc::protocol;
  EXPECT_EQ(parse_json("{" + std::string(100, '['), "line", lim).error().code(), errc::protocol);
}

TEST(JsonLimits, SizeLimitAndSyntaxErrorsNameTheByte) {
  json_limits lim;
  lim.max_bytes = 10;
  auto big = parse_json(R"({"a":"0123456789"})", "cfg.json", lim);
  ASSERT_FALSE(big.ok());
  EXPECT_TRUE(contains(big.error().message(), "cfg.json")) << big.error().message();
  EXPECT_TRUE(contains(big.error().message(), "limit of 10")) << big.error().message();
  // Binary bytes quoted by the parser's message come out escaped.
  auto bad = parse_json(std::string("{\"a\": \x1b[31m\xff}"), "cfg.json");
  ASSERT_FALSE(bad.ok());
  const std::string m = bad.error().message();
  EXPECT_TRUE(contains(m, "cfg.json: not valid JSON at byte 6")) << m;
  EXPECT_FALSE(contains(m, "\x1b")) << m;
  EXPECT_FALSE(contains(m, "[json.exception")) << m;
}

TEST(JsonLimits, DuplicateKeysWhenAsked) {
  const std::string text = R"({"weight_map":{"w":"a.safetensors","w":"b.safetensors"}})";
  EXPECT_TRUE(parse_json(text, "index.json").ok());  // JSON allows it; nlohmann keeps the last
  json_limits lim;
  lim.unique_keys = true;
  auto r = parse_json(text, "index.json", lim);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error().message(), "index.json: key 'w' appears twice")) << r.error().message();
  // The same key in different objects is fine.
  EXPECT_TRUE(parse_json(R"({"a":{"k":1},"b":{"k":2}})", "x", lim).ok());
}

TEST(JsonLimits, DumpReplacesInvalidUtf8InsteadOfThrowing) {
  nlohmann::json j = {{"name", std::string("bad \xff\xfe bytes")}};
  std::string s;
  ASSERT_NO_THROW(s = dump_json(j));
  EXPECT_TRUE(contains(s, "bad \xEF\xBF\xBD")) << s;  // U+FFFD
  nlohmann::ordered_json o = {{"k", std::string("\xc3")}};
  EXPECT_NO_THROW(dump_json(o, 2));
}

TEST(Printable, EscapesWhatWouldDriveTheTerminal) {
  EXPECT_EQ(printable("plain.gguf"), "plain.gguf");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe4\xb8\xad"), "caf\xc3\xa9 \xe4\xb8\xad");  // valid UTF-8 stays
  EXPECT_EQ(printable("a\x1b[2Jb"), "a\\x1b[2Jb");
  EXPECT_EQ(printable(std::string("nul\0x", 5)), "nul\\x00x");
  EXPECT_EQ(printable("\xff\xc3"), "\\xff\\xc3");                          // invalid / truncated UTF-8
  EXPECT_EQ(printable("\xe0\x80\x80"), "\\xe0\\x80\\x80");                 // overlong form
  EXPECT_EQ(printable("x\xe2\x80\xaey"), "x\\u{202e}y");                  // right-to-left override
  EXPECT_EQ(printable("line\nnext\t"), "line\\nnext\\t");
  EXPECT_EQ(printable_lines("line\nnext\t\x1b"), "line\nnext\t\\x1b");
  // Cut at a character boundary, with the size said.
  EXPECT_EQ(printable(std::string(10, 'a'), 4), "aaaa... (10 bytes)");
  EXPECT_EQ(printable("\x01\x02", 5), "\\x01... (2 bytes)");
}

TEST(RegularFiles, FifoIsRefusedNotWaitedOn) {
  temp_dir td;
  const fs::path fifo = td.p / "config.json";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Each of these would block forever in open() or read() on a FIFO with no writer.
  auto t = read_text_file(fifo.string());
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(contains(t.error().message(), fifo.string() + ": is a FIFO")) << t.error().message();
  auto m = mapped_file::open(fifo.string());
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(contains(m.error().message(), "FIFO")) << m.error().message();
  auto j = read_json_file(fifo.string());
  ASSERT_FALSE(j.ok());
  EXPECT_TRUE(contains(j.error().message(), "not a regular file")) << j.error().message();
  auto h = sha256_file(fifo.string());
  ASSERT_FALSE(h.ok());
  // A directory and a character device are named as such.
  auto d = read_text_file(td.p.string());
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(contains(d.error().message(), "is a directory")) << d.error().message();
  auto c = read_text_file("/dev/zero");
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(contains(c.error().message(), "character device")) << c.error().message();
}

TEST(RegularFiles, SizeLimitIsCheckedBeforeReading) {
  temp_dir td;
  const fs::path p = td.p / "big.json";
  std::ofstream(p) << std::string(100, ' ');
  auto t = read_text_file(p.string(), 10);
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(contains(t.error().message(), "limit of 10")) << t.error().message();
  auto ok = read_text_file(p.string(), 100);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->size(), 100u);
}

TEST(RegularFiles, SymlinkLoopIsAnErrorNamingThePath) {
  temp_dir td;
  const fs::path a = td.p / "a", b = td.p / "b";
  fs::create_symlink(b, a);
  fs::create_symlink(a, b);
  auto t = read_text_file(a.string());
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(contains(t.error().message(), a.string())) << t.error().message();
}
