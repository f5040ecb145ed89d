#include "util/output_guard.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace razor {

namespace {

constexpr size_t kMaxEntries = 200000;  // a checkpoint folder holds tens to a few thousand files
constexpr size_t kMaxMarkerBytes = size_t(64) << 20;

status refuse(const std::string& path, const std::string& why) {
  return make_error(errc::invalid_argument, path + ": refused as an output: " + why);
}

// What stands at an output name now (lstat: a link is not followed); nullopt when nothing does yet.
result<std::optional<struct stat>> existing_entry(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) return std::optional<struct stat>(st);
  if (errno == ENOENT) return std::optional<struct stat>();
  return make_error(errc::io, path + ": " + std::strerror(errno));
}

fs::path canonical_or_normal(const std::string& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  if (ec) c = fs::absolute(p, ec).lexically_normal();
  std::string s = c.string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return fs::path(s);
}

// Whether `inner` is `outer` or lies below it (both canonical).
bool within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin(), o = outer.begin();
  for (; o != outer.end(); ++o, ++i)
    if (i == inner.end() || *i != *o) return false;
  return true;
}

status check_inputs(const std::string& out, const std::vector<std::string>& inputs, bool folder_output) {
  if (inputs.empty()) return {};
  const fs::path co = canonical_or_normal(out);
  struct stat so {};
  const bool out_exists = ::stat(out.c_str(), &so) == 0;
  for (const auto& in : inputs) {
    if (in.empty()) continue;
    const fs::path ci = canonical_or_normal(in);
    struct stat si {};
    const bool in_exists = ::stat(in.c_str(), &si) == 0;
    if (ci == co || (out_exists && in_exists && so.st_dev == si.st_dev && so.st_ino == si.st_ino))
      return refuse(out, "it is this job's input " + in + "; razor never replaces what it reads");
    if (within(ci, co)) return refuse(out, "it contains this job's input " + in);
    if (folder_output && in_exists && S_ISDIR(si.st_mode) && within(co, ci))
      return refuse(out, "it lies inside this job's input folder " + in + "; write the output beside it");
  }
  return {};
}

// Every path under `dir` relative to it (folders with a trailing '/'), the marker excluded; sorted.
result<std::vector<std::string>> list_tree(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::string rel = it->path().lexically_relative(dir).generic_string();
    if (rel == kOutputMarker) continue;
    std::error_code ec2;
    if (it->is_directory(ec2) && !it->is_symlink(ec2)) rel += '/';
    out.push_back(std::move(rel));
    if (out.size() > kMaxEntries)
      return refuse(dir, "it holds more than " + std::to_string(kMaxEntries) + " entries to check");
  }
  if (ec) return refuse(dir, "its contents cannot be listed (" + ec.message() + ")");
  std::sort(out.begin(), out.end());
  return out;
}

std::string first_few(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < 3; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > 3) s += " and " + std::to_string(v.size() - 3) + " more";
  return s;
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

status check_output_dir(const std::string& dir, const std::vector<std::string>& inputs) {
  if (dir.empty()) return make_error(errc::invalid_argument, "the output folder is empty");
  RAZOR_TRY(check_inputs(dir, inputs, true));
  RAZOR_ASSIGN_OR_RETURN(const std::optional<struct stat> st, existing_entry(dir));
  if (!st) return {};
  if (S_ISLNK(st->st_mode))
    return refuse(dir, "it is a symbolic link; razor replaces only a folder it wrote, give the folder itself");
  if (!S_ISDIR(st->st_mode))
    return refuse(dir, "it is a file, and razor writes a folder here; it never replaces a file it did not write");
  RAZOR_ASSIGN_OR_RETURN(std::vector<std::string> found, list_tree(dir));
  std::error_code ec;
  const std::string mpath = (fs::path(dir) / kOutputMarker).string();
  const bool has_marker = fs::is_regular_file(mpath, ec);
  if (found.empty() && !has_marker) return {};  // an empty folder
  const std::string hint = "; razor replaces only a folder it wrote itself (its " + std::string(kOutputMarker) +
                           " marker lists every file); choose another output folder or move the files away";
  if (!has_marker) return refuse(dir, "it holds files razor did not write (" + first_few(found) + ")" + hint);
  auto text = read_text_file(mpath, kMaxMarkerBytes);
  if (!text) return refuse(dir, "its marker " + mpath + " cannot be read (" + text.error().message() + ")" + hint);
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("format", "") != "razor.output/1" || !j.contains("files") ||
      !j["files"].is_array())
    return refuse(dir, "its marker " + mpath + " is not a razor.output/1 marker" + hint);
  std::set<std::string> listed;
  for (auto& f : j["files"])
    if (f.is_string()) listed.insert(f.get<std::string>());
  std::vector<std::string> extra;
  for (auto& f : found)
    if (!listed.count(f)) extra.push_back(f);
  if (!extra.empty())
    return refuse(dir, "it holds files added after razor wrote it (" + first_few(extra) + ")" + hint);
  return {};
}

status write_output_marker(const std::string& dir, const std::string& command) {
  RAZOR_ASSIGN_OR_RETURN(std::vector<std::string> files, list_tree(dir));
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  nlohmann::json j;
  j["format"] = "razor.output/1";
  j["command"] = command;
  j["version"] = RAZOR_VERSION;
  j["created"] = utc_now();
  j["host"] = std::string(host);
  j["pid"] = int64_t(::getpid());
  j["files"] = files;
  return write_file_atomic((fs::path(dir) / kOutputMarker).string(), j.dump(1) + "\n");
}

status check_output_file(const std::string& path, const own_test& own, const std::vector<std::string>& inputs) {
  if (path.empty()) return make_error(errc::invalid_argument, "the output file name is empty");
  RAZOR_TRY(check_inputs(path, inputs, false));
  RAZOR_ASSIGN_OR_RETURN(const std::optional<struct stat> st, existing_entry(path));
  if (!st) return {};
  if (S_ISLNK(st->st_mode)) return refuse(path, "it is a symbolic link; give the file it points to");
  if (S_ISDIR(st->st_mode)) return refuse(path, "it is a folder, and razor writes a file here");
  if (!S_ISREG(st->st_mode)) return refuse(path, "it is not a regular file");
  if (!own) return refuse(path, "the file exists");
  if (status s = own(path); !s.ok())
    return refuse(path, "the existing file is not razor's own output of this kind (" + s.message() +
                            "); razor replaces only what it wrote: choose another name or move the file away");
  return {};
}

status razor_json_file(const std::string& path, const std::string& format_prefix) {
  auto text = read_text_file(path, size_t(256) << 20);
  if (!text) return text.error();
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error(errc::bad_format, "not a JSON object");
  auto f = j.find("format");
  if (f == j.end() || !f->is_string() || f->get<std::string>().rfind(format_prefix, 0) != 0)
    return make_error(errc::bad_format, "no \"format\": \"" + format_prefix + "...\" key");
  return {};
}

own_test razor_text_file(const std::string& first_line) {
  return [first_line](const std::string& path) -> status {
    auto text = read_text_file(path, size_t(64) << 20);
    if (!text) return text.error();
    if (text->rfind(first_line, 0) != 0)
      return make_error(errc::bad_format, "it does not begin with \"" + first_line + "\"");
    return {};
  };
}

}  // namespace razor
