// util/regex.h (PCRE2 with limits) and util/utf8.h: hostile patterns are refused or stopped with an error,
// never a stack overflow, a hang or a silent no-match; malformed UTF-8 is found where it is.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "util/regex.h"
#include "util/utf8.h"

using namespace razor;

namespace {

TEST(Regex, SearchesLikeStdRegexSearch) {
  auto re = regex::compile(R"(^model\.layers\.(0|1)\.mlp\.experts\.\d+\.down_proj\.weight$)");
  ASSERT_TRUE(re.ok()) << re.error().to_string();
  EXPECT_TRUE(*re->search("model.layers.1.mlp.experts.12.down_proj.weight"));
  EXPECT_FALSE(*re->search("model.layers.2.mlp.experts.12.down_proj.weight"));
  auto any = regex::compile("ffn_(gate|up)_exps");
  ASSERT_TRUE(any.ok());
  EXPECT_TRUE(*any->search("blk.3.ffn_up_exps.weight"));  // anywhere in the name
  auto m = any->find("blk.3.ffn_up_exps.weight", 0);
  ASSERT_TRUE(m.ok() && m->has_value());
  EXPECT_EQ((*m)->begin, 6u);
  EXPECT_EQ((*m)->end, 17u);
  auto none = any->find("blk.3.ffn_up_exps.weight", 7);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(Regex, EcmaScriptEscapesAndAnchors) {
  // \u0041 is 'A' (ECMAScript; PCRE2_ALT_BSUX), [^] is any character, $ only at the very end.
  EXPECT_TRUE(*regex::compile(R"(^\u0041$)")->search("A"));
  EXPECT_TRUE(*regex::compile(R"(^a[^]c$)")->search("a\nc"));
  EXPECT_FALSE(*regex::compile("weight$")->search("weight\n"));
}

TEST(Regex, InvalidPatternNamesTheOffset) {
  auto re = regex::compile("blk\\.(0|1");
  ASSERT_FALSE(re.ok());
  EXPECT_EQ(re.error().code(), errc::invalid_argument);
  EXPECT_NE(re.error().message().find("blk\\.(0|1"), std::string::npos) << re.error().message();
  EXPECT_NE(re.error().message().find("at byte"), std::string::npos) << re.error().message();
}

// 30,000 nested groups overflowed the stack when std::regex compiled them: refused by the nesting limit.
TEST(Regex, DeepNestingIsRefusedNotRecursedInto) {
  const std::string deep = std::string(30000, '(') + "a" + std::string(30000, ')');
  regex_options o;
  o.max_pattern_bytes = deep.size();  // the nesting limit, not the length limit, must catch it
  auto re = regex::compile(deep, o);
  ASSERT_FALSE(re.ok());
  EXPECT_NE(re.error().message().find("nested"), std::string::npos) << re.error().message();
  auto too_long = regex::compile(deep);  // and the default length limit
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.error().message().find("longer than"), std::string::npos) << too_long.error().message();
  EXPECT_LT(too_long.error().message().size(), 300u);  // the pattern is quoted in part only
}

// Catastrophic backtracking stops at the match limit with an error, not a silent "no match".
TEST(Regex, BacktrackingLimitIsAnError) {
  auto re = regex::compile("^(a+)+$");
  ASSERT_TRUE(re.ok());
  const std::string subject = std::string(40, 'a') + "b";
  auto m = re->search(subject);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message().find("backtracks too much"), std::string::npos) << m.error().message();
  EXPECT_NE(m.error().message().find("^(a+)+$"), std::string::npos) << m.error().message();
  // The same pattern on a subject it can decide quickly is fine.
  EXPECT_TRUE(*re->search("aaaa"));
}

TEST(Regex, UtfModeNeverReadsPastMalformedBytes) {
  regex_options o;
  o.utf = true;
  o.ecmascript = false;
  auto re = regex::compile(R"(\p{L}+|\s+|[^\s\p{L}]+)", o);
  ASSERT_TRUE(re.ok()) << re.error().to_string();
  std::mt19937 rng(7);
  std::string junk(4096, '\0');
  for (auto& c : junk) c = char(rng());
  size_t pos = 0, steps = 0;
  while (pos < junk.size()) {
    auto m = re->find(junk, pos);
    ASSERT_TRUE(m.ok()) << m.error().to_string();
    if (!*m) break;
    ASSERT_LE((*m)->end, junk.size());
    pos = (*m)->end > pos ? (*m)->end : pos + 1;
    ++steps;
  }
  EXPECT_GT(steps, 0u);
}

TEST(Utf8, FindsTheFirstMalformedByte) {
  EXPECT_EQ(utf8_invalid_offset("plain ascii"), std::string_view::npos);
  EXPECT_EQ(utf8_invalid_offset("Grüße — 温度 😀"), std::string_view::npos);
  EXPECT_EQ(utf8_invalid_offset(std::string("ab\xff", 3)), 2u);             // never valid
  EXPECT_EQ(utf8_invalid_offset(std::string("ab\xc3", 3)), 2u);             // truncated
  EXPECT_EQ(utf8_invalid_offset(std::string("\xc0\xaf", 2)), 0u);           // overlong '/'
  EXPECT_EQ(utf8_invalid_offset(std::string("x\xe0\x80\xaf", 4)), 1u);      // overlong 3-byte
  EXPECT_EQ(utf8_invalid_offset(std::string("\xed\xa0\x80", 3)), 0u);       // surrogate U+D800
  EXPECT_EQ(utf8_invalid_offset(std::string("\xf4\x90\x80\x80", 4)), 0u);   // above U+10FFFF
  EXPECT_EQ(utf8_invalid_offset(std::string("\xe4\xb8", 2)), 0u);           // truncated 3-byte
  EXPECT_EQ(utf8_invalid_offset(std::string("ok\x80", 3)), 2u);             // lone continuation
}

TEST(Utf8, ErrorNamesFileOffsetLineAndColumn) {
  const std::string text = std::string("line one\nline two\nab\xfe", 21) + "rest";
  auto st = check_utf8(text, "corpus.txt");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), errc::bad_format);
  const std::string& m = st.message();
  EXPECT_NE(m.find("corpus.txt"), std::string::npos) << m;
  EXPECT_NE(m.find("byte offset 20"), std::string::npos) << m;
  EXPECT_NE(m.find("line 3, column 3"), std::string::npos) << m;
  EXPECT_NE(m.find("0xfe"), std::string::npos) << m;
  EXPECT_TRUE(check_utf8("fine\n", "corpus.txt").ok());
}

}  // namespace
