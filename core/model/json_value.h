// JSON values users write (config.json, recipes), read strictly (hf_config.cpp, recipe.cpp): an integer must be an integer within the
// caller's range (64.5 and "64" are not; 64.0 and 1e3 are), never truncated or wrapped as a plain get<int>()
// would (2^40 -> 0, 64.5 -> 64).
#pragma once
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "util/status.h"

namespace razor {

// `v` for an error message: compact JSON, invalid UTF-8 replaced, at most `max_bytes` (then "...").
std::string json_excerpt(const nlohmann::json& v, size_t max_bytes = 60);

// `v` as an integer in [lo, hi]; otherwise `code` with "<at> = <v> is not an integer" or "... is out of range
// [lo, hi]" (`at` names the file and the key).
result<int64_t> json_integer(const nlohmann::json& v, int64_t lo, int64_t hi, errc code, const std::string& at);

}  // namespace razor
