#include "ggml/types.h"

#include <array>
#include <string>

namespace razor::ggml {

namespace {

constexpr std::array k_types = {
#define X(ident, name, id, block, bytes, imatrix, fallback, llama_fb) \
  type_info{type::ident, name, id, block, bytes, imatrix, type::fallback, llama_fb},
    RAZOR_GGML_TYPES(X)
#undef X
};

char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

}  // namespace

std::span<const type_info> all_types() { return k_types; }

const type_info& info(type t) {
  for (const auto& ti : k_types)
    if (ti.t == t) return ti;
  return k_types[0];  // unreachable for valid enumerators
}

result<type> type_from_name(std::string_view name) {
  for (const auto& ti : k_types)
    if (iequals(ti.name, name)) return ti.t;
  std::string known;
  for (const auto& ti : k_types) {
    if (!known.empty()) known += ", ";
    known += ti.name;
  }
  return make_error(errc::invalid_argument,
                    "unknown ggml type '" + std::string(name) + "' (known: " + known + ")");
}

result<type> type_from_id(uint32_t id) {
  for (const auto& ti : k_types)
    if (ti.id == id) return ti.t;
  return make_error(errc::unsupported, "ggml type id " + std::to_string(id) + " is not supported");
}

size_t row_size(type t, int64_t n) {
  const auto& ti = info(t);
  return size_t(n / ti.block_size) * size_t(ti.type_size);
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
