// Reading GGUF files (gguf_file.h): the container's view of the ggml types (geometry only) and the reader,
// which checks every count, offset and size against the file before using it.
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
// ggml type table (container view: geometry only)
// ---------------------------------------------------------------------------------------------------
// Every row of the one type table (ggml::known_types: the types we write and the "no quantizer" ones we
// only read), sorted by id.
static const std::vector<type_traits>& type_list() {
  static const std::vector<type_traits> all = [] {
    std::vector<type_traits> v;
    for (const auto& g : ggml::known_types)  // names are string literals: NUL-terminated
      v.push_back({g.id, g.name.data(), g.block_size, g.type_size});
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
// reader
// ---------------------------------------------------------------------------------------------------
namespace {

struct cursor {
  const uint8_t* p;
  uint64_t size, pos = 0;
  const std::string& name;
  uint64_t budget = max_metadata_memory;  // bytes the metadata may still take in memory
  uint64_t left() const { return size - pos; }
  // Takes `bytes` of the memory budget before they are allocated: a file of zeros (an 8 GB sparse file reads as
  // valid empty strings) must not be able to ask for more than max_metadata_memory.
  status charge(uint64_t bytes, const std::string& what) {
    if (bytes > budget)
      return fail(what + " would take the metadata past " + std::to_string(max_metadata_memory >> 20) +
                  " MiB in memory (razor's limit for GGUF metadata)");
    budget -= bytes;
    return {};
  }
  status fail(const std::string& what) const {
    return make_error(errc::bad_format, printable(name) + ": " + what + " (at byte " + std::to_string(pos) + " of " +
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
  // A string of at most max_n bytes (longer: an error quoting its first 80 bytes, before anything is copied).
  status get_str(std::string* s, const char* what, uint64_t max_n = UINT64_MAX) {
    uint64_t n = 0;
    RAZOR_TRY(get(&n, what));
    if (n > left())
      return fail(std::string(what) + " length " + std::to_string(n) + " runs past the end of the file");
    if (n > max_n)
      return fail(std::string(what) + " '" +
                  printable(std::string_view(reinterpret_cast<const char*>(p + pos), size_t(std::min<uint64_t>(n, 80))), 80) +
                  "' has " + std::to_string(n) + " bytes, longer than the limit of " + std::to_string(max_n));
    RAZOR_TRY(charge(n, what));
    s->assign(reinterpret_cast<const char*>(p + pos), size_t(n));
    pos += n;
    return {};
  }
};

}  // namespace

struct value_codec {
  static status read(cursor& c, value_type t, value* out, int depth, const std::string& key) {
    out->type_ = t;
    if (t == value_type::string) return c.get_str(&out->str_, ("string value of " + printable(key)).c_str());
    if (t != value_type::array) {
      size_t w = value_type_size(t);
      RAZOR_TRY(c.need(w, "scalar value"));
      out->bits_ = 0;
      std::memcpy(&out->bits_, c.p + c.pos, w);
      if (t == value_type::boolean && out->bits_ > 1)
        return c.fail("key '" + printable(key) + "': BOOL value " + std::to_string(out->bits_) + " is neither 0 nor 1");
      c.pos += w;
      return {};
    }
    if (depth >= max_array_depth) return c.fail("key '" + printable(key) + "': arrays nested deeper than " +
                                                std::to_string(max_array_depth));
    uint32_t et = 0;
    uint64_t n = 0;
    RAZOR_TRY(c.get(&et, "array element type"));
    if (!value_type_known(et))
      return c.fail("key '" + printable(key) + "': unknown array element type " + std::to_string(et));
    RAZOR_TRY(c.get(&n, "array length"));
    out->elem_ = value_type(et);
    // Every element needs at least this many bytes, which bounds n by the file size.
    uint64_t min_elem = out->elem_ == value_type::string ? 8 : out->elem_ == value_type::array ? 12
                                                                                              : value_type_size(out->elem_);
    if (n > c.left() / min_elem)
      return c.fail("key '" + printable(key) + "': array of " + std::to_string(n) + " " +
                    std::string(value_type_name(out->elem_)) + " items cannot fit in the rest of the file");
    if (n > max_array_items)
      return c.fail("key '" + printable(key) + "': array of " + std::to_string(n) + " items, more than razor's limit of " +
                    std::to_string(max_array_items));
    const uint64_t item_memory = out->elem_ == value_type::string  ? sizeof(std::string)
                                 : out->elem_ == value_type::array ? sizeof(value)
                                                                   : min_elem;
    RAZOR_TRY(c.charge(n * item_memory, "key '" + printable(key) + "': array of " + std::to_string(n) + " items"));
    out->count_ = size_t(n);
    if (out->elem_ == value_type::string) {
      out->strs_.resize(size_t(n));
      const std::string what = "string in array " + printable(key);
      for (auto& s : out->strs_) RAZOR_TRY(c.get_str(&s, what.c_str()));
    } else if (out->elem_ == value_type::array) {
      out->arrs_.resize(size_t(n));
      for (auto& a : out->arrs_) RAZOR_TRY(read(c, value_type::array, &a, depth + 1, key));
    } else {
      uint64_t bytes = n * min_elem;
      out->raw_.assign(c.p + c.pos, c.p + c.pos + bytes);
      if (out->elem_ == value_type::boolean)
        for (uint8_t b : out->raw_)
          if (b > 1) return c.fail("key '" + printable(key) + "': BOOL array item is neither 0 nor 1");
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
  // Minimum encoded sizes: kv = key len(8) + a key of 1 byte + type(4) + 1 byte value; tensor info = 8 + 4 +
  // 4 + 8. Both counts are bounded by the bytes left and by razor's limits (a file of zeros can hold counts that
  // fit its size: the limits, and reserving no more than a few thousand entries ahead, keep memory bounded).
  if (n_kv > c.left() / 14)
    return c.fail("metadata count " + std::to_string(n_kv) + " cannot fit in the file");
  if (n_kv > max_kv)
    return c.fail("metadata count " + std::to_string(n_kv) + " is more than razor's limit of " + std::to_string(max_kv));
  if (n_tensors > c.left() / 24)
    return c.fail("tensor count " + std::to_string(n_tensors) + " cannot fit in the file");
  if (n_tensors > max_tensors)
    return c.fail("tensor count " + std::to_string(n_tensors) + " is more than razor's limit of " +
                  std::to_string(max_tensors));
  constexpr uint64_t kReserveAhead = 4096;

  f.kv_.reserve(size_t(std::min(n_kv, kReserveAhead)));
  for (uint64_t i = 0; i < n_kv; ++i) {
    kv_pair kv;
    RAZOR_TRY(c.get_str(&kv.key, ("key of metadata entry " + std::to_string(i)).c_str()));
    if (kv.key.empty()) return c.fail("metadata entry " + std::to_string(i) + " has an empty key");
    uint32_t t = 0;
    RAZOR_TRY(c.get(&t, "value type"));
    if (!value_type_known(t))
      return c.fail("key '" + printable(kv.key) + "' has unknown value type " + std::to_string(t));
    RAZOR_TRY(value_codec::read(c, value_type(t), &kv.val, 0, kv.key));
    if (!f.kv_index_.emplace(kv.key, f.kv_.size()).second) return c.fail("duplicate key '" + printable(kv.key) + "'");
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

  f.tensors_.reserve(size_t(std::min(n_tensors, kReserveAhead)));
  uint64_t expect_offset = 0;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    tensor_info t;
    RAZOR_TRY(c.get_str(&t.name, ("name of tensor " + std::to_string(i)).c_str(), max_name_bytes));
    uint32_t nd = 0;
    RAZOR_TRY(c.get(&nd, "n_dims"));
    if (nd > uint32_t(max_dims))
      return c.fail("tensor '" + printable(t.name) + "' has " + std::to_string(nd) + " dimensions (at most 4)");
    t.ne.resize(nd);
    for (uint32_t d = 0; d < nd; ++d) {
      uint64_t v = 0;
      RAZOR_TRY(c.get(&v, "dimension"));
      if (v > uint64_t(std::numeric_limits<int64_t>::max()))
        return c.fail("tensor '" + printable(t.name) + "' dimension " + std::to_string(d) + " is " + std::to_string(v));
      t.ne[d] = int64_t(v);
    }
    RAZOR_TRY(c.get(&t.type, "tensor type"));
    const type_traits* tt = find_type(t.type);
    if (!tt) return c.fail("tensor '" + printable(t.name) + "' has unknown ggml type " + std::to_string(t.type));
    RAZOR_TRY(c.get(&t.offset, "tensor offset"));
    auto nb = tensor_bytes(t.type, t.ne);
    if (!nb) {
      std::string shape;
      for (auto d : t.ne) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
      if (!t.ne.empty() && t.ne[0] % tt->block_size != 0)
        return c.fail("tensor '" + printable(t.name) + "' {" + shape + "}: ne[0] is not a multiple of " + tt->name +
                      "'s block size " + std::to_string(tt->block_size));
      return c.fail("tensor '" + printable(t.name) + "' {" + shape + "}: element count overflows");
    }
    t.nbytes = *nb;
    if (t.offset != expect_offset)
      return c.fail("tensor '" + printable(t.name) + "' has offset " + std::to_string(t.offset) + ", expected " +
                    std::to_string(expect_offset) + " (tensors must follow each other, padded to " +
                    std::to_string(f.alignment_) + ")");
    uint64_t padded = t.nbytes + (f.alignment_ - t.nbytes % f.alignment_) % f.alignment_;
    if (t.nbytes > size || expect_offset > size - t.nbytes)
      return c.fail("tensor '" + printable(t.name) + "' (" + std::to_string(t.nbytes) + " bytes at offset " +
                    std::to_string(t.offset) + ") runs past the end of the file");
    expect_offset += padded;
    if (!f.tensor_index_.emplace(t.name, f.tensors_.size()).second)
      return c.fail("duplicate tensor name '" + printable(t.name) + "'");
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

}  // namespace razor::gguf
