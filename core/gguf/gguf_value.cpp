// GGUF metadata values (gguf_file.h): their types, construction and typed access.
#include "gguf/gguf_file.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "util/printable.h"

namespace razor::gguf {

static_assert(std::endian::native == std::endian::little, "GGUF I/O assumes a little-endian host");

// ---------------------------------------------------------------------------------------------------
// value types
// ---------------------------------------------------------------------------------------------------
std::string_view value_type_name(value_type t) {
  switch (t) {
    case value_type::u8: return "UINT8";
    case value_type::i8: return "INT8";
    case value_type::u16: return "UINT16";
    case value_type::i16: return "INT16";
    case value_type::u32: return "UINT32";
    case value_type::i32: return "INT32";
    case value_type::f32: return "FLOAT32";
    case value_type::boolean: return "BOOL";
    case value_type::string: return "STRING";
    case value_type::array: return "ARRAY";
    case value_type::u64: return "UINT64";
    case value_type::i64: return "INT64";
    case value_type::f64: return "FLOAT64";
  }
  return "?";
}

bool value_type_known(uint32_t t) { return t <= 12; }

size_t value_type_size(value_type t) {
  switch (t) {
    case value_type::u8: case value_type::i8: case value_type::boolean: return 1;
    case value_type::u16: case value_type::i16: return 2;
    case value_type::u32: case value_type::i32: case value_type::f32: return 4;
    case value_type::u64: case value_type::i64: case value_type::f64: return 8;
    default: return 0;
  }
}

static bool is_int_type(value_type t) {
  switch (t) {
    case value_type::u8: case value_type::i8: case value_type::u16: case value_type::i16: case value_type::u32:
    case value_type::i32: case value_type::u64: case value_type::i64: case value_type::boolean: return true;
    default: return false;
  }
}

// Decodes a fixed-size scalar from little-endian bytes into (signed value, unsigned value, is_negative).
static int64_t load_signed(value_type t, const uint8_t* p) {
  switch (t) {
    case value_type::u8: case value_type::boolean: return p[0];
    case value_type::i8: return int8_t(p[0]);
    case value_type::u16: { uint16_t v; std::memcpy(&v, p, 2); return v; }
    case value_type::i16: { int16_t v; std::memcpy(&v, p, 2); return v; }
    case value_type::u32: { uint32_t v; std::memcpy(&v, p, 4); return v; }
    case value_type::i32: { int32_t v; std::memcpy(&v, p, 4); return v; }
    case value_type::u64: { uint64_t v; std::memcpy(&v, p, 8); return int64_t(v); }
    case value_type::i64: { int64_t v; std::memcpy(&v, p, 8); return v; }
    default: return 0;
  }
}

static double load_double(value_type t, const uint8_t* p) {
  if (t == value_type::f32) { float v; std::memcpy(&v, p, 4); return v; }
  if (t == value_type::f64) { double v; std::memcpy(&v, p, 8); return v; }
  if (t == value_type::u64) { uint64_t v; std::memcpy(&v, p, 8); return double(v); }
  return double(load_signed(t, p));
}

#define RAZOR_SCALAR_CTOR(fn, T, VT)      \
  value value::fn(T x) {                  \
    value v;                              \
    v.type_ = value_type::VT;             \
    std::memcpy(&v.bits_, &x, sizeof(T)); \
    return v;                             \
  }
RAZOR_SCALAR_CTOR(u8, uint8_t, u8)
RAZOR_SCALAR_CTOR(i8, int8_t, i8)
RAZOR_SCALAR_CTOR(u16, uint16_t, u16)
RAZOR_SCALAR_CTOR(i16, int16_t, i16)
RAZOR_SCALAR_CTOR(u32, uint32_t, u32)
RAZOR_SCALAR_CTOR(i32, int32_t, i32)
RAZOR_SCALAR_CTOR(f32, float, f32)
RAZOR_SCALAR_CTOR(u64, uint64_t, u64)
RAZOR_SCALAR_CTOR(i64, int64_t, i64)
RAZOR_SCALAR_CTOR(f64, double, f64)
#undef RAZOR_SCALAR_CTOR

value value::boolean(bool b) {
  value v;
  v.type_ = value_type::boolean;
  v.bits_ = b ? 1 : 0;
  return v;
}

value value::str(std::string s) {
  value v;
  v.type_ = value_type::string;
  v.str_ = std::move(s);
  return v;
}

value value::array_raw(value_type elem, std::vector<uint8_t> packed, size_t count) {
  value v;
  v.type_ = value_type::array;
  v.elem_ = elem;
  v.raw_ = std::move(packed);
  v.count_ = count;
  return v;
}

value value::strings(std::vector<std::string> s) {
  value v = array_raw(value_type::string, {}, s.size());
  v.strs_ = std::move(s);
  return v;
}

value value::arrays(std::vector<value> a) {
  value v = array_raw(value_type::array, {}, a.size());
  v.arrs_ = std::move(a);
  return v;
}

template <class T>
static value packed_array(value_type vt, std::span<const T> s) {
  std::vector<uint8_t> raw(s.size() * sizeof(T));
  if (!s.empty()) std::memcpy(raw.data(), s.data(), raw.size());
  return value::array_raw(vt, std::move(raw), s.size());
}
value value::i32s(std::span<const int32_t> s) { return packed_array(value_type::i32, s); }
value value::u32s(std::span<const uint32_t> s) { return packed_array(value_type::u32, s); }
value value::f32s(std::span<const float> s) { return packed_array(value_type::f32, s); }
value value::i64s(std::span<const int64_t> s) { return packed_array(value_type::i64, s); }

size_t value::size() const { return type_ == value_type::array ? count_ : 0; }

std::optional<int64_t> value::as_int() const {
  if (!is_int_type(type_)) return std::nullopt;
  uint8_t b[8];
  std::memcpy(b, &bits_, 8);
  if (type_ == value_type::u64 && bits_ > uint64_t(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return load_signed(type_, b);
}

std::optional<uint64_t> value::as_uint() const {
  if (!is_int_type(type_)) return std::nullopt;
  if (type_ == value_type::u64) return bits_;
  auto i = as_int();
  if (!i || *i < 0) return std::nullopt;
  return uint64_t(*i);
}

std::optional<double> value::as_float() const {
  if (type_ == value_type::string || type_ == value_type::array) return std::nullopt;
  uint8_t b[8];
  std::memcpy(b, &bits_, 8);
  return load_double(type_, b);
}

const std::string* value::as_string() const { return type_ == value_type::string ? &str_ : nullptr; }

int64_t value::int_at(size_t i) const {
  size_t w = value_type_size(elem_);
  if (type_ != value_type::array || w == 0 || i >= count_) return 0;
  return load_signed(elem_, raw_.data() + i * w);
}

double value::float_at(size_t i) const {
  size_t w = value_type_size(elem_);
  if (type_ != value_type::array || w == 0 || i >= count_) return 0;
  return load_double(elem_, raw_.data() + i * w);
}

const std::string& value::str_at(size_t i) const { return strs_.at(i); }
const value& value::array_at(size_t i) const { return arrs_.at(i); }

std::string value::to_string(size_t max_items) const {
  char buf[64];
  switch (type_) {
    case value_type::string: {
      // A file's bytes, shown on a terminal: control bytes and invalid UTF-8 escaped (printable), quotes too.
      std::string s = "\"";
      for (char c : printable(str_, 200)) {
        if (c == '"') s += "\\\"";
        else s += c;
      }
      return s + "\"";
    }
    case value_type::boolean: return bits_ ? "true" : "false";
    case value_type::f32: case value_type::f64:
      std::snprintf(buf, sizeof buf, "%.9g", *as_float());
      return buf;
    case value_type::u64:
      std::snprintf(buf, sizeof buf, "%" PRIu64, bits_);
      return buf;
    case value_type::array: {
      std::string s = "[";
      size_t n = std::min(count_, max_items);
      for (size_t i = 0; i < n; ++i) {
        if (i) s += ", ";
        if (elem_ == value_type::string) s += value::str(strs_[i]).to_string(max_items);
        else if (elem_ == value_type::array) s += arrs_[i].to_string(max_items);
        else if (elem_ == value_type::f32 || elem_ == value_type::f64) {
          std::snprintf(buf, sizeof buf, "%.9g", float_at(i));
          s += buf;
        } else if (elem_ == value_type::u64) {
          std::snprintf(buf, sizeof buf, "%" PRIu64, uint64_t(int_at(i)));
          s += buf;
        } else {
          s += std::to_string(int_at(i));
        }
      }
      if (count_ > n) s += ", ... (" + std::to_string(count_) + " items)";
      return s + "]";
    }
    default:
      return std::to_string(*as_int());
  }
}

bool value::operator==(const value& o) const {
  if (type_ != o.type_) return false;
  if (type_ == value_type::string) return str_ == o.str_;
  if (type_ != value_type::array) return bits_ == o.bits_;
  return elem_ == o.elem_ && count_ == o.count_ && raw_ == o.raw_ && strs_ == o.strs_ && arrs_ == o.arrs_;
}

}  // namespace razor::gguf
