// Writing GGUF files (gguf_file.h): value encoding and the writer (one file or a split set, atomic).
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

uint64_t writer::planned_bytes() const {
  uint64_t n = encode_header(0, 1, 0, tensors_.size()).size();
  for (auto& t : tensors_) n += pad_to(t.nbytes, opt_.alignment);
  return n;
}

std::string writer::encode_header(size_t si, size_t n_shards, size_t first, size_t last) const {
  const bool split = n_shards > 1;
  std::vector<const kv_pair*> kvs;
  std::vector<kv_pair> split_kv;
  // general.alignment is written when not the default (after the declared keys, unless declared).
  const kv_pair align_kv{"general.alignment", value::u32(opt_.alignment)};
  const kv_pair* align = nullptr;
  if (opt_.alignment != default_alignment) {
    align = &align_kv;
    for (auto& kv : kv_)
      if (kv.key == "general.alignment") align = &kv;
  }
  if (split) {
    split_kv.push_back({"split.no", value::u16(uint16_t(si))});
    split_kv.push_back({"split.count", value::u16(uint16_t(n_shards))});
    split_kv.push_back({"split.tensors.count", value::i32(int32_t(tensors_.size()))});
  }
  if (si == 0)
    for (auto& kv : kv_) kvs.push_back(&kv);
  if (align && (si != 0 || align == &align_kv)) kvs.push_back(align);
  for (auto& kv : split_kv) kvs.push_back(&kv);

  std::string h;
  put_u32(h, magic);
  put_u32(h, version);
  put_u64(h, last - first);
  put_u64(h, kvs.size());
  for (auto* kv : kvs) {
    put_str(h, kv->key);
    put_u32(h, uint32_t(kv->val.type()));
    encode_value(kv->val, h);
  }
  for (size_t i = first; i < last; ++i) {
    const tensor_info& t = tensors_[i];
    put_str(h, t.name);
    put_u32(h, uint32_t(t.ne.size()));
    for (int64_t d : t.ne) put_u64(h, uint64_t(d));
    put_u32(h, t.type);
    put_u64(h, t.offset);
  }
  h.append(size_t(pad_to(h.size(), opt_.alignment) - h.size()), '\0');
  return h;
}

status writer::start_shard(size_t si) {
  shard& s = shards_[si];
  const std::string h = encode_header(si, shards_.size(), s.first, s.last);
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
