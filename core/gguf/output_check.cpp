#include "gguf/output_check.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "gguf/gguf_file.h"
#include "gguf/imatrix.h"
#include "util/output_guard.h"

namespace fs = std::filesystem;

namespace razor::gguf {

namespace {

// "NAME-00002-of-00005.gguf" -> {"NAME", 2, 5}; false for other names.
bool parse_shard_name(const std::string& file, std::string* base, int* no, int* count) {
  static constexpr size_t kTail = sizeof("-00000-of-00000.gguf") - 1;
  if (file.size() <= kTail) return false;
  const std::string tail = file.substr(file.size() - kTail);
  int a = 0, b = 0, used = 0;
  if (std::sscanf(tail.c_str(), "-%5d-of-%5d.gguf%n", &a, &b, &used) != 2 || size_t(used) != kTail) return false;
  for (size_t i : {1u, 2u, 3u, 4u, 5u, 10u, 11u, 12u, 13u, 14u})
    if (tail[i] < '0' || tail[i] > '9') return false;
  *base = file.substr(0, file.size() - kTail);
  *no = a;
  *count = b;
  return true;
}

std::string stem_of(const std::string& path) {
  std::string base = fs::path(path).filename().string();
  if (base.size() > 5 && base.compare(base.size() - 5, 5, ".gguf") == 0) base.resize(base.size() - 5);
  return base;
}

}  // namespace

status razor_gguf_file(const std::string& path) {
  auto f = file::open(path);
  if (!f) return make_error(errc::bad_format, "not a GGUF file: " + f.error().message());
  auto by = f->get_string("general.quantized_by");
  if (by && by->rfind("razor", 0) == 0) return {};
  // A later shard of a split carries only the split.* keys: it is razor's when the first shard is.
  std::string base;
  int no = 0, count = 0;
  const std::string name = fs::path(path).filename().string();
  if (!by && f->get_int("split.no").value_or(0) > 0 && parse_shard_name(name, &base, &no, &count) && no > 1) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "-%05d-of-%05d.gguf", 1, count);
    const std::string first = (fs::path(path).parent_path() / (base + buf)).string();
    auto ff = file::open(first);
    if (!ff) return make_error(errc::bad_format, "a shard whose first shard " + first + " is missing or unreadable");
    auto fby = ff->get_string("general.quantized_by");
    if (fby && fby->rfind("razor", 0) == 0) return {};
    return make_error(errc::bad_format, "a shard of " + first + ", which razor did not write");
  }
  return make_error(errc::bad_format, by ? "written by \"" + *by + "\"" : "a GGUF without general.quantized_by");
}

result<std::vector<std::string>> check_gguf_output(const std::string& path, const std::vector<std::string>& inputs) {
  std::vector<std::string> existing;
  RAZOR_TRY(check_output_file(path, razor_gguf_file, inputs));
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) existing.push_back(path);
  const fs::path dir = fs::path(path).parent_path().empty() ? fs::path(".") : fs::path(path).parent_path();
  const std::string stem = stem_of(path);
  std::error_code ec;
  std::vector<std::string> shards;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string base;
    int no = 0, count = 0;
    if (parse_shard_name(it->path().filename().string(), &base, &no, &count) && base == stem)
      shards.push_back((fs::path(path).parent_path() / it->path().filename()).string());
  }
  std::sort(shards.begin(), shards.end());
  for (auto& s : shards) {
    RAZOR_TRY(check_output_file(s, razor_gguf_file, inputs));
    existing.push_back(s);
  }
  return existing;
}

std::vector<std::string> remove_stale_gguf_files(const std::vector<std::string>& earlier,
                                                 const std::vector<std::string>& written) {
  std::vector<std::string> removed;
  // Later shards first: each is razor's by its first shard, which goes last.
  auto same = [](const std::string& a, const std::string& b) {
    return fs::path(a).lexically_normal() == fs::path(b).lexically_normal();
  };
  for (auto it = earlier.rbegin(); it != earlier.rend(); ++it) {
    if (std::any_of(written.begin(), written.end(), [&](const std::string& w) { return same(w, *it); })) continue;
    struct stat st {};
    if (::lstat(it->c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (::unlink(it->c_str()) == 0) removed.push_back(*it);
  }
  return removed;
}

status imatrix_file(const std::string& path) {
  auto im = read_imatrix(path);
  if (!im) return make_error(errc::bad_format, "not an importance matrix: " + im.error().message());
  return {};
}

}  // namespace razor::gguf
