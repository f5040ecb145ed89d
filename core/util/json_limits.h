// JSON from a user's file or line, parsed within bounds. nlohmann::json's DOM is recursive (copying, dumping and
// comparing a value recurse once per level), so a document nested 100,000 deep overflows the stack, and its
// memory grows ~20x over the text. Every JSON razor reads from a user (config.json, the index, tokenizer.json,
// recipes, worker requests, caches, results) goes through parse_json / read_json_file:
//   - at most `max_bytes` of text (the caller's limit for that kind of file);
//   - at most `max_depth` levels of arrays/objects (kJsonMaxDepth = 64; real files use fewer than 10), checked
//     by a scan of the text before any DOM is built, so the error names the byte where the limit is passed;
//   - optionally, no key twice in one object (JSON parsers differ on which one wins; razor refuses).
// Errors are values with the caller's code, naming the input and the byte: "config.json: not valid JSON at
// byte 17: syntax error while parsing object ...".
//
// Output: dump_json writes JSON whose strings may hold a user's bytes (GGUF strings, file names) with invalid
// UTF-8 replaced by U+FFFD: nlohmann's default would throw (type_error.316) from the middle of a command.
#pragma once
#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "util/status.h"

namespace razor {

inline constexpr int kJsonMaxDepth = 64;

struct json_limits {
  size_t max_bytes = size_t(64) << 20;
  int max_depth = kJsonMaxDepth;
  errc code = errc::bad_format;  // the code of every error (bad_config for config.json, bad_recipe, protocol, ...)
  bool unique_keys = false;      // a key twice in one object is an error
};

// The byte offset of the first '[' or '{' that opens level max_depth + 1 (brackets inside strings do not
// count), or nullopt when the text stays within max_depth. Linear, allocates nothing; malformed text is
// left for the parser.
std::optional<size_t> json_depth_exceeded(std::string_view text, int max_depth);

// Parses `text` within `lim`; `what` names the input in errors (a path, "request line").
result<nlohmann::json> parse_json(std::string_view text, const std::string& what, const json_limits& lim = {});
// nlohmann's exception text without its "[json.exception.parse_error.101] parse error at line 1, column 2: "
// prefix, made printable (it quotes the bytes last read). For parsers that report the byte themselves.
std::string json_error_detail(const char* what);

// read_text_file(path, lim.max_bytes) (regular files only), then parse_json.
result<nlohmann::json> read_json_file(const std::string& path, const json_limits& lim = {});

// JSON text of `j` (indent as nlohmann's dump) with invalid UTF-8 in strings replaced by U+FFFD.
template <class Json>
std::string dump_json(const Json& j, int indent = -1) {
  return j.dump(indent, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

}  // namespace razor
