#include "util/base64.h"

#include <array>

namespace razor {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> decode_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = int8_t(i);
  return t;
}
constexpr auto kDecode = decode_table();

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8 | uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (size_t rest = bytes.size() - i) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | (rest == 2 ? uint32_t(uint8_t(bytes[i + 1])) << 8 : 0);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

result<std::string> base64_decode(std::string_view text, const std::string& what) {
  std::string out;
  out.reserve(text.size() / 4 * 3);
  uint32_t acc = 0;
  int have = 0, pad = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (is_space(c)) continue;
    if (c == '=') {
      if (have < 2 || ++pad + have > 4)
        return make_error(errc::bad_format, what + ": base64 padding misplaced at offset " + std::to_string(i));
      if (pad + have == 4) {
        if (have == 2) {
          out += char(acc >> 4 & 0xff);
        } else {
          out += char(acc >> 10 & 0xff);
          out += char(acc >> 2 & 0xff);
        }
        acc = 0, have = 0;
        pad = -1;  // group closed: only whitespace may follow
      }
      continue;
    }
    int8_t v = kDecode[static_cast<unsigned char>(c)];
    if (v < 0 || pad != 0)
      return make_error(errc::bad_format, what + ": not base64 at offset " + std::to_string(i) + " (byte " +
                                              std::to_string(static_cast<unsigned char>(c)) + ")");
    acc = acc << 6 | uint32_t(v);
    if (++have == 4) {
      out += char(acc >> 16 & 0xff);
      out += char(acc >> 8 & 0xff);
      out += char(acc & 0xff);
      acc = 0, have = 0;
    }
  }
  if (have != 0 || pad > 0)
    return make_error(errc::bad_format, what + ": base64 text ends inside a 4-character group");
  return out;
}

}  // namespace razor
