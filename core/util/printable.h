// Quoting a user's bytes in a message for people. A file name, a key, a tensor name or a recipe word can hold
// any bytes: escape sequences (ESC [ ...) that would drive the terminal, NULs, invalid UTF-8. Every error
// message that quotes user input passes it through printable() so that what reaches the terminal (or the
// worker's JSON line) is inert, readable text.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace razor {

// `s` with printable ASCII and well-formed, printable UTF-8 kept as is and everything else escaped:
// \n \r \t as such, other control bytes (C0, DEL) and bytes of invalid UTF-8 as \xNN, the C1 controls and the
// bidirectional overrides (U+202A..U+202E, U+2066..U+2069) as \u{XXXX}. Longer than `max_len` bytes of output:
// cut at a character boundary and followed by "... (N bytes)", N the input's size.
std::string printable(std::string_view s, size_t max_len = 1024);
// The same for a whole message of several lines (the CLI's last line of defence before stderr): \n and \t are
// kept as they are, no length limit.
std::string printable_lines(std::string_view s);

}  // namespace razor
