#include "model/json_value.h"

#include <cmath>

namespace razor {

std::string json_excerpt(const nlohmann::json& v, size_t max_bytes) {
  std::string d = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return d.size() > max_bytes ? d.substr(0, max_bytes) + "..." : d;
}

result<int64_t> json_integer(const nlohmann::json& v, int64_t lo, int64_t hi, errc code, const std::string& at) {
  auto bad = [&](const std::string& why) { return make_error(code, at + " = " + json_excerpt(v) + " " + why); };
  auto out_of_range = [&] {
    return bad("is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  };
  int64_t x = 0;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (hi < 0 || u > uint64_t(hi)) return out_of_range();
    x = int64_t(u);
  } else if (v.is_number_integer()) {
    x = v.get<int64_t>();
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d)) return bad("is not an integer");
    if (d < double(lo) || d > double(hi)) return out_of_range();
    x = int64_t(d);
  } else {
    return bad("is not an integer");
  }
  if (x < lo || x > hi) return out_of_range();
  return x;
}

}  // namespace razor
