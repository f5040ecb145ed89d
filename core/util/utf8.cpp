#include "util/utf8.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>

namespace razor {

size_t utf8_invalid_offset(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint8_t lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;       // no overlong 3-byte forms
      else if (c == 0xed) hi = 0x9f;  // no surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;       // no overlong 4-byte forms
      else if (c == 0xf4) hi = 0x8f;  // nothing above U+10FFFF
    } else {
      return i;  // a continuation byte, 0xc0/0xc1 or 0xf5..0xff
    }
    if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if ((p[i + k] & 0xc0) != 0x80) return i;
    i += len;
  }
  return std::string_view::npos;
}

status check_utf8(std::string_view s, const std::string& where) {
  const size_t at = utf8_invalid_offset(s);
  if (at == std::string_view::npos) return {};
  const size_t line = size_t(std::count(s.begin(), s.begin() + std::ptrdiff_t(at), '\n')) + 1;
  const size_t line_start = s.rfind('\n', at == 0 ? 0 : at - 1);
  const size_t col = line_start == std::string_view::npos || at == 0 ? at + 1 : at - line_start;
  std::string bytes;
  for (size_t k = at; k < s.size() && k < at + 4; ++k) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%s0x%02x", bytes.empty() ? "" : " ", static_cast<unsigned char>(s[k]));
    bytes += buf;
  }
  return make_error(errc::bad_format, where + ": not valid UTF-8 at byte offset " + std::to_string(at) + " (line " +
                                          std::to_string(line) + ", column " + std::to_string(col) + "): " + bytes + " (the text must be UTF-8)");
}

}  // namespace razor
