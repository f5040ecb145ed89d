#include "gguf/imatrix.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>

#include "gguf/gguf_file.h"
#include "util/atomic_file.h"
#include "util/mapped_file.h"
#include "util/printable.h"

namespace razor::gguf {

static const char* k_in_sum2 = ".in_sum2";
static const char* k_counts = ".counts";
static const char* k_in_sum = ".in_sum";

static bool strip_suffix(std::string& s, const std::string& suf) {
  if (s.size() <= suf.size() || s.compare(s.size() - suf.size(), suf.size(), suf) != 0) return false;
  s.resize(s.size() - suf.size());
  return true;
}

const imatrix_entry* imatrix::find(const std::string& name) const {
  auto it = std::lower_bound(entries.begin(), entries.end(), name,
                             [](const imatrix_entry& e, const std::string& n) { return e.name < n; });
  return it != entries.end() && it->name == name ? &*it : nullptr;
}

result<std::vector<float>> imatrix::weights_for(const std::string& name, int64_t expert) const {
  const imatrix_entry* e = find(name);
  if (!e) return make_error(errc::not_found, source + ": no importance data for '" + name + "'");
  if (expert < 0 || expert >= e->n_mat)
    return make_error(errc::invalid_argument, source + ": '" + name + "' has " + std::to_string(e->n_mat) +
                                                  " matrices, asked for " + std::to_string(expert));
  const int64_t n = e->n_per_row;
  std::vector<float> w(static_cast<size_t>(n));
  const float* s = e->in_sum2.data() + expert * n;
  if (legacy) {
    // llama-quantize: values / ncall (as stored when ncall == 0); ncall is the one count of the entry
    const float ncall = e->counts.empty() ? 0.0f : e->counts[size_t(std::min<int64_t>(expert, int64_t(e->counts.size()) - 1))];
    for (int64_t i = 0; i < n; ++i) w[size_t(i)] = ncall > 0 ? s[i] / ncall : s[i];
  } else {
    const float count = e->counts[size_t(expert)];
    for (int64_t i = 0; i < n; ++i) w[size_t(i)] = count > 0.0f ? s[i] / count : 1.0f;
  }
  return w;
}

status imatrix::match_model(const std::vector<imatrix_target>& targets, const std::string& model) {
  std::map<std::string, const imatrix_target*> by_name;
  for (auto& t : targets) by_name[t.name] = &t;
  std::vector<std::string> unknown;
  for (auto& e : entries) {
    auto it = by_name.find(e.name);
    if (it == by_name.end()) {
      unknown.push_back(e.name);
      continue;
    }
    const imatrix_target& t = *it->second;
    const int64_t nval = e.n_per_row * e.n_mat;
    if (legacy && e.n_mat == 1 && nval == t.n_per_row * t.n_mat && t.n_mat > 1) {
      // The legacy format has no shape: experts are concatenated and share one ncall.
      e.n_per_row = t.n_per_row;
      e.n_mat = t.n_mat;
      e.counts.assign(size_t(t.n_mat), e.counts.empty() ? 0.0f : e.counts[0]);
      continue;
    }
    if (e.n_per_row != t.n_per_row || e.n_mat != t.n_mat)
      return make_error(errc::bad_format, source + ": entry '" + e.name + "' has " + std::to_string(e.n_per_row) +
                                              " columns x " + std::to_string(e.n_mat) + " matrices, but " + model +
                                              "'s tensor has " + std::to_string(t.n_per_row) + " columns x " +
                                              std::to_string(t.n_mat) +
                                              " matrices (was the imatrix made for another model?)");
  }
  if (!unknown.empty()) {
    std::string list;
    for (size_t i = 0; i < unknown.size() && i < 5; ++i) list += (i ? ", " : "") + unknown[i];
    if (unknown.size() > 5) list += ", ... (" + std::to_string(unknown.size()) + " in all)";
    return make_error(errc::bad_format, source + ": " + std::to_string(unknown.size()) +
                                            " entries name no tensor of " + model + ": " + list +
                                            " (was the imatrix made for another model?)");
  }
  return {};
}

// ---- reading ---------------------------------------------------------------------------------------

// Sums of squares are finite and non-negative (sums, `in_sum`, finite): a NaN or a negative importance would
// be accepted by the quantizer's weighted search and silently give a worse model (ppl 2020 instead of 810).
// The first bad value is named by entry, index (expert and column when the shape is known) and value.
static status check_values(const std::vector<float>& v, bool non_negative, const std::string& file,
                           const std::string& entry, const char* part, int64_t n_per_row) {
  for (size_t i = 0; i < v.size(); ++i) {
    const float x = v[i];
    if (std::isfinite(x) && (!non_negative || x >= 0.0f)) continue;
    std::string where = "index " + std::to_string(i);
    if (n_per_row > 0 && int64_t(v.size()) > n_per_row)
      where += " (expert " + std::to_string(int64_t(i) / n_per_row) + ", column " +
               std::to_string(int64_t(i) % n_per_row) + ")";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", double(x));
    return make_error(errc::bad_format, file + ": entry '" + printable(entry) + "' " + part + " " + where +
                                            " is " + buf + " (importance values must be finite" +
                                            (non_negative ? " and non-negative)" : ")"));
  }
  return {};
}

static result<imatrix> parse_gguf_imatrix(const uint8_t* data, size_t size, const std::string& name) {
  RAZOR_ASSIGN_OR_RETURN(file f, file::parse(data, size, name));
  imatrix im;
  im.source = name;
  auto gt = f.get_string("general.type");
  if (gt && *gt != "imatrix")
    return make_error(errc::bad_format, name + ": general.type is \"" + printable(*gt) + "\", not \"imatrix\" (a model file?)");
  if (const value* ds = f.find("imatrix.datasets"); ds && ds->is_array() && ds->elem_type() == value_type::string)
    im.datasets = ds->string_items();
  im.chunk_count = f.get_int("imatrix.chunk_count").value_or(0);
  im.chunk_size = f.get_int("imatrix.chunk_size").value_or(0);

  struct parts {
    const tensor_info *sum2 = nullptr, *counts = nullptr, *sum = nullptr;
  };
  std::map<std::string, parts> by;
  for (auto& t : f.tensors()) {
    std::string n = t.name;
    if (strip_suffix(n, k_in_sum2)) by[n].sum2 = &t;
    else if (strip_suffix(n, k_counts)) by[n].counts = &t;
    else if (strip_suffix(n, k_in_sum)) by[n].sum = &t;
  }
  auto read_f32 = [&](const tensor_info& t, std::vector<float>* out) -> status {
    if (t.type != type_f32)
      return make_error(errc::bad_format, name + ": imatrix tensor '" + printable(t.name) + "' is not F32");
    out->resize(size_t(t.nelements()));
    std::memcpy(out->data(), f.tensor_data(t), out->size() * 4);
    return {};
  };
  for (auto& [n, p] : by) {
    if (!p.sum2 || !p.counts)
      return make_error(errc::bad_format, name + ": entry '" + printable(n) + "' has " +
                                              (p.sum2 ? "no .counts" : "no .in_sum2"));
    imatrix_entry e;
    e.name = n;
    const auto& s2 = *p.sum2;
    if (s2.ne.empty() || s2.ne.size() > 2)
      return make_error(errc::bad_format, name + ": '" + printable(s2.name) + "' must be 1-D or 2-D");
    e.n_per_row = s2.ne[0];
    e.n_mat = s2.ne.size() > 1 ? s2.ne[1] : 1;
    if (p.counts->nelements() != e.n_mat)
      return make_error(errc::bad_format, name + ": '" + printable(n) + "' has " + std::to_string(e.n_mat) + " matrices but " +
                                              std::to_string(p.counts->nelements()) + " counts");
    RAZOR_TRY(read_f32(s2, &e.in_sum2));
    RAZOR_TRY(check_values(e.in_sum2, true, name, n, ".in_sum2", e.n_per_row));
    RAZOR_TRY(read_f32(*p.counts, &e.counts));
    if (p.sum) {
      if (p.sum->nelements() != s2.nelements())
        return make_error(errc::bad_format, name + ": '" + printable(n) + ".in_sum' and '.in_sum2' differ in size");
      RAZOR_TRY(read_f32(*p.sum, &e.in_sum));
      RAZOR_TRY(check_values(e.in_sum, false, name, n, ".in_sum", e.n_per_row));
    }
    RAZOR_TRY(check_values(e.counts, true, name, n, ".counts", 0));
    im.entries.push_back(std::move(e));
  }
  if (im.entries.empty()) return make_error(errc::bad_format, name + ": no imatrix entries (no *.in_sum2 tensors)");
  return im;
}

static result<imatrix> parse_dat_imatrix(const uint8_t* data, size_t size, const std::string& name) {
  size_t pos = 0;
  auto fail = [&](const std::string& what) {
    return make_error(errc::bad_format, name + ": " + what + " (legacy imatrix .dat, at byte " + std::to_string(pos) +
                                            " of " + std::to_string(size) + ")");
  };
  auto get_i32 = [&](int32_t* v) {
    if (size - pos < 4) return false;
    std::memcpy(v, data + pos, 4);
    pos += 4;
    return true;
  };
  imatrix im;
  im.source = name;
  im.legacy = true;
  int32_t n = 0;
  if (!get_i32(&n)) return fail("truncated: no entry count");
  // Each entry needs at least 17 bytes (name length, a 1-byte name, ncall, nval, one value): that bounds n.
  if (n < 1 || uint64_t(n) > (size - pos) / 17)
    return fail("entry count " + std::to_string(n) + " cannot fit in the file's " + std::to_string(size) + " bytes");
  for (int32_t i = 0; i < n; ++i) {
    int32_t len = 0, ncall = 0, nval = 0;
    if (!get_i32(&len)) return fail("truncated in entry " + std::to_string(i));
    if (len < 1 || uint64_t(len) > size - pos) return fail("name length " + std::to_string(len) + " of entry " +
                                                            std::to_string(i) + " is impossible");
    imatrix_entry e;
    e.name.assign(reinterpret_cast<const char*>(data + pos), size_t(len));
    pos += size_t(len);
    if (!get_i32(&ncall) || !get_i32(&nval)) return fail("truncated in entry '" + printable(e.name) + "'");
    if (ncall < 0) return fail("entry '" + printable(e.name) + "' has negative ncall");
    if (nval < 1 || uint64_t(nval) > (size - pos) / 4)
      return fail("entry '" + printable(e.name) + "' claims " + std::to_string(nval) + " values, more than the file holds");
    e.in_sum2.resize(size_t(nval));
    std::memcpy(e.in_sum2.data(), data + pos, size_t(nval) * 4);
    RAZOR_TRY(check_values(e.in_sum2, true, name, e.name, "value", 0));
    pos += size_t(nval) * 4;
    e.n_per_row = nval;
    e.n_mat = 1;
    e.counts = {float(ncall)};
    im.entries.push_back(std::move(e));
  }
  int32_t last = 0, dlen = 0;
  if (get_i32(&last)) {
    im.chunk_count = last;
    if (get_i32(&dlen) && dlen > 0 && uint64_t(dlen) <= size - pos) {
      im.datasets.emplace_back(reinterpret_cast<const char*>(data + pos), size_t(dlen));
      pos += size_t(dlen);
    }
  }
  std::sort(im.entries.begin(), im.entries.end(), [](auto& a, auto& b) { return a.name < b.name; });
  for (size_t i = 1; i < im.entries.size(); ++i)
    if (im.entries[i].name == im.entries[i - 1].name)
      return fail("duplicate entry '" + printable(im.entries[i].name) + "'");
  return im;
}

result<imatrix> parse_imatrix(const uint8_t* data, size_t size, const std::string& name) {
  if (size >= 4 && std::memcmp(data, "GGUF", 4) == 0) return parse_gguf_imatrix(data, size, name);
  return parse_dat_imatrix(data, size, name);
}

result<imatrix> read_imatrix(const std::string& path) {
  RAZOR_ASSIGN_OR_RETURN(mapped_file m, mapped_file::open(path));
  return parse_imatrix(m.data(), m.size(), path);
}

// ---- writing ---------------------------------------------------------------------------------------

static std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

status write_imatrix_gguf(const imatrix& im, const std::string& path) {
  std::vector<kv_pair> kv;
  kv.push_back({"general.type", value::str("imatrix")});
  kv.push_back({"imatrix.datasets", value::strings(im.datasets)});
  kv.push_back({"imatrix.chunk_count", value::u32(uint32_t(std::max<int64_t>(0, im.chunk_count)))});
  kv.push_back({"imatrix.chunk_size", value::u32(uint32_t(std::max<int64_t>(0, im.chunk_size)))});
  std::vector<const imatrix_entry*> sorted;
  for (auto& e : im.entries) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->name < b->name; });
  std::vector<memory_tensor> ts;
  for (auto* e : sorted) {
    if (int64_t(e->in_sum2.size()) != e->n_per_row * e->n_mat)
      return make_error(errc::invalid_argument, "imatrix entry '" + e->name + "': in_sum2 size does not match its shape");
    std::vector<float> counts = e->counts;
    if (counts.size() == 1 && e->n_mat > 1) counts.assign(size_t(e->n_mat), counts[0]);
    if (int64_t(counts.size()) != e->n_mat)
      return make_error(errc::invalid_argument, "imatrix entry '" + e->name + "': counts size does not match n_mat");
    if (!e->in_sum.empty()) {
      if (e->in_sum.size() != e->in_sum2.size())
        return make_error(errc::invalid_argument, "imatrix entry '" + e->name + "': in_sum size mismatch");
    }
    ts.push_back({e->name + k_in_sum2, {e->n_per_row, e->n_mat}, type_f32, f32_bytes(e->in_sum2)});
    ts.push_back({e->name + k_counts, {1, e->n_mat}, type_f32, f32_bytes(counts)});
    if (!e->in_sum.empty()) ts.push_back({e->name + k_in_sum, {e->n_per_row, e->n_mat}, type_f32, f32_bytes(e->in_sum)});
  }
  return write_file(path, kv, ts);
}

status write_imatrix_dat(const imatrix& im, const std::string& path) {
  const int64_t chunk_size = im.chunk_size > 0 ? im.chunk_size : 512;
  std::string out;
  auto put_i32 = [&](int32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  std::vector<const imatrix_entry*> keep;
  for (auto& e : im.entries) {
    bool any = false;
    for (float c : e.counts) any |= c > 0;
    if (any || im.legacy) keep.push_back(&e);  // entries with no data at all are skipped
  }
  std::sort(keep.begin(), keep.end(), [](auto* a, auto* b) { return a->name < b->name; });
  put_i32(int32_t(keep.size()));
  for (auto* e : keep) {
    put_i32(int32_t(e->name.size()));
    out += e->name;
    const int64_t nval = int64_t(e->in_sum2.size());
    if (im.legacy) {  // already in the legacy scaling
      put_i32(int32_t(e->counts.empty() ? 0 : e->counts[0]));
      put_i32(int32_t(nval));
      out.append(reinterpret_cast<const char*>(e->in_sum2.data()), size_t(nval) * 4);
      continue;
    }
    const float maxc = e->counts.empty() ? 0.0f : *std::max_element(e->counts.begin(), e->counts.end());
    const int32_t ncall = int32_t((int64_t(std::llround(maxc)) + (chunk_size - 1)) / chunk_size);
    put_i32(ncall);
    put_i32(int32_t(nval));
    const int64_t per = e->n_mat > 0 ? nval / e->n_mat : nval;
    for (int64_t i = 0; i < nval; ++i) {
      float count = e->counts[size_t(std::min<int64_t>(i / per, int64_t(e->counts.size()) - 1))];
      float v = e->in_sum2[size_t(i)];
      if (count == 0.0f) {
        v = 1.0f;
        count = 1.0f;
      }
      float t = (v / count) * float(ncall);
      out.append(reinterpret_cast<const char*>(&t), 4);
    }
  }
  put_i32(int32_t(im.chunk_count));
  std::string ds = im.datasets.empty() ? std::string() : im.datasets.back();
  put_i32(int32_t(ds.size()));
  out += ds;
  return write_file_atomic(path, out);
}

}  // namespace razor::gguf
