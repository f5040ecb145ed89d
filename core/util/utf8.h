// UTF-8 validation of text users give (evaluation and calibration texts), so that a malformed byte is
// reported where it is instead of reaching code that assumes valid UTF-8 (the tokenizer's regex).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include "util/status.h"

namespace razor {

// The byte offset of the first byte of `s` that does not begin a well-formed UTF-8 sequence (RFC 3629: no
// overlong forms, no surrogates U+D800..DFFF, nothing above U+10FFFF, no truncated sequence), or npos.
size_t utf8_invalid_offset(std::string_view s);

// errc::bad_format when `s` is not valid UTF-8: "<where>: not valid UTF-8 at byte offset 1234 (line 5,
// column 17): 0xff 0x41 ..." (offset from 0; line and column, in bytes, from 1).
status check_utf8(std::string_view s, const std::string& where);

}  // namespace razor
