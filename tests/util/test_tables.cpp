// The lookups of an enumeration's one table (util/enum_table.h), as the error codes use them, and strformat.
#include <gtest/gtest.h>

#include <string>

#include "util/enum_table.h"
#include "util/status.h"
#include "util/strformat.h"

using namespace razor;

namespace {
enum class colour { red, green, blue };
constexpr enum_row<colour, int> k_colours[] = {{colour::red, "red", 1}, {colour::green, "green", 2}};
}  // namespace

TEST(EnumTable, LooksUpByValueAndByName) {
  EXPECT_EQ(enum_name(k_colours, colour::green, "?"), "green");
  EXPECT_EQ(enum_info(k_colours, colour::green, -1), 2);
  EXPECT_EQ(enum_name(k_colours, colour::blue, "?"), "?");  // no row: the fallback
  EXPECT_EQ(enum_info(k_colours, colour::blue, -1), -1);
  ASSERT_NE(find_row_named(k_colours, "red"), nullptr);
  EXPECT_EQ(find_row_named(k_colours, "red")->value, colour::red);
  EXPECT_EQ(find_row_named(k_colours, "Red"), nullptr);  // exact spelling
  static_assert(enum_info(k_colours, colour::red, 0) == 1, "usable in constant expressions");
}

// Every row of RAZOR_ERROR_CODES answers errc_name (its enumerator) and errc_text (its text).
TEST(EnumTable, ErrorCodesNameAndText) {
#define X(name, num, text)                  \
  EXPECT_EQ(errc_name(errc::name), #name);  \
  EXPECT_EQ(errc_text(errc::name), text);
  RAZOR_ERROR_CODES(X)
#undef X
  EXPECT_EQ(errc_name(errc(12345)), "unknown");
  EXPECT_EQ(errc_text(errc(12345)), "unknown error");
  EXPECT_EQ(make_error(errc::bad_format, "x.gguf: truncated").to_string(), "bad_format: x.gguf: truncated");
}

TEST(StrFormat, FormatsAnyLength) {
  EXPECT_EQ(strformat("%g", 2.5), "2.5");
  EXPECT_EQ(strformat("%g", 1.58), "1.58");
  EXPECT_EQ(strformat("%+.1f", -0.04), "-0.0");
  EXPECT_EQ(strformat("%s", ""), "");
  const std::string big(5000, 'x');  // longer than any fixed buffer the callers used
  EXPECT_EQ(strformat("<%s>%d", big.c_str(), 7), "<" + big + ">7");
}
