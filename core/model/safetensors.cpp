#include "model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace razor {

int64_t st_tensor::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

// A header larger than this is not a real checkpoint (the 122B's largest shard header is ~2 MB).
static constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

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
    return make_error(errc::bad_format, path + ": header length " + std::to_string(n) + " is absurd");
  st_header h;
  h.header_len = n;
  h.data_offset = 8 + n;
  h.data_size = file_size - h.data_offset;
  nlohmann::json j = nlohmann::json::parse(data + 8, data + 8 + n, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return make_error(errc::bad_format, path + ": header is not a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) return make_error(errc::bad_format, path + ": __metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m)
        h.metadata[m.key()] = m.value().is_string() ? m.value().get<std::string>() : m.value().dump();
      continue;
    }
    auto where = path + ": tensor '" + name + "'";
    if (!v.is_object()) return make_error(errc::bad_format, where + ": entry is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string() || sh == v.end() || !sh->is_array() || off == v.end() ||
        !off->is_array() || off->size() != 2)
      return make_error(errc::bad_format, where + ": needs dtype, shape and data_offsets [begin, end]");
    st_tensor t;
    t.name = name;
    t.dt = dtype_from_name(dt->get<std::string>());
    if (t.dt == dtype::unknown)
      return make_error(errc::unsupported, where + ": unknown dtype '" + dt->get<std::string>() + "'");
    if (sh->size() > 8) return make_error(errc::bad_format, where + ": more than 8 dimensions");
    uint64_t numel = 1;
    for (auto& d : *sh) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        return make_error(errc::bad_format, where + ": shape holds a non-integer or negative dimension");
      uint64_t dv = d.get<uint64_t>();
      if (dv != 0 && numel > std::numeric_limits<uint64_t>::max() / dv / 8)
        return make_error(errc::bad_format, where + ": shape overflows");
      numel *= dv;
      t.shape.push_back(int64_t(dv));
    }
    for (auto& o : *off)
      if (!o.is_number_unsigned() && !(o.is_number_integer() && o.get<int64_t>() >= 0))
        return make_error(errc::bad_format, where + ": data_offsets are not non-negative integers");
    t.begin = (*off)[0].get<uint64_t>();
    t.end = (*off)[1].get<uint64_t>();
    if (t.end < t.begin) return make_error(errc::bad_format, where + ": data_offsets end before they begin");
    if (t.end > h.data_size)
      return make_error(errc::bad_format, where + ": data [" + std::to_string(t.begin) + ", " +
                                              std::to_string(t.end) + ") runs past the data section (" +
                                              std::to_string(h.data_size) + " bytes; file truncated?)");
    uint64_t want = numel * dtype_size(t.dt);
    if (t.end - t.begin != want)
      return make_error(errc::shape_mismatch, where + ": shape " + nlohmann::json(t.shape).dump() + " of " +
                                                  std::string(dtype_name(t.dt)) + " needs " + std::to_string(want) +
                                                  " bytes but data_offsets give " + std::to_string(t.end - t.begin));
    h.tensors.push_back(std::move(t));
  }
  std::sort(h.tensors.begin(), h.tensors.end(), [](auto& a, auto& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < h.tensors.size(); ++i) {
    const auto& a = h.tensors[i - 1];
    const auto& b = h.tensors[i];
    if (b.begin < a.end && a.nbytes() > 0 && b.nbytes() > 0)
      return make_error(errc::bad_format, path + ": tensors '" + a.name + "' and '" + b.name + "' overlap");
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
