#include "util/stale_partials.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "util/output_guard.h"

namespace fs = std::filesystem;

namespace razor {

namespace {

// "<anything>.<tag>-<digits>" -> digits.
bool tail_pid(const std::string& name, const std::string& tag, int64_t* pid) {
  const std::string key = "." + tag + "-";
  const size_t at = name.rfind(key);
  if (at == std::string::npos || at == 0) return false;
  const size_t d = at + key.size();
  if (d >= name.size() || name.size() - d > 10) return false;
  int64_t v = 0;
  for (size_t i = d; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    v = v * 10 + (name[i] - '0');
  }
  if (v <= 0) return false;
  *pid = v;
  return true;
}

bool process_runs(int64_t pid) {
  if (pid == int64_t(::getpid())) return true;
  return ::kill(pid_t(pid), 0) == 0 || errno == EPERM;
}

// Whether some process holds the writer's flock on `path` (false when it cannot be told).
bool locked_by_someone(const std::string& path, bool is_dir) {
  int fd = is_dir ? ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
                  : ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0 && !is_dir) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return false;
  const bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // releases ours, if we got it
  return held;
}

uint64_t size_of(const fs::path& p, bool is_dir) {
  std::error_code ec;
  if (!is_dir) {
    auto n = fs::file_size(p, ec);
    return ec ? 0 : uint64_t(n);
  }
  uint64_t total = 0;
  for (fs::recursive_directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code e2;
    if (it->is_regular_file(e2)) {
      auto n = it->file_size(e2);
      if (!e2) total += uint64_t(n);
    }
  }
  return total;
}

bool is_stale(const std::string& path, int64_t pid, bool is_dir) {
  return !process_runs(pid) && !locked_by_someone(path, is_dir);
}

}  // namespace

bool is_partial_name(const std::string& name, int64_t* pid) { return tail_pid(name, "partial", pid); }

result<std::vector<stale_partial>> find_stale_partials(const std::string& dir) {
  std::vector<stale_partial> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec) return make_error(errc::io, dir + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return make_error(errc::io, dir + ": " + ec.message());
    const std::string name = it->path().filename().string();
    std::error_code e2;
    if (it->is_symlink(e2)) continue;
    const bool is_dir = it->is_directory(e2);
    int64_t pid = 0;
    bool ours = is_partial_name(name, &pid);
    // A folder an output replacement moved aside is razor's only when it carries razor's marker, and garbage only
    // when the new output is in place: otherwise it is the only copy of the earlier output (rename it back).
    if (!ours && is_dir && tail_pid(name, "old", &pid)) {
      const std::string final_name = name.substr(0, name.rfind(".old-"));
      ours = fs::is_regular_file(it->path() / kOutputMarker, e2) && fs::exists(it->path().parent_path() / final_name, e2);
    }
    if (!ours) continue;
    const std::string path = it->path().string();
    if (!is_stale(path, pid, is_dir)) continue;
    out.push_back({path, pid, is_dir, size_of(it->path(), is_dir)});
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.path < b.path; });
  return out;
}

std::vector<stale_partial> stale_partials_near(const std::string& path) {
  std::vector<stale_partial> out;
  std::error_code ec;
  const fs::path here = fs::absolute(path, ec).lexically_normal();
  fs::path p = here;
  if (p.has_filename() == false) p = p.parent_path();
  for (const fs::path& d : {p, p.parent_path()}) {
    if (d.empty() || (d == p.parent_path() && d == p)) continue;
    auto found = find_stale_partials(d.string());
    if (found) out.insert(out.end(), found->begin(), found->end());
  }
  return out;
}

nlohmann::json stale_partials_json(const std::vector<stale_partial>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (auto& p : v) a.push_back({{"path", p.path}, {"pid", p.pid}, {"dir", p.is_dir}, {"bytes", p.bytes}});
  return a;
}

status remove_stale_partial(const stale_partial& p) {
  if (!is_stale(p.path, p.pid, p.is_dir))
    return make_error(errc::invalid_argument, p.path + ": its process (pid " + std::to_string(p.pid) +
                                                  ") runs again or holds it: left alone");
  std::error_code ec;
  if (p.is_dir) fs::remove_all(p.path, ec);
  else fs::remove(p.path, ec);
  if (ec) return make_error(errc::io, p.path + ": " + ec.message());
  return {};
}

}  // namespace razor
