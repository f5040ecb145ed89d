#include "util/printable.h"

#include <cstdint>
#include <cstdio>

namespace razor {

namespace {

// Length of the well-formed UTF-8 sequence at s[i] (2..4) and its code point, or 0 when it is not one
// (overlong forms, surrogates and code points above U+10FFFF are not well-formed).
size_t utf8_sequence(std::string_view s, size_t i, uint32_t* cp) {
  const auto b0 = uint8_t(s[i]);
  size_t n;
  uint32_t c, min;
  if (b0 >= 0xc2 && b0 <= 0xdf) n = 2, c = b0 & 0x1fu, min = 0x80;
  else if (b0 >= 0xe0 && b0 <= 0xef) n = 3, c = b0 & 0x0fu, min = 0x800;
  else if (b0 >= 0xf0 && b0 <= 0xf4) n = 4, c = b0 & 0x07u, min = 0x10000;
  else return 0;
  if (s.size() - i < n) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto b = uint8_t(s[i + k]);
    if ((b & 0xc0) != 0x80) return 0;
    c = (c << 6) | (b & 0x3fu);
  }
  if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
  *cp = c;
  return n;
}

bool invisible_control(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

}  // namespace

static std::string escape(std::string_view s, size_t max_len, bool keep_lines) {
  std::string out;
  out.reserve(s.size() < max_len ? s.size() : max_len);
  char buf[16];
  size_t i = 0;
  for (; i < s.size();) {
    std::string piece;
    const auto b = uint8_t(s[i]);
    size_t used = 1;
    if (b >= 0x20 && b < 0x7f) {
      piece.assign(1, char(b));
    } else if (keep_lines && (b == '\n' || b == '\t')) {
      piece.assign(1, char(b));
    } else if (b == '\n') {
      piece = "\\n";
    } else if (b == '\r') {
      piece = "\\r";
    } else if (b == '\t') {
      piece = "\\t";
    } else if (uint32_t cp = 0; b >= 0x80 && (used = utf8_sequence(s, i, &cp)) != 0) {
      if (invisible_control(cp)) {
        std::snprintf(buf, sizeof buf, "\\u{%04x}", unsigned(cp));
        piece = buf;
      } else {
        piece.assign(s.substr(i, used));
      }
    } else {
      used = 1;
      std::snprintf(buf, sizeof buf, "\\x%02x", unsigned(b));
      piece = buf;
    }
    if (out.size() + piece.size() > max_len) break;
    out += piece;
    i += used;
  }
  if (i < s.size()) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

std::string printable(std::string_view s, size_t max_len) { return escape(s, max_len, false); }
std::string printable_lines(std::string_view s) { return escape(s, SIZE_MAX, true); }

}  // namespace razor
