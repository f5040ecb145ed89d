#include "gguf/gguf_file.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

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
  value v;
  v.type_ = value_type::array;
  v.elem_ = value_type::string;
  v.count_ = s.size();
  v.strs_ = std::move(s);
  return v;
}

value value::arrays(std::vector<value> a) {
  value v;
  v.type_ = value_type::array;
  v.elem_ = value_type::array;
  v.count_ = a.size();
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
      std::string s = "\"";
      for (char c : str_.substr(0, 200)) {
        if (c == '\n') s += "\\n";
        else if (c == '"') s += "\\\"";
        else s += c;
      }
      if (str_.size() > 200) s += "...";
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

// ---------------------------------------------------------------------------------------------------
// ggml type table (container view: geometry only)
// ---------------------------------------------------------------------------------------------------
// The types we write come from the one type table (ggml/types.h); these are the others this llama.cpp
// generation knows, listed only so that files holding them can be read, sized and validated.
static const type_traits k_read_only_types[] = {
    {9, "q8_1", 32, 36},    {15, "q8_K", 256, 292},  {24, "i8", 1, 1},       {25, "i16", 1, 2},
    {26, "i32", 1, 4},      {27, "i64", 1, 8},       {28, "f64", 1, 8},      {34, "tq1_0", 256, 54},
    {35, "tq2_0", 256, 66}, {39, "mxfp4", 32, 17},   {40, "nvfp4", 64, 36},  {41, "q1_0", 128, 18},
    {42, "q2_0", 64, 18},
};

static const std::vector<type_traits>& type_list() {
  static const std::vector<type_traits> all = [] {
    std::vector<type_traits> v;
    for (const auto& ti : ggml::all_types())  // names are string literals: NUL-terminated
      v.push_back({ti.id, ti.name.data(), ti.block_size, ti.type_size});
    for (const auto& t : k_read_only_types) {
      const bool dup = std::any_of(v.begin(), v.end(), [&](const type_traits& o) { return o.id == t.id; });
      if (!dup) v.push_back(t);  // a type we learn to write leaves this list (its table row wins)
    }
    std::sort(v.begin(), v.end(), [](const type_traits& a, const type_traits& b) { return a.id < b.id; });
    return v;
  }();
  return all;
}

const type_traits* find_type(uint32_t id) {
  for (auto& t : type_list())
    if (t.id == id) return &t;
  return nullptr;
}

static bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower((unsigned char)a[i]) != std::tolower((unsigned char)b[i])) return false;
  return true;
}

const type_traits* find_type(std::string_view name) {
  for (auto& t : type_list())
    if (iequals(t.name, name)) return &t;
  return nullptr;
}

std::vector<type_traits> all_types() { return type_list(); }

static bool mul_overflow(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }

std::optional<uint64_t> tensor_bytes(uint32_t type, std::span<const int64_t> ne) {
  const type_traits* tt = find_type(type);
  if (!tt) return std::nullopt;
  if (ne.empty()) return uint64_t(tt->type_size);  // a scalar
  for (int64_t d : ne)
    if (d < 0) return std::nullopt;
  if (ne[0] % tt->block_size != 0) return std::nullopt;
  uint64_t bytes = uint64_t(ne[0] / tt->block_size) * uint64_t(tt->type_size);
  uint64_t nel = uint64_t(ne[0]);
  for (size_t i = 1; i < ne.size(); ++i) {
    if (mul_overflow(bytes, uint64_t(ne[i]), &bytes)) return std::nullopt;
    if (mul_overflow(nel, uint64_t(ne[i]), &nel)) return std::nullopt;
  }
  if (nel > uint64_t(std::numeric_limits<int64_t>::max()) || bytes > uint64_t(std::numeric_limits<int64_t>::max()))
    return std::nullopt;
  return bytes;
}

int64_t tensor_info::nelements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

// ---------------------------------------------------------------------------------------------------
// encoding
// ---------------------------------------------------------------------------------------------------
static void put_u32(std::string& o, uint32_t v) { o.append(reinterpret_cast<const char*>(&v), 4); }
static void put_u64(std::string& o, uint64_t v) { o.append(reinterpret_cast<const char*>(&v), 8); }
static void put_str(std::string& o, const std::string& s) {
  put_u64(o, s.size());
  o.append(s);
}

void encode_value(const value& v, std::string& out) {
  switch (v.type()) {
    case value_type::string: put_str(out, *v.as_string()); return;
    case value_type::array: {
      put_u32(out, uint32_t(v.elem_type()));
      put_u64(out, v.size());
      if (v.elem_type() == value_type::string) {
        for (auto& s : v.string_items()) put_str(out, s);
      } else if (v.elem_type() == value_type::array) {
        for (size_t i = 0; i < v.size(); ++i) encode_value(v.array_at(i), out);
      } else {
        out.append(reinterpret_cast<const char*>(v.packed().data()), v.packed().size());
      }
      return;
    }
    default: {
      // scalar: the low bytes of the payload
      uint64_t bits = 0;
      auto f = v.as_float();
      size_t w = value_type_size(v.type());
      if (v.type() == value_type::f32) {
        float x = float(*f);
        std::memcpy(&bits, &x, 4);
      } else if (v.type() == value_type::f64) {
        double x = *f;
        std::memcpy(&bits, &x, 8);
      } else if (v.type() == value_type::u64) {
        bits = *v.as_uint();
      } else {
        int64_t x = *v.as_int();
        std::memcpy(&bits, &x, 8);
      }
      out.append(reinterpret_cast<const char*>(&bits), w);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// reader
// ---------------------------------------------------------------------------------------------------
namespace {

struct cursor {
  const uint8_t* p;
  uint64_t size, pos = 0;
  const std::string& name;
  uint64_t left() const { return size - pos; }
  status fail(const std::string& what) const {
    return make_error(errc::bad_format, name + ": " + what + " (at byte " + std::to_string(pos) + " of " +
                                            std::to_string(size) + ")");
  }
  status need(uint64_t n, const char* what) const {
    if (n > left()) return fail(std::string("truncated: ") + what + " needs " + std::to_string(n) + " bytes");
    return {};
  }
  template <class T>
  status get(T* v, const char* what) {
    RAZOR_TRY(need(sizeof(T), what));
    std::memcpy(v, p + pos, sizeof(T));
    pos += sizeof(T);
    return {};
  }
  status get_str(std::string* s, const char* what) {
    uint64_t n = 0;
    RAZOR_TRY(get(&n, what));
    if (n > left())
      return fail(std::string(what) + " length " + std::to_string(n) + " runs past the end of the file");
    s->assign(reinterpret_cast<const char*>(p + pos), size_t(n));
    pos += n;
    return {};
  }
};

}  // namespace

struct value_codec {
  static status read(cursor& c, value_type t, value* out, int depth, const std::string& key) {
    out->type_ = t;
    if (t == value_type::string) return c.get_str(&out->str_, ("string value of " + key).c_str());
    if (t != value_type::array) {
      size_t w = value_type_size(t);
      RAZOR_TRY(c.need(w, "scalar value"));
      out->bits_ = 0;
      std::memcpy(&out->bits_, c.p + c.pos, w);
      if (t == value_type::boolean && out->bits_ > 1)
        return c.fail("key '" + key + "': BOOL value " + std::to_string(out->bits_) + " is neither 0 nor 1");
      c.pos += w;
      return {};
    }
    if (depth >= max_array_depth) return c.fail("key '" + key + "': arrays nested deeper than " +
                                                std::to_string(max_array_depth));
    uint32_t et = 0;
    uint64_t n = 0;
    RAZOR_TRY(c.get(&et, "array element type"));
    if (!value_type_known(et))
      return c.fail("key '" + key + "': unknown array element type " + std::to_string(et));
    RAZOR_TRY(c.get(&n, "array length"));
    out->elem_ = value_type(et);
    // Every element needs at least this many bytes, which bounds n by the file size.
    uint64_t min_elem = out->elem_ == value_type::string ? 8 : out->elem_ == value_type::array ? 12
                                                                                              : value_type_size(out->elem_);
    if (n > c.left() / min_elem)
      return c.fail("key '" + key + "': array of " + std::to_string(n) + " " +
                    std::string(value_type_name(out->elem_)) + " items cannot fit in the rest of the file");
    out->count_ = size_t(n);
    if (out->elem_ == value_type::string) {
      out->strs_.resize(size_t(n));
      for (auto& s : out->strs_) RAZOR_TRY(c.get_str(&s, ("string in array " + key).c_str()));
    } else if (out->elem_ == value_type::array) {
      out->arrs_.resize(size_t(n));
      for (auto& a : out->arrs_) RAZOR_TRY(read(c, value_type::array, &a, depth + 1, key));
    } else {
      uint64_t bytes = n * min_elem;
      out->raw_.assign(c.p + c.pos, c.p + c.pos + bytes);
      if (out->elem_ == value_type::boolean)
        for (uint8_t b : out->raw_)
          if (b > 1) return c.fail("key '" + key + "': BOOL array item is neither 0 nor 1");
      c.pos += bytes;
    }
    return {};
  }
};

result<file> file::open(const std::string& path) {
  RAZOR_ASSIGN_OR_RETURN(mapped_file m, mapped_file::open(path));
  auto r = parse(m.data(), m.size(), path);
  if (!r.ok()) return r.error();
  file f = std::move(r).value();
  f.map_ = std::move(m);
  return f;
}

result<file> file::parse(const uint8_t* data, size_t size, const std::string& name) {
  file f;
  f.data_ = data;
  f.size_ = size;
  f.name_ = name;
  cursor c{data, size, 0, f.name_};
  uint32_t mg = 0;
  if (size < 4) return c.fail("too short to be a GGUF file");
  RAZOR_TRY(c.get(&mg, "magic"));
  if (mg != magic) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "not a GGUF file (magic %02x %02x %02x %02x, expected \"GGUF\")", data[0], data[1],
                  data[2], data[3]);
    return make_error(errc::bad_format, name + ": " + buf);
  }
  RAZOR_TRY(c.get(&f.version_, "version"));
  if (f.version_ != 2 && f.version_ != 3)
    return make_error(errc::unsupported, name + ": GGUF version " + std::to_string(f.version_) +
                                             " is not supported (only 2 and 3)");
  uint64_t n_tensors = 0, n_kv = 0;
  RAZOR_TRY(c.get(&n_tensors, "tensor count"));
  RAZOR_TRY(c.get(&n_kv, "metadata count"));
  // Minimum encoded sizes: kv = key len(8) + type(4) + 1 byte value; tensor info = 8 + 4 + 4 + 8.
  if (n_kv > c.left() / 13)
    return c.fail("metadata count " + std::to_string(n_kv) + " cannot fit in the file");
  if (n_tensors > c.left() / 24)
    return c.fail("tensor count " + std::to_string(n_tensors) + " cannot fit in the file");

  f.kv_.reserve(size_t(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    kv_pair kv;
    RAZOR_TRY(c.get_str(&kv.key, ("key of metadata entry " + std::to_string(i)).c_str()));
    if (kv.key.empty()) return c.fail("metadata entry " + std::to_string(i) + " has an empty key");
    uint32_t t = 0;
    RAZOR_TRY(c.get(&t, "value type"));
    if (!value_type_known(t))
      return c.fail("key '" + kv.key + "' has unknown value type " + std::to_string(t));
    RAZOR_TRY(value_codec::read(c, value_type(t), &kv.val, 0, kv.key));
    if (!f.kv_index_.emplace(kv.key, f.kv_.size()).second) return c.fail("duplicate key '" + kv.key + "'");
    f.kv_.push_back(std::move(kv));
  }

  if (const value* al = f.find("general.alignment")) {
    if (al->type() != value_type::u32)
      return c.fail("general.alignment must be UINT32, found " + std::string(value_type_name(al->type())));
    uint64_t a = *al->as_uint();
    if (a == 0 || (a & (a - 1)) != 0)
      return c.fail("general.alignment " + std::to_string(a) + " is not a power of two");
    f.alignment_ = uint32_t(a);
  }

  f.tensors_.reserve(size_t(n_tensors));
  uint64_t expect_offset = 0;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    tensor_info t;
    RAZOR_TRY(c.get_str(&t.name, ("name of tensor " + std::to_string(i)).c_str()));
    if (t.name.size() > max_name_bytes)
      return c.fail("tensor name '" + t.name.substr(0, 80) + "...' is longer than " + std::to_string(max_name_bytes) +
                    " bytes (llama.cpp's limit)");
    uint32_t nd = 0;
    RAZOR_TRY(c.get(&nd, "n_dims"));
    if (nd > uint32_t(max_dims))
      return c.fail("tensor '" + t.name + "' has " + std::to_string(nd) + " dimensions (at most 4)");
    t.ne.resize(nd);
    for (uint32_t d = 0; d < nd; ++d) {
      uint64_t v = 0;
      RAZOR_TRY(c.get(&v, "dimension"));
      if (v > uint64_t(std::numeric_limits<int64_t>::max()))
        return c.fail("tensor '" + t.name + "' dimension " + std::to_string(d) + " is " + std::to_string(v));
      t.ne[d] = int64_t(v);
    }
    RAZOR_TRY(c.get(&t.type, "tensor type"));
    const type_traits* tt = find_type(t.type);
    if (!tt) return c.fail("tensor '" + t.name + "' has unknown ggml type " + std::to_string(t.type));
    RAZOR_TRY(c.get(&t.offset, "tensor offset"));
    auto nb = tensor_bytes(t.type, t.ne);
    if (!nb) {
      std::string shape;
      for (auto d : t.ne) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
      if (!t.ne.empty() && t.ne[0] % tt->block_size != 0)
        return c.fail("tensor '" + t.name + "' {" + shape + "}: ne[0] is not a multiple of " + tt->name +
                      "'s block size " + std::to_string(tt->block_size));
      return c.fail("tensor '" + t.name + "' {" + shape + "}: element count overflows");
    }
    t.nbytes = *nb;
    if (t.offset != expect_offset)
      return c.fail("tensor '" + t.name + "' has offset " + std::to_string(t.offset) + ", expected " +
                    std::to_string(expect_offset) + " (tensors must follow each other, padded to " +
                    std::to_string(f.alignment_) + ")");
    uint64_t padded = t.nbytes + (f.alignment_ - t.nbytes % f.alignment_) % f.alignment_;
    if (t.nbytes > size || expect_offset > size - t.nbytes)
      return c.fail("tensor '" + t.name + "' (" + std::to_string(t.nbytes) + " bytes at offset " +
                    std::to_string(t.offset) + ") runs past the end of the file");
    expect_offset += padded;
    if (!f.tensor_index_.emplace(t.name, f.tensors_.size()).second)
      return c.fail("duplicate tensor name '" + t.name + "'");
    f.tensors_.push_back(std::move(t));
  }

  uint64_t pad = (f.alignment_ - c.pos % f.alignment_) % f.alignment_;
  f.data_offset_ = c.pos + pad;
  if (!f.tensors_.empty()) {
    const auto& last = f.tensors_.back();
    uint64_t end = last.offset + last.nbytes;  // the last tensor's padding may be absent
    if (f.data_offset_ > size || end > size - f.data_offset_)
      return make_error(errc::bad_format, name + ": tensor data ends at byte " +
                                              std::to_string(f.data_offset_ + end) + " but the file has " +
                                              std::to_string(size) + " bytes (truncated?)");
  }
  return f;
}

const value* file::find(std::string_view key) const {
  auto it = kv_index_.find(std::string(key));
  return it == kv_index_.end() ? nullptr : &kv_[it->second].val;
}

std::optional<std::string> file::get_string(std::string_view key) const {
  const value* v = find(key);
  if (!v || !v->as_string()) return std::nullopt;
  return *v->as_string();
}

std::optional<int64_t> file::get_int(std::string_view key) const {
  const value* v = find(key);
  return v ? v->as_int() : std::nullopt;
}

std::optional<double> file::get_float(std::string_view key) const {
  const value* v = find(key);
  return v ? v->as_float() : std::nullopt;
}

const tensor_info* file::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

// ---------------------------------------------------------------------------------------------------
// writer
// ---------------------------------------------------------------------------------------------------
writer::writer(writer_options o) : opt_(o) {}
writer::~writer() { abort(); }

void writer::set(const std::string& key, value v) {
  for (auto& kv : kv_)
    if (kv.key == key) {
      kv.val = std::move(v);
      return;
    }
  kv_.push_back({key, std::move(v)});
}

const value* writer::get(std::string_view key) const {
  for (auto& kv : kv_)
    if (kv.key == key) return &kv.val;
  return nullptr;
}

void writer::remove(std::string_view key) {
  std::erase_if(kv_, [&](const kv_pair& kv) { return kv.key == key; });
}

status writer::add_tensor(const std::string& name, std::vector<int64_t> ne, uint32_t type) {
  if (begun_) return make_error(errc::internal, "gguf writer: add_tensor after begin");
  if (name.empty() || name.size() > max_name_bytes)
    return make_error(errc::invalid_argument, "tensor name '" + name + "' must have 1 to 63 bytes (llama.cpp's limit)");
  if (ne.size() > size_t(max_dims))
    return make_error(errc::invalid_argument, "tensor '" + name + "' has more than 4 dimensions");
  const type_traits* tt = find_type(type);
  if (!tt) return make_error(errc::invalid_argument, "tensor '" + name + "': unknown ggml type " + std::to_string(type));
  auto nb = tensor_bytes(type, ne);
  if (!nb)
    return make_error(errc::shape_mismatch, "tensor '" + name + "': shape does not fit " + tt->name + " (ne[0] % " +
                                                std::to_string(tt->block_size) + " != 0, or overflow)");
  if (!names_.emplace(name, tensors_.size()).second)
    return make_error(errc::invalid_argument, "duplicate tensor name '" + name + "'");
  tensor_info t;
  t.name = name;
  t.ne = std::move(ne);
  t.type = type;
  t.nbytes = *nb;
  tensors_.push_back(std::move(t));
  return {};
}

std::string writer::shard_path(const std::string& path, int no1, int count) {
  std::string base = path;
  if (base.size() > 5 && base.compare(base.size() - 5, 5, ".gguf") == 0) base.resize(base.size() - 5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "-%05d-of-%05d.gguf", no1, count);
  return base + buf;
}

static uint64_t pad_to(uint64_t x, uint64_t a) { return x + (a - x % a) % a; }

uint64_t writer::total_bytes() const {
  uint64_t n = 0;
  for (auto& s : shards_) n += s.header_bytes + s.data_bytes;
  return n;
}

status writer::begin(const std::string& path) {
  if (begun_) return make_error(errc::internal, "gguf writer: begin called twice");
  uint32_t a = opt_.alignment;
  if (a == 0 || (a & (a - 1)) != 0)
    return make_error(errc::invalid_argument, "alignment " + std::to_string(a) + " is not a power of two");
  if (a != default_alignment) set("general.alignment", value::u32(a));
  for (auto& kv : kv_)
    if (kv.key.rfind("split.", 0) == 0)
      return make_error(errc::invalid_argument, "the split.* keys are written by the writer itself");

  // Assign tensors to shards.
  shards_.clear();
  shards_.push_back({});
  for (size_t i = 0; i < tensors_.size(); ++i) {
    uint64_t sz = pad_to(tensors_[i].nbytes, a);
    shard& s = shards_.back();
    if (opt_.max_shard_bytes > 0 && s.last > s.first && s.data_bytes + sz > opt_.max_shard_bytes) {
      shards_.push_back({});
      shards_.back().first = shards_.back().last = i;
    }
    shard& cur = shards_.back();
    tensors_[i].offset = cur.data_bytes;
    cur.data_bytes += sz;
    cur.last = i + 1;
  }
  const bool split = shards_.size() > 1;
  if (split && shards_.size() > 65535) return make_error(errc::invalid_argument, "too many shards");
  paths_.clear();
  for (size_t s = 0; s < shards_.size(); ++s)
    paths_.push_back(split ? shard_path(path, int(s) + 1, int(shards_.size())) : path);
  begun_ = true;
  cur_ = 0;
  cur_written_ = 0;
  cur_shard_ = 0;
  for (size_t s = 0; s < shards_.size(); ++s) {
    auto st = start_shard(s);
    if (!st.ok()) {
      abort();
      return st;
    }
  }
  // Zero-size tensors at the start complete immediately.
  while (cur_ < tensors_.size() && tensors_[cur_].nbytes == 0) RAZOR_TRY(finish_tensor());
  return {};
}

status writer::start_shard(size_t si) {
  shard& s = shards_[si];
  const bool split = shards_.size() > 1;
  std::vector<const kv_pair*> kvs;
  std::vector<kv_pair> split_kv;
  if (split) {
    split_kv.push_back({"split.no", value::u16(uint16_t(si))});
    split_kv.push_back({"split.count", value::u16(uint16_t(shards_.size()))});
    split_kv.push_back({"split.tensors.count", value::i32(int32_t(tensors_.size()))});
  }
  if (si == 0)
    for (auto& kv : kv_) kvs.push_back(&kv);
  else if (opt_.alignment != default_alignment)
    for (auto& kv : kv_)
      if (kv.key == "general.alignment") kvs.push_back(&kv);
  for (auto& kv : split_kv) kvs.push_back(&kv);

  std::string h;
  put_u32(h, magic);
  put_u32(h, version);
  put_u64(h, s.last - s.first);
  put_u64(h, kvs.size());
  for (auto* kv : kvs) {
    put_str(h, kv->key);
    put_u32(h, uint32_t(kv->val.type()));
    encode_value(kv->val, h);
  }
  for (size_t i = s.first; i < s.last; ++i) {
    const tensor_info& t = tensors_[i];
    put_str(h, t.name);
    put_u32(h, uint32_t(t.ne.size()));
    for (int64_t d : t.ne) put_u64(h, uint64_t(d));
    put_u32(h, t.type);
    put_u64(h, t.offset);
  }
  h.append(size_t(pad_to(h.size(), opt_.alignment) - h.size()), '\0');
  s.header_bytes = h.size();
  s.out = std::make_unique<atomic_writer>();
  RAZOR_TRY(s.out->open(paths_[si]));
  return s.out->write(h.data(), h.size());
}

status writer::finish_tensor() {
  const tensor_info& t = tensors_[cur_];
  uint64_t pad = pad_to(t.nbytes, opt_.alignment) - t.nbytes;
  while (cur_shard_ < shards_.size() && cur_ >= shards_[cur_shard_].last) ++cur_shard_;
  if (pad) RAZOR_TRY(shards_[cur_shard_].out->write_zeros(size_t(pad)));
  ++cur_;
  cur_written_ = 0;
  while (cur_shard_ < shards_.size() && cur_ >= shards_[cur_shard_].last) ++cur_shard_;
  return {};
}

status writer::write(const void* data, size_t n) {
  if (!begun_ || done_) return make_error(errc::internal, "gguf writer: write outside begin/finish");
  if (!error_.ok()) return error_;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    if (cur_ >= tensors_.size()) {
      error_ = make_error(errc::internal, "gguf writer: more data than the declared tensors hold");
      return error_;
    }
    const tensor_info& t = tensors_[cur_];
    while (cur_shard_ < shards_.size() && cur_ >= shards_[cur_shard_].last) ++cur_shard_;
    uint64_t k = std::min<uint64_t>(n, t.nbytes - cur_written_);
    auto st = shards_[cur_shard_].out->write(p, size_t(k));
    if (!st.ok()) {
      error_ = st;
      return st;
    }
    p += k;
    n -= size_t(k);
    cur_written_ += k;
    if (cur_written_ == t.nbytes) {
      st = finish_tensor();
      if (!st.ok()) return error_ = st;
      while (cur_ < tensors_.size() && tensors_[cur_].nbytes == 0) RAZOR_TRY(finish_tensor());
    }
  }
  return {};
}

status writer::finish() {
  if (!begun_) return make_error(errc::internal, "gguf writer: finish before begin");
  if (!error_.ok()) return error_;
  if (cur_ < tensors_.size())
    return make_error(errc::internal, "gguf writer: tensor '" + tensors_[cur_].name + "' and " +
                                          std::to_string(tensors_.size() - cur_ - 1) + " more were not written");
  for (auto& s : shards_) {
    if (s.out->bytes_written() != s.header_bytes + s.data_bytes)
      return make_error(errc::internal, "gguf writer: shard size mismatch for " + s.out->final_path());
  }
  for (auto& s : shards_) RAZOR_TRY(s.out->commit());
  done_ = true;
  return {};
}

void writer::abort() {
  if (done_) return;
  for (auto& s : shards_)
    if (s.out) s.out->abort();
}

status write_file(const std::string& path, const std::vector<kv_pair>& kv, const std::vector<memory_tensor>& tensors,
                  writer_options o) {
  writer w(o);
  for (auto& p : kv) w.set(p.key, p.val);
  for (auto& t : tensors) RAZOR_TRY(w.add_tensor(t.name, t.ne, t.type));
  RAZOR_TRY(w.begin(path));
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].bytes.size() != w.tensors()[i].nbytes)
      return make_error(errc::shape_mismatch, "tensor '" + tensors[i].name + "': " +
                                                  std::to_string(tensors[i].bytes.size()) + " bytes given, " +
                                                  std::to_string(w.tensors()[i].nbytes) + " expected");
    RAZOR_TRY(w.write(tensors[i].bytes.data(), tensors[i].bytes.size()));
  }
  return w.finish();
}

}  // namespace razor::gguf
