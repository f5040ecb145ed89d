#include "util/temp_registry.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>

namespace razor {

namespace {

// Entry states. Only the owner moves an entry out of free / into free; the handler moves registered -> taken.
enum : int { st_free = 0, st_writing = 1, st_file = 2, st_dir = 3, st_claimed = 4, st_taken = 5 };

constexpr int kSlots = 512;  // a split GGUF holds one temporary per shard open at once

struct slot {
  std::atomic<int> state{st_free};
  char path[PATH_MAX];
};

slot g_slots[kSlots];

// One directory level of getdents64 records (the glibc struct is not exported under this name).
struct dirent64_rec {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[1];
};

constexpr int kMaxDepth = 16;  // razor's outputs are one or two levels deep

void remove_at(int dirfd, const char* name, int depth) {
  if (::unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return;
  if (errno != EISDIR && errno != EPERM) return;  // Linux answers EISDIR for a folder
  if (depth > kMaxDepth) return;
  int fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  // Entries removed while reading may make getdents64 skip others, and a writer may still add some: repeat
  // until the folder itself goes.
  for (int pass = 0; pass < 8; ++pass) {
    alignas(8) char buf[2048];
    ::lseek(fd, 0, SEEK_SET);
    for (;;) {
      long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
      if (n <= 0) break;
      for (long off = 0; off < n;) {
        auto* d = reinterpret_cast<dirent64_rec*>(buf + off);
        off += d->d_reclen;
        const char* e = d->d_name;
        if (e[0] == '.' && (e[1] == 0 || (e[1] == '.' && e[2] == 0))) continue;
        remove_at(fd, e, depth + 1);
      }
    }
    if (::unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT) break;
  }
  ::close(fd);
}

std::atomic<int> g_in_handler{0};

void on_signal(int sig) {
  if (g_in_handler.exchange(1) == 0) {
    const int saved = errno;
    remove_registered_temps();
    errno = saved;
  }
  // The default action, delivered when the handler returns (the signal is blocked while it runs); a second
  // signal on another thread during the cleanup above arrives here and ends the process at once.
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  ::sigaction(sig, &sa, nullptr);
  ::raise(sig);
}

}  // namespace

void remove_tree_signal_safe(const char* path) { remove_at(AT_FDCWD, path, 0); }

int register_temp(const std::string& path, temp_kind kind) {
  std::error_code ec;
  std::string abs = std::filesystem::absolute(path, ec).lexically_normal().string();
  if (ec || abs.size() >= PATH_MAX) return -1;
  for (int i = 0; i < kSlots; ++i) {
    int expect = st_free;
    if (!g_slots[i].state.compare_exchange_strong(expect, st_writing)) continue;
    std::memcpy(g_slots[i].path, abs.c_str(), abs.size() + 1);
    g_slots[i].state.store(kind == temp_kind::file ? st_file : st_dir, std::memory_order_release);
    return i;
  }
  return -1;
}

bool claim_temp(int handle) {
  if (handle < 0 || handle >= kSlots) return true;  // never registered: its owner alone handles it
  int s = g_slots[handle].state.load();
  while (s == st_file || s == st_dir) {
    if (g_slots[handle].state.compare_exchange_weak(s, st_claimed)) return true;
  }
  return s == st_claimed;
}

void unregister_temp(int handle) {
  if (handle < 0 || handle >= kSlots) return;
  // A handler that took the entry may still be reading its path: leave it taken (the process is ending).
  int s = g_slots[handle].state.load();
  while (s != st_taken && s != st_free) {
    if (g_slots[handle].state.compare_exchange_weak(s, st_free)) return;
  }
}

void remove_registered_temps() {
  // Files first: a registered file inside a registered folder goes either way.
  for (int want : {int(st_file), int(st_dir)})
    for (int i = 0; i < kSlots; ++i) {
      int s = want;
      if (!g_slots[i].state.compare_exchange_strong(s, st_taken, std::memory_order_acquire)) continue;
      if (want == st_file) ::unlink(g_slots[i].path);
      else remove_at(AT_FDCWD, g_slots[i].path, 0);
    }
}

int registered_temp_count() {
  int n = 0;
  for (auto& s : g_slots) {
    int v = s.state.load();
    n += v == st_file || v == st_dir;
  }
  return n;
}

void install_cleanup_signal_handlers() {
  static std::atomic<bool> done{false};
  if (done.exchange(true)) return;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&sa.sa_mask, s);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old {};
    ::sigaction(s, nullptr, &old);
    if (old.sa_handler == SIG_IGN) continue;  // nohup: an ignored signal stays ignored
    ::sigaction(s, &sa, nullptr);
  }
}

}  // namespace razor
