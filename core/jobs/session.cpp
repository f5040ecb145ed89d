#include "jobs/session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "jobs/protocol.h"
#include "kernels/cuda_info.h"
#include "util/atomic_file.h"
#include "util/fnv.h"

namespace razor::jobs {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

bool valid_slot(const std::string& s) {
  if (s.empty() || s.size() > 32) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  return true;
}

status make_private_dir(const fs::path& d) {
  std::error_code ec;
  fs::create_directories(d, ec);
  if (ec) return make_error(errc::io, d.string() + ": cannot create: " + ec.message());
  struct stat st{};
  if (::lstat(d.c_str(), &st) != 0) return make_error(errc::io, errno_text(d.string()));
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::getuid())
    return make_error(errc::io, d.string() + ": not a directory owned by this user");
  ::chmod(d.c_str(), 0700);
  return {};
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

// The session worker's pid from its lock file, and whether it still holds the lock.
std::pair<int64_t, bool> lock_holder(const std::string& lock) {
  int64_t pid = 0;
  {
    std::ifstream f(lock);
    f >> pid;
  }
  int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {pid, false};
  bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  return {pid, held};
}

// Double fork: the session worker is nobody's child, in its own session (a dropped ssh link's SIGHUP does
// not reach it), with stdin on /dev/null and stdout/stderr appended to the slot's log.
status spawn_session_worker(const bridge_options& opt, const session_paths& p) {
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return make_error(errc::io, errno_text("/proc/self/exe"));
  exe[n] = '\0';
  std::vector<std::string> args = {exe, "worker", "--session-daemon", "--workspace", opt.workspace, "--slot", opt.slot,
                                   "--idle-exit", std::to_string(opt.idle_exit_s)};
  args.insert(args.end(), opt.worker_args.begin(), opt.worker_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t child = ::fork();
  if (child < 0) return make_error(errc::io, errno_text("fork"));
  if (child == 0) {
    ::setsid();
    if (::fork() != 0) ::_exit(0);
    int devnull = ::open("/dev/null", O_RDONLY);
    int log = ::open(p.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (devnull < 0 || log < 0) ::_exit(127);
    ::dup2(devnull, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::closefrom(3);
    if (::chdir(opt.workspace.c_str()) != 0) ::_exit(127);
    if (!opt.cuda_devices.empty()) ::setenv("CUDA_VISIBLE_DEVICES", opt.cuda_devices.c_str(), 1);
    ::execv(exe, argv.data());
    std::fprintf(stderr, "razor worker: cannot run %s: %s\n", exe, std::strerror(errno));
    ::_exit(127);
  }
  int st = 0;
  while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  return {};
}

result<int> connect_unix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(errc::io, errno_text("socket"));
  sockaddr_un a = unix_address(path);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
  status st = make_error(errc::io, errno_text(path));
  ::close(fd);
  return st;
}

bool write_fully(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= size_t(w);
  }
  return true;
}

}  // namespace

result<session_paths> session_paths_for(const std::string& workspace, const std::string& slot) {
  if (!valid_slot(slot)) return make_error(errc::invalid_argument, "slot \"" + slot + "\": use [A-Za-z0-9_-], at most 32");
  if (workspace.empty()) return make_error(errc::invalid_argument, "no workspace given");
  std::error_code ec;
  fs::path ws = fs::absolute(workspace, ec);
  if (ec || !fs::is_directory(ws, ec))
    return make_error(errc::not_found, workspace + ": the workspace is not a directory");
  session_paths p;
  fs::path dir = ws / ".razor" / "sessions";
  RAZOR_TRY(make_private_dir(dir));
  p.dir = dir.string();
  p.lock = (dir / (slot + ".lock")).string();
  p.log = (dir / (slot + ".log")).string();
  p.socket = (dir / (slot + ".sock")).string();
  if (p.socket.size() >= sizeof(sockaddr_un::sun_path)) {
    // A Unix socket path is at most 107 bytes: use a private folder in /tmp named by a hash of the long path.
    fnv1a64 h;
    h.add(p.socket);
    fs::path tmp = fs::path("/tmp") / ("razor-" + std::to_string(::getuid()));
    RAZOR_TRY(make_private_dir(tmp));
    p.socket = (tmp / (h.hex() + ".sock")).string();
  }
  return p;
}

result<int> listen_unix(const std::string& path) {
  if (path.size() >= sizeof(sockaddr_un::sun_path)) return make_error(errc::invalid_argument, path + ": socket path too long");
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(errc::io, errno_text("socket"));
  ::unlink(path.c_str());  // a stale socket of a worker that died (the caller holds the slot's lock)
  sockaddr_un a = unix_address(path);
  mode_t old = ::umask(0177);
  int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::umask(old);
  if (rc != 0 || ::listen(fd, 4) != 0) {
    status st = make_error(errc::io, errno_text(path));
    ::close(fd);
    return st;
  }
  return fd;
}

int run_session_worker(worker_options opt, const std::string& workspace) {
  auto p = session_paths_for(workspace, opt.slot);
  if (!p) {
    std::fprintf(stderr, "razor worker: %s\n", p.error().to_string().c_str());
    return 1;
  }
  int lock = ::open(p->lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) {
    std::fprintf(stderr, "razor worker: %s\n", errno_text(p->lock).c_str());
    return 1;
  }
  // A probe (list_sessions) holds a shared lock for an instant: try for a little while before concluding that
  // another session worker has the slot.
  bool locked = false;
  for (int i = 0; i < 50 && !locked; ++i) {
    locked = ::flock(lock, LOCK_EX | LOCK_NB) == 0;
    if (!locked) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!locked) {
    std::fprintf(stderr, "razor worker: slot %s already has a session worker\n", opt.slot.c_str());
    return 0;
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock, 0) != 0 || ::pwrite(lock, pid.data(), pid.size(), 0) < 0)
    std::fprintf(stderr, "razor worker: cannot write %s\n", p->lock.c_str());
  std::time_t now = std::time(nullptr);
  std::fprintf(stderr, "razor worker: session %s started, pid %d, %s", opt.slot.c_str(), int(::getpid()), std::ctime(&now));
  opt.listen_path = p->socket;
  int rc = run_worker(opt);
  std::fprintf(stderr, "razor worker: session %s ended (%d)\n", opt.slot.c_str(), rc);
  ::close(lock);
  return rc;
}

int run_bridge(const bridge_options& opt) {
  ::signal(SIGPIPE, SIG_IGN);
  auto p = session_paths_for(opt.workspace, opt.slot);
  if (!p) {
    std::fprintf(stderr, "razor worker --connect: %s\n", p.error().to_string().c_str());
    return 1;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(opt.connect_timeout_ms);
  bool spawned = false;
  int sock = -1;
  std::string last_error;
  for (;;) {
    auto fd = connect_unix(p->socket);
    if (fd) {
      sock = *fd;
      break;
    }
    last_error = fd.error().message();
    if (!spawned && opt.spawn && !lock_holder(p->lock).second) {
      if (status st = spawn_session_worker(opt, *p); !st.ok()) {
        std::fprintf(stderr, "razor worker --connect: %s\n", st.to_string().c_str());
        return 1;
      }
      spawned = true;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "razor worker --connect: no session worker answers on %s (%s)%s\n%s", p->socket.c_str(),
                   last_error.c_str(), spawned ? "; the one started for it logged:" : "",
                   spawned ? (file_tail(p->log, 20, 2000) + "\n").c_str() : "");
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  // Relay. stdin's end is passed on as a half-close, so the worker still sends what it has (the bye).
  char buf[1 << 16];
  bool in_open = true;
  for (;;) {
    pollfd pfd[2] = {{sock, POLLIN, 0}, {in_open ? 0 : -1, POLLIN, 0}};
    if (::poll(pfd, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pfd[0].revents) {
      ssize_t n = ::read(sock, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;                                 // the worker closed the connection
      if (!write_fully(1, buf, size_t(n))) break;        // the link is gone
    }
    if (in_open && pfd[1].revents) {
      ssize_t n = ::read(0, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        in_open = false;
        ::shutdown(sock, SHUT_WR);
      } else if (!write_fully(sock, buf, size_t(n))) {
        break;
      }
    }
  }
  ::close(sock);
  return 0;
}

json gpu_list(std::string* why) {
  json gpus = json::array();
  for (auto& d : cu::devices(why))
    gpus.push_back({{"index", d.index},
                    {"name", d.name},
                    {"total_memory", d.total_memory},
                    {"sm_count", d.sm_count},
                    {"cc", std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor)}});
  return gpus;
}

std::vector<session_info> list_sessions(const std::string& workspace) {
  std::vector<session_info> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(fs::path(workspace) / ".razor" / "sessions", ec)) {
    if (e.path().extension() != ".lock") continue;
    auto [pid, alive] = lock_holder(e.path().string());
    out.push_back({e.path().stem().string(), pid, alive});
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.slot < b.slot; });
  return out;
}

json probe_host(const std::string& workspace) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  json out = {{"t", "probe"}, {"proto", kProtocolVersion}, {"version", RAZOR_VERSION}, {"host", host},
              {"workspace", workspace}, {"cuda", cu::built_with_cuda()}};
  std::error_code ec;
  fs::path ws = fs::absolute(workspace, ec);
  bool ok = !ec && fs::is_directory(ws, ec) && ::access(ws.c_str(), W_OK | X_OK) == 0;
  out["workspace"] = ok ? ws.string() : workspace;
  out["workspace_ok"] = ok;
  out["workspace_note"] = ok ? "" : workspace + ": not a writable directory on " + std::string(host);
  json sessions = json::array();
  if (ok)
    for (auto& si : list_sessions(ws.string())) sessions.push_back({{"slot", si.slot}, {"pid", si.pid}, {"alive", si.alive}});
  out["sessions"] = sessions;
  std::string why;
  json gpus = gpu_list(&why);
  out["gpus"] = gpus;
  out["gpus_note"] = gpus.empty() ? why : "";
  return out;
}

}  // namespace razor::jobs
