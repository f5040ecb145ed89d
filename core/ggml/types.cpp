#include "ggml/types.h"

#include <string>

namespace razor::ggml {

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

}  // namespace

result<type> type_from_name(std::string_view name) {
  for (const auto& ti : type_table)
    if (iequals(ti.name, name)) return ti.t;
  std::string known;
  for (const auto& ti : type_table) {
    if (!known.empty()) known += ", ";
    known += ti.name;
  }
  return make_error(errc::invalid_argument,
                    "unknown ggml type '" + std::string(name) + "' (known: " + known + ")");
}

result<type> type_from_id(uint32_t id) {
  for (const auto& ti : type_table)
    if (ti.id == id) return ti.t;
  return make_error(errc::unsupported, "ggml type id " + std::to_string(id) + " is not supported");
}

result<type> resolve_row_type(type wanted, int64_t n_per_row) {
  const auto& ti = info(wanted);
  if (n_per_row % ti.block_size == 0) return wanted;
  if (ti.fallback == wanted)
    return make_error(errc::unsupported, "row length " + std::to_string(n_per_row) +
                                             " is not a multiple of " + std::to_string(ti.block_size) +
                                             " and llama.cpp defines no fallback for " +
                                             std::string(ti.name));
  const type fb = ti.fallback;
  if (n_per_row % info(fb).block_size != 0) return type::f16;
  return fb;
}

}  // namespace razor::ggml
