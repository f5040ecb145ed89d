#include "util/mapped_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

namespace razor {

namespace {

// The SIGBUS table: live mappings the handler may patch. Only the owner registers / unregisters an entry.
enum : int { map_free = 0, map_live = 1, map_writing = 2 };
constexpr int kMapSlots = 8192;  // a checkpoint holds tens to hundreds of shards; pack merges tens of parts

struct map_slot {
  std::atomic<int> state{map_free};
  std::atomic<uintptr_t> begin{0}, end{0};  // end rounded up to a page
  std::atomic<int> truncated{0};
};

map_slot g_maps[kMapSlots];
std::atomic<uint64_t> g_trunc_events{0};  // mappings patched by the handler, ever
std::mutex g_trunc_mu;
std::vector<std::string> g_trunc_paths;  // files of truncated mappings already released (the last few)
uintptr_t g_page = 4096;
struct sigaction g_prev_bus {};
std::once_flag g_install_once;

void on_sigbus(int sig, siginfo_t* si, void* uc) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(si->si_addr);
  if (si->si_code > 0) {  // a fault (not a kill)
    for (auto& m : g_maps) {
      if (m.state.load(std::memory_order_acquire) != map_live) continue;
      const uintptr_t b = m.begin.load(std::memory_order_relaxed), e = m.end.load(std::memory_order_relaxed);
      if (a < b || a >= e) continue;
      // Past the file's new end: zero pages from the faulting one to the end of the mapping, so the read
      // completes (a forward scan faults once), and the owner's check() reports the truncation.
      const uintptr_t page = a & ~(g_page - 1);
      void* r = ::mmap(reinterpret_cast<void*>(page), e - page, PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
      if (r == MAP_FAILED) break;
      if (m.truncated.exchange(1, std::memory_order_acq_rel) == 0) g_trunc_events.fetch_add(1);
      return;
    }
  }
  // Not ours: the handler that was there before, else the default action.
  if ((g_prev_bus.sa_flags & SA_SIGINFO) && g_prev_bus.sa_sigaction) {
    g_prev_bus.sa_sigaction(sig, si, uc);
    return;
  }
  if (!(g_prev_bus.sa_flags & SA_SIGINFO) && g_prev_bus.sa_handler != SIG_DFL && g_prev_bus.sa_handler != SIG_IGN) {
    g_prev_bus.sa_handler(sig);
    return;
  }
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(SIGBUS, &dfl, nullptr);
  // A fault re-runs the instruction on return and dies of it; a sent SIGBUS is raised again.
  if (si->si_code <= 0) ::raise(SIGBUS);
}

void install_sigbus_handler() {
  std::call_once(g_install_once, [] {
    g_page = uintptr_t(sysconf(_SC_PAGESIZE));
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, &g_prev_bus);
  });
}

int register_map(const void* p, size_t n) {
  const uintptr_t b = reinterpret_cast<uintptr_t>(p);
  const uintptr_t e = b + ((n + g_page - 1) & ~(g_page - 1));
  for (int i = 0; i < kMapSlots; ++i) {
    int expect = map_free;
    if (!g_maps[i].state.compare_exchange_strong(expect, map_writing)) continue;
    g_maps[i].begin.store(b, std::memory_order_relaxed);
    g_maps[i].end.store(e, std::memory_order_relaxed);
    g_maps[i].truncated.store(0, std::memory_order_relaxed);
    g_maps[i].state.store(map_live, std::memory_order_release);
    return i;
  }
  return -1;  // table full: this mapping keeps SIGBUS's default action
}

}  // namespace

void mapped_file::release() {
  if (truncated()) {
    std::lock_guard lk(g_trunc_mu);
    if (g_trunc_paths.size() >= 8) g_trunc_paths.erase(g_trunc_paths.begin());
    g_trunc_paths.push_back(path_);
  }
  if (slot_ >= 0) g_maps[slot_].state.store(map_free, std::memory_order_release);
  slot_ = -1;
  if (data_ && size_) munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

mapped_file::~mapped_file() { release(); }

mapped_file::mapped_file(mapped_file&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      path_(std::move(o.path_)),
      slot_(std::exchange(o.slot_, -1)) {}

mapped_file& mapped_file::operator=(mapped_file&& o) noexcept {
  if (this != &o) {
    release();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    path_ = std::move(o.path_);
    slot_ = std::exchange(o.slot_, -1);
  }
  return *this;
}

bool mapped_file::truncated() const {
  return slot_ >= 0 && g_maps[slot_].truncated.load(std::memory_order_acquire) != 0;
}

status mapped_file::check() const {
  if (!truncated()) return {};
  struct stat st {};
  std::string now = ::stat(path_.c_str(), &st) == 0 ? std::to_string(uint64_t(st.st_size)) + " bytes"
                                                    : std::string("gone: ") + std::strerror(errno);
  return make_error(errc::io, path_ + " was truncated while being read (now " + now + ", mapped " +
                                  std::to_string(size_) + " bytes): another program shortened it while razor " +
                                  "read it; the job stopped without writing its output");
}

uint64_t mapped_file::truncation_count() { return g_trunc_events.load(); }

status mapped_file::check_since(uint64_t mark) {
  const uint64_t n = g_trunc_events.load();
  if (n <= mark) return {};
  std::string files;
  {
    std::lock_guard lk(g_trunc_mu);
    for (auto& p : g_trunc_paths) files += (files.empty() ? "" : ", ") + p;
  }
  return make_error(errc::io, std::to_string(n - mark) + " memory-mapped input file(s) were truncated while being read" +
                                  (files.empty() ? std::string() : " (" + files + ")") +
                                  ": another program changed them; the result is not valid");
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
  install_sigbus_handler();
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
    m.slot_ = register_map(p, m.size_);
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
