#include "model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "util/json_limits.h"
#include "util/printable.h"

namespace razor {

int64_t tensor_desc::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

// A header larger than this is not a real checkpoint (the 122B's largest shard header is ~2 MB).
static constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

namespace {

// The header read event by event (nlohmann's SAX interface) straight into st_header: no DOM is built, so a
// hostile header costs at most what its tensors need (a 50 MB header of '[' is refused at its first byte
// instead of growing a 4 GB tree). Each tensor's fields are collected, bounded (at most 9 dimensions and 3
// offsets are kept: one more than valid, to say so), and checked when its object closes. A handler that
// finds a problem stores it in `err` and returns false, which stops the parse.
class header_reader final : public nlohmann::json::json_sax_t {
 public:
  header_reader(st_header& h, const std::string& path) : h_(h), path_(path) {}
  status err;

  bool null() override {
    text_ = "null";
    return scalar(kind::other);
  }
  bool boolean(bool b) override {
    text_ = b ? "true" : "false";
    return scalar(kind::other);
  }
  bool number_integer(number_integer_t v) override {
    if (v >= 0) return number_unsigned(number_unsigned_t(v));
    text_ = std::to_string(v);
    return scalar(kind::bad_number);
  }
  bool number_unsigned(number_unsigned_t v) override {
    num_ = v;
    return scalar(kind::uint);
  }
  bool number_float(number_float_t, const string_t& s) override {
    text_ = s;
    return scalar(kind::bad_number);
  }
  bool string(string_t& v) override {
    text_ = std::move(v);
    return scalar(kind::string);
  }
  bool binary(binary_t&) override {  // not produced by the JSON parser
    text_ = "binary";
    return scalar(kind::other);
  }

  bool start_object(std::size_t) override {
    if (skip_ > 0) return ++skip_, true;
    if (depth_ >= 2) return container_value();
    if (depth_ == 1) {
      if (name_ == "__metadata__") in_metadata_ = true;
      else cur_ = entry{};
    }
    ++depth_;
    return true;
  }
  bool end_object() override {
    if (skip_ > 0) return --skip_, true;
    --depth_;
    if (depth_ == 1) {
      if (in_metadata_) {
        in_metadata_ = false;
        return true;
      }
      return finish_entry();
    }
    return true;
  }
  bool start_array(std::size_t) override {
    if (skip_ > 0) return ++skip_, true;
    if (depth_ == 0) return fail(path_ + ": header is not a JSON object");
    if (depth_ == 2 && !in_metadata_ && (field_ == "shape" || field_ == "data_offsets")) {
      (field_ == "shape" ? cur_.shape_array : cur_.offsets_array) = true;
      array_ = field_ == "shape" ? &cur_.shape : &cur_.offsets;
      ++depth_;
      return true;
    }
    return container_value();
  }
  bool end_array() override {
    if (skip_ > 0) return --skip_, true;
    --depth_;
    array_ = nullptr;
    return true;
  }
  bool key(string_t& k) override {
    if (skip_ > 0) return true;
    if (depth_ == 1) {
      if (!names_.insert(k).second)
        return fail(path_ + ": tensor '" + printable(k) +
                    "' appears twice in the header (which one counts is undefined in JSON)");
      name_ = std::move(k);
    } else if (in_metadata_) {
      if (h_.metadata.count(k)) return fail(path_ + ": __metadata__ key '" + printable(k) + "' appears twice");
      field_ = std::move(k);
    } else {
      if ((k == "dtype" && cur_.has_dtype_key) || (k == "shape" && cur_.has_shape_key) ||
          (k == "data_offsets" && cur_.has_offsets_key))
        return fail(where() + ": key '" + k + "' appears twice");
      cur_.has_dtype_key |= k == "dtype";
      cur_.has_shape_key |= k == "shape";
      cur_.has_offsets_key |= k == "data_offsets";
      field_ = std::move(k);
    }
    return true;
  }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& e) override {
    return fail(path_ + ": header is not valid JSON at byte " + std::to_string(8 + (pos > 0 ? pos - 1 : 0)) + ": " +
                json_error_detail(e.what()));
  }

 private:
  enum class kind { uint, bad_number, string, other };
  struct entry {
    std::string dtype;
    bool dtype_string = false, shape_array = false, offsets_array = false, bad_dim = false, bad_offset = false;
    bool has_dtype_key = false, has_shape_key = false, has_offsets_key = false;
    std::vector<uint64_t> shape, offsets;
    size_t n_shape = 0, n_offsets = 0;  // items seen, kept or not
  };

  std::string where() const { return path_ + ": tensor '" + printable(name_) + "'"; }
  bool fail(std::string m) {
    err = make_error(errc::bad_format, std::move(m));
    return false;
  }
  // An array or object where a scalar or nothing of interest belongs: skipped (a tensor's unknown keys), or
  // an error where the format wants a scalar.
  bool container_value() {
    if (depth_ == 1) {
      if (name_ == "__metadata__") return fail(path_ + ": __metadata__ is not an object");
      return fail(where() + ": entry is not an object");
    }
    if (in_metadata_ && depth_ == 2)
      return fail(path_ + ": __metadata__ value '" + printable(field_) + "' is not a string");
    if (array_) (array_ == &cur_.shape ? cur_.bad_dim : cur_.bad_offset) = true;
    skip_ = 1;
    return true;
  }
  bool scalar(kind k) {
    if (skip_ > 0) return true;
    if (depth_ == 0) return fail(path_ + ": header is not a JSON object");
    if (depth_ == 1) {
      if (name_ == "__metadata__") return fail(path_ + ": __metadata__ is not an object");
      return fail(where() + ": entry is not an object");
    }
    if (in_metadata_) {  // strings by the format; other scalars kept as their JSON text
      h_.metadata[field_] = k == kind::uint ? std::to_string(num_) : text_;
      return true;
    }
    if (array_) {
      const bool shape = array_ == &cur_.shape;
      size_t& n = shape ? cur_.n_shape : cur_.n_offsets;
      if (k != kind::uint) (shape ? cur_.bad_dim : cur_.bad_offset) = true;
      else if (array_->size() < (shape ? 9u : 3u)) array_->push_back(num_);
      ++n;
      return true;
    }
    if (field_ == "dtype" && k == kind::string) {
      cur_.dtype = text_;
      cur_.dtype_string = true;
    }
    return true;
  }
  // The same checks, in the same order, as a DOM-based reader would make.
  bool finish_entry() {
    const entry& e = cur_;
    const std::string w = where();
    if (!e.dtype_string || !e.shape_array || !e.offsets_array || e.n_offsets != 2)
      return fail(w + ": needs dtype, shape and data_offsets [begin, end]");
    st_tensor t;
    t.name = name_;
    t.dt = dtype_from_name(e.dtype);
    if (t.dt == dtype::unknown) {
      err = make_error(errc::unsupported, w + ": unknown dtype '" + printable(e.dtype) + "'");
      return false;
    }
    if (e.n_shape > 8) return fail(w + ": more than 8 dimensions");
    if (e.bad_dim) return fail(w + ": shape holds a non-integer or negative dimension");
    uint64_t numel = 1;
    for (uint64_t dv : e.shape) {
      if (dv != 0 && numel > std::numeric_limits<uint64_t>::max() / dv / 8) return fail(w + ": shape overflows");
      if (dv > uint64_t(std::numeric_limits<int64_t>::max())) return fail(w + ": shape overflows");
      numel *= dv;
      t.shape.push_back(int64_t(dv));
    }
    if (e.bad_offset || e.offsets.size() != 2) return fail(w + ": data_offsets are not non-negative integers");
    t.begin = e.offsets[0];
    t.end = e.offsets[1];
    if (t.end < t.begin) return fail(w + ": data_offsets end before they begin");
    if (t.end > h_.data_size)
      return fail(w + ": data [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                  ") runs past the data section (" + std::to_string(h_.data_size) + " bytes; file truncated?)");
    uint64_t want = numel * dtype_size(t.dt);
    if (t.end - t.begin != want) {
      err = make_error(errc::shape_mismatch, w + ": shape " + nlohmann::json(t.shape).dump() + " of " +
                                                 std::string(dtype_name(t.dt)) + " needs " + std::to_string(want) +
                                                 " bytes but data_offsets give " + std::to_string(t.end - t.begin));
      return false;
    }
    h_.tensors.push_back(std::move(t));
    return true;
  }

  st_header& h_;
  const std::string& path_;
  int depth_ = 0;       // containers open, not counting skipped ones
  size_t skip_ = 0;     // > 0: inside a value being skipped, its nesting
  bool in_metadata_ = false;
  std::string name_, field_, text_;
  uint64_t num_ = 0;
  entry cur_;
  std::vector<uint64_t>* array_ = nullptr;  // the shape or data_offsets being read
  std::unordered_set<std::string> names_;
};

}  // namespace

result<st_header> parse_safetensors_header(const uint8_t* data, uint64_t file_size, const std::string& path) {
  if (file_size < 8)
    return make_error(errc::bad_format, path + ": truncated: " + std::to_string(file_size) +
                                            " bytes, not even the 8-byte header length");
  uint64_t n = 0;
  std::memcpy(&n, data, 8);
  if (n > file_size - 8)
    return make_error(errc::bad_format, path + ": header length " + std::to_string(n) +
                                            " runs past the end of the file (" + std::to_string(file_size) +
                                            " bytes)");
  if (n > kMaxHeaderBytes)
    return make_error(errc::bad_format, path + ": header length " + std::to_string(n) + " is absurd (more than " +
                                            std::to_string(kMaxHeaderBytes) + " bytes)");
  st_header h;
  h.header_len = n;
  h.data_offset = 8 + n;
  h.data_size = file_size - h.data_offset;
  const char* text = reinterpret_cast<const char*>(data + 8);
  // A valid header is 3 levels deep; the general limit keeps the error message about depth, with its byte.
  if (auto at = json_depth_exceeded(std::string_view(text, size_t(n)), kJsonMaxDepth))
    return make_error(errc::bad_format, path + ": header nested deeper than " + std::to_string(kJsonMaxDepth) +
                                            " levels at byte " + std::to_string(8 + *at));
  header_reader reader(h, path);
  bool ok = false;
  try {
    ok = nlohmann::json::sax_parse(text, text + n, &reader);
  } catch (const std::exception& e) {  // bad_alloc; the reader itself throws nothing
    return make_error(errc::bad_format, path + ": header cannot be read (" + printable(e.what()) + ")");
  }
  if (!ok) {
    if (!reader.err.ok()) return reader.err;
    return make_error(errc::bad_format, path + ": header is not a JSON object");
  }
  std::sort(h.tensors.begin(), h.tensors.end(), [](auto& a, auto& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < h.tensors.size(); ++i) {
    const auto& a = h.tensors[i - 1];
    const auto& b = h.tensors[i];
    if (b.begin < a.end && a.nbytes() > 0 && b.nbytes() > 0)
      return make_error(errc::bad_format, path + ": tensors '" + printable(a.name) + "' and '" + printable(b.name) +
                                              "' overlap");
  }
  return h;
}

result<safetensors_file> safetensors_file::open(const std::string& path) {
  RAZOR_ASSIGN_OR_RETURN(mapped_file m, mapped_file::open(path));
  RAZOR_ASSIGN_OR_RETURN(st_header h, parse_safetensors_header(m.data(), m.size(), path));
  safetensors_file f;
  f.map_ = std::move(m);
  f.header_ = std::move(h);
  return f;
}

status safetensors_writer::add(const std::string& name, dtype dt, std::vector<int64_t> shape) {
  if (dt == dtype::unknown) return make_error(errc::invalid_argument, name + ": unknown dtype");
  for (auto& d : decls_)
    if (d.name == name) return make_error(errc::invalid_argument, name + ": declared twice");
  uint64_t n = 1;
  for (auto s : shape) {
    if (s < 0) return make_error(errc::invalid_argument, name + ": negative dimension");
    n *= uint64_t(s);
  }
  uint64_t bytes = n * dtype_size(dt);
  decls_.push_back({name, dt, std::move(shape), total_, total_ + bytes});
  total_ += bytes;
  return {};
}

status safetensors_writer::begin(const std::string& path) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (auto& [k, v] : metadata_) m[k] = v;
    h["__metadata__"] = m;
  }
  for (auto& d : decls_)
    h[d.name] = {{"dtype", std::string(dtype_name(d.dt))}, {"shape", d.shape}, {"data_offsets", {d.begin, d.end}}};
  std::string s = h.dump();
  while (s.size() % 8) s.push_back(' ');
  uint64_t n = s.size();
  RAZOR_TRY(out_.open(path));
  RAZOR_TRY(out_.write(&n, 8));
  RAZOR_TRY(out_.write(s.data(), s.size()));
  written_ = 0;
  return {};
}

status safetensors_writer::write(const void* bytes, size_t n) {
  if (written_ + n > total_)
    return make_error(errc::internal, out_.final_path() + ": more tensor bytes written than declared");
  RAZOR_TRY(out_.write(bytes, n));
  written_ += n;
  return {};
}

status safetensors_writer::skip(uint64_t n) {
  if (written_ + n > total_)
    return make_error(errc::internal, out_.final_path() + ": more tensor bytes skipped than declared");
  RAZOR_TRY(out_.skip(n));
  written_ += n;
  return {};
}

status safetensors_writer::finish() {
  if (written_ != total_)
    return make_error(errc::internal, out_.final_path() + ": " + std::to_string(written_) + " of " +
                                          std::to_string(total_) + " declared tensor bytes written");
  return out_.commit();
}

}  // namespace razor
