// Base64 (RFC 4648, standard alphabet, '=' padding): LiveCodeBench's compressed test cases arrive so, and
// the sandbox hands test data to generated programs so (eval/lcb.h).
#pragma once
#include <string>
#include <string_view>

#include "util/status.h"

namespace razor {

std::string base64_encode(std::string_view bytes);
// ASCII whitespace is skipped; any other character outside the alphabet, misplaced padding or a length that
// is not a whole number of 4-character groups is an error naming `what` and the offset.
result<std::string> base64_decode(std::string_view text, const std::string& what);

}  // namespace razor
