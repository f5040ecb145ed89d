// Lookups in the table of an enumeration. Each enumeration has one X-macro table (house style 10); its .cpp
// turns the macro into a constexpr array of enum_row (the enumerator, its spelling, and one more column the
// table carries) and answers every question from that array with these lookups, instead of a switch per
// question. Tables are small (tens of rows).
#pragma once
#include <cstddef>
#include <string_view>
#include <type_traits>

namespace razor {

template <class E, class Info>
struct enum_row {
  E value;
  std::string_view name;
  Info info;  // the table's other column (a size, a text, a flag)
};

// The row of `value`, or nullptr.
template <class E, class Info, size_t N>
constexpr const enum_row<E, Info>* find_row(const enum_row<E, Info> (&rows)[N], E value) {
  for (const auto& r : rows)
    if (r.value == value) return &r;
  return nullptr;
}

// The row spelled exactly `name`, or nullptr.
template <class E, class Info, size_t N>
constexpr const enum_row<E, Info>* find_row_named(const enum_row<E, Info> (&rows)[N], std::string_view name) {
  for (const auto& r : rows)
    if (r.name == name) return &r;
  return nullptr;
}

// The name of `value`, or `fallback` when no row has it.
template <class E, class Info, size_t N>
constexpr std::string_view enum_name(const enum_row<E, Info> (&rows)[N], E value, std::string_view fallback) {
  const auto* r = find_row(rows, value);
  return r ? r->name : fallback;
}

// The other column of `value`, or `fallback` when no row has it.
template <class E, class Info, size_t N>
constexpr Info enum_info(const enum_row<E, Info> (&rows)[N], E value, std::type_identity_t<Info> fallback) {
  const auto* r = find_row(rows, value);
  return r ? r->info : fallback;
}

}  // namespace razor
