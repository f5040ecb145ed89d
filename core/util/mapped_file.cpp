#include "util/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace razor {

mapped_file::~mapped_file() {
  if (data_ && size_) munmap(const_cast<uint8_t*>(data_), size_);
}

mapped_file::mapped_file(mapped_file&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), path_(std::move(o.path_)) {}

mapped_file& mapped_file::operator=(mapped_file&& o) noexcept {
  if (this != &o) {
    if (data_ && size_) munmap(const_cast<uint8_t*>(data_), size_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    path_ = std::move(o.path_);
  }
  return *this;
}

static const char* file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

result<int> open_regular_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    return make_error(errno == ENOENT ? errc::not_found : errc::io, path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return make_error(errc::io, path + ": " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(errc::io, path + ": is " + std::string(file_kind(st.st_mode)) + ", not a regular file");
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  return fd;
}

result<mapped_file> mapped_file::open(const std::string& path) {
  RAZOR_ASSIGN_OR_RETURN(int fd, open_regular_file(path));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return make_error(errc::io, path + ": " + std::strerror(e));
  }
  mapped_file m;
  m.path_ = path;
  m.size_ = size_t(st.st_size);
  if (m.size_ > 0) {
    void* p = mmap(nullptr, m.size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      return make_error(errc::io, path + ": mmap failed: " + std::strerror(e));
    }
    m.data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return m;
}

static void advise(const uint8_t* base, size_t size, size_t offset, size_t len, int what) {
  if (!base || offset >= size) return;
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  size_t start = offset & ~(page - 1);
  size_t end = std::min(size, offset + len);
  madvise(const_cast<uint8_t*>(base) + start, end - start, what);
}

void mapped_file::will_need(size_t offset, size_t len) const { advise(data_, size_, offset, len, MADV_WILLNEED); }
void mapped_file::dont_need(size_t offset, size_t len) const { advise(data_, size_, offset, len, MADV_DONTNEED); }

}  // namespace razor
