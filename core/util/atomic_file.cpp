#include "util/atomic_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "util/mapped_file.h"
#include "util/output_guard.h"
#include "util/temp_registry.h"

namespace fs = std::filesystem;

namespace razor {

static status errno_status(const std::string& what, int e) {
  return make_error(e == ENOSPC || e == EDQUOT ? errc::disk_full : errc::io, what + ": " + std::strerror(e));
}

atomic_writer::~atomic_writer() { abort(); }

status atomic_writer::open(const std::string& final_path) {
  abort();
  final_ = final_path;
  fs::path p(final_path);
  struct stat st {};
  if (::stat(final_path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    return make_error(errc::invalid_argument, final_path + ": is a folder; razor writes a file here");
  fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  tmp_ = (dir / ("." + p.filename().string() + ".partial-" + std::to_string(getpid()))).string();
  reg_ = register_temp(tmp_, temp_kind::file);  // before the file exists: a signal never misses it
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int e = errno;
    unregister_temp(reg_);
    reg_ = -1;
    std::string t = std::move(tmp_);
    tmp_.clear();
    return errno_status(t, e);
  }
  ::flock(fd_, LOCK_EX | LOCK_NB);  // tells stale_partials that this one is alive (best effort)
  written_ = 0;
  return {};
}

status atomic_writer::write(const void* data, size_t n) {
  if (fd_ < 0) return make_error(errc::internal, "atomic_writer: write before open");
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno_status(final_, errno);
    }
    p += w;
    n -= size_t(w);
    written_ += uint64_t(w);
  }
  return {};
}

status atomic_writer::write_zeros(size_t n) {
  static const std::vector<char> zeros(1 << 16, 0);
  while (n > 0) {
    size_t k = std::min(n, zeros.size());
    RAZOR_TRY(write(zeros.data(), k));
    n -= k;
  }
  return {};
}

status atomic_writer::skip(uint64_t n) {
  if (fd_ < 0) return make_error(errc::internal, "atomic_writer: skip before open");
  if (::lseek(fd_, off_t(n), SEEK_CUR) < 0) return errno_status(final_, errno);
  written_ += n;
  if (::ftruncate(fd_, off_t(written_)) != 0) return errno_status(final_, errno);
  return {};
}

status atomic_writer::commit() {
  if (fd_ < 0) return make_error(errc::internal, "atomic_writer: commit before open");
  if (::fsync(fd_) != 0) return errno_status(final_, errno);
  if (::close(fd_) != 0) {
    fd_ = -1;
    return errno_status(final_, errno);
  }
  fd_ = -1;
  if (!claim_temp(reg_)) {  // a SIGINT / SIGTERM removed it: the process is ending
    reg_ = -1;
    tmp_.clear();
    return make_error(errc::cancelled, final_ + ": interrupted; nothing was written under the final name");
  }
  if (::rename(tmp_.c_str(), final_.c_str()) != 0) return errno_status(final_, errno);
  unregister_temp(reg_);
  reg_ = -1;
  tmp_.clear();
  return {};
}

void atomic_writer::abort() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!tmp_.empty()) {
    if (claim_temp(reg_)) ::unlink(tmp_.c_str());
    unregister_temp(reg_);
    reg_ = -1;
    tmp_.clear();
  }
}

status write_file_atomic(const std::string& path, const std::string& contents) {
  atomic_writer w;
  RAZOR_TRY(w.open(path));
  RAZOR_TRY(w.write(contents.data(), contents.size()));
  return w.commit();
}

result<std::string> read_text_file(const std::string& path, size_t max_bytes) {
  RAZOR_ASSIGN_OR_RETURN(int fd, open_regular_file(path));
  struct stat st {};
  if (fstat(fd, &st) == 0 && uint64_t(st.st_size) > max_bytes) {
    ::close(fd);
    return make_error(errc::bad_format, path + ": " + std::to_string(st.st_size) + " bytes, larger than the limit of " +
                                            std::to_string(max_bytes));
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      return make_error(errc::io, path + ": " + std::strerror(e));
    }
    if (r == 0) break;
    out.append(buf, size_t(r));
    if (out.size() > max_bytes) {
      ::close(fd);
      return make_error(errc::bad_format, path + ": larger than the limit of " + std::to_string(max_bytes) + " bytes");
    }
  }
  ::close(fd);
  return out;
}

atomic_dir::~atomic_dir() { abort(); }

status atomic_dir::open(const std::string& final_dir, const std::string& command, std::vector<std::string> inputs) {
  abort();
  final_ = fs::path(final_dir).lexically_normal().string();
  while (final_.size() > 1 && final_.back() == '/') final_.pop_back();
  if (const std::string f = fs::path(final_).filename().string(); f.empty() || f == "." || f == "..") {
    std::error_code ec;  // "." or "..": the folder by its name, so that the temporary goes beside it
    final_ = fs::absolute(final_, ec).lexically_normal().string();
    while (final_.size() > 1 && final_.back() == '/') final_.pop_back();
  }
  command_ = command;
  inputs_ = std::move(inputs);
  RAZOR_TRY(check_output_dir(final_, inputs_));  // before any work: nothing is written when it is refused
  tmp_ = final_ + ".partial-" + std::to_string(getpid());
  reg_ = register_temp(tmp_, temp_kind::dir);
  std::error_code ec;
  fs::remove_all(tmp_, ec);  // this process's own (a pid reused after a crash)
  fs::create_directories(tmp_, ec);
  if (ec) {
    unregister_temp(reg_);
    reg_ = -1;
    return make_error(errc::io, tmp_ + ": " + ec.message());
  }
  lock_fd_ = ::open(tmp_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock_fd_ >= 0) ::flock(lock_fd_, LOCK_EX | LOCK_NB);
  open_ = true;
  return {};
}

status atomic_dir::commit() {
  if (!open_) return make_error(errc::internal, "atomic_dir: commit before open");
  RAZOR_TRY(write_output_marker(tmp_, command_));
  // Again: a file may have been put into the final folder while the output was written.
  RAZOR_TRY(check_output_dir(final_, inputs_));
  if (!claim_temp(reg_)) {  // a SIGINT / SIGTERM is removing it: the process is ending
    abort();
    return make_error(errc::cancelled, final_ + ": interrupted; nothing was written under the final name");
  }
  std::error_code ec;
  struct stat st {};
  if (::lstat(final_.c_str(), &st) != 0) {
    if (::rename(tmp_.c_str(), final_.c_str()) != 0) return make_error(errc::io, final_ + ": " + std::strerror(errno));
  } else if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, final_.c_str(), RENAME_EXCHANGE) == 0) {
    // The new output is in place in one step; the old one (razor's own or an empty folder) now sits at tmp_.
    int h = register_temp(tmp_, temp_kind::dir);
    fs::remove_all(tmp_, ec);
    unregister_temp(h);
  } else if (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP) {
    // No RENAME_EXCHANGE on this file system: move the old output aside first so that a failure keeps it.
    std::string old = final_ + ".old-" + std::to_string(getpid());
    if (::rename(final_.c_str(), old.c_str()) != 0)
      return make_error(errc::io, final_ + ": cannot replace: " + std::strerror(errno));
    if (::rename(tmp_.c_str(), final_.c_str()) != 0) {
      const int e = errno;
      ::rename(old.c_str(), final_.c_str());
      return make_error(errc::io, final_ + ": " + std::strerror(e));
    }
    int h = register_temp(old, temp_kind::dir);
    fs::remove_all(old, ec);
    unregister_temp(h);
  } else {
    return make_error(errc::io, final_ + ": cannot replace: " + std::strerror(errno));
  }
  unregister_temp(reg_);
  reg_ = -1;
  if (lock_fd_ >= 0) ::close(lock_fd_);
  lock_fd_ = -1;
  open_ = false;
  return {};
}

void atomic_dir::abort() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
  lock_fd_ = -1;
  if (open_) {
    std::error_code ec;
    if (claim_temp(reg_)) fs::remove_all(tmp_, ec);
    unregister_temp(reg_);
    reg_ = -1;
    open_ = false;
  }
}

std::string file_tail(const std::string& path, int max_lines, size_t max_bytes) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return {};
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  const std::streamoff from = std::max<std::streamoff>(0, size - std::streamoff(max_bytes));
  f.seekg(from);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (from > 0) {  // drop the partial first line
    auto nl = s.find('\n');
    s = nl == std::string::npos ? s : s.substr(nl + 1);
  }
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  size_t at = s.size();
  for (int n = 0; n < max_lines && at != std::string::npos && at > 0; ++n) at = s.rfind('\n', at - 1);
  return at == std::string::npos || at == 0 ? s : s.substr(at + 1);
}

}  // namespace razor
