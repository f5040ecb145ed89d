#include "recover/trainer.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <thread>

#include "util/json_limits.h"
#include "util/paths.h"
#include "util/strformat.h"

#include "util/python.h"

extern char** environ;

namespace fs = std::filesystem;

namespace razor::recover {

result<std::string> find_trainer_script() {
  std::error_code ec;
  if (const char* e = std::getenv("RAZOR_OPD_TRAIN"); e && *e) {
    if (fs::is_regular_file(e, ec)) return std::string(e);
    return make_error(errc::not_found, std::string("RAZOR_OPD_TRAIN=") + e + " is not a file");
  }
  if (std::string d = opd_tool_dir(); !d.empty()) return (fs::path(d) / "train.py").string();
  // opd_tool_dir looks in $RAZOR_DATA/tools/opd, <exe>/../share/razor/tools/opd, the source tree's tools/opd.
  std::string looked;
  for (auto& d : data_dirs("tools/opd")) looked += (looked.empty() ? "" : ", ") + (fs::path(d) / "train.py").string();
  return make_error(errc::not_found, "the OPD trainer train.py is in none of " + looked +
                                         " (install razor's share/razor/tools/opd or set RAZOR_OPD_TRAIN)");
}

result<std::string> trainer_python() { return find_python_with("torch"); }

std::vector<std::string> trainer_argv(const trainer_options& o) {
  std::vector<std::string> a{o.python, o.script,
                             "--student", o.student,
                             "--rollouts", o.rollouts,
                             "--teacher-topk", o.teacher_topk,
                             "--out", o.adapter_out,
                             "--log", o.log,
                             "--rank", std::to_string(o.rank),
                             "--scale", strformat("%g", o.scale),
                             "--tau", strformat("%g", o.tau),
                             "--epochs", std::to_string(o.epochs),
                             "--accum", std::to_string(o.accum),
                             "--lr", strformat("%g", o.lr),
                             "--max-len", std::to_string(o.max_len),
                             "--reverse", o.reverse ? "1" : "0",
                             "--finished-only", o.finished_only ? "1" : "0",
                             "--nproc", std::to_string(o.nproc),
                             "--seed", std::to_string(o.seed)};
  if (!o.qat_base.empty()) {
    a.push_back("--qat-base");
    a.push_back(o.qat_base);
  }
  if (o.threads > 0) {
    a.push_back("--threads");
    a.push_back(std::to_string(o.threads));
  }
  a.insert(a.end(), o.extra_args.begin(), o.extra_args.end());
  return a;
}

namespace {

// New complete lines of the training log since `offset`.
void poll_log(const std::string& path, uint64_t& offset, std::string& partial, const trainer_callbacks& cb) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return;
  f.seekg(0, std::ios::end);
  const uint64_t size = uint64_t(f.tellg());
  if (size < offset) offset = 0, partial.clear();  // rewritten
  if (size == offset) return;
  f.seekg(std::streamoff(offset));
  std::string buf(size - offset, '\0');
  f.read(buf.data(), std::streamsize(buf.size()));
  offset = size;
  partial += buf;
  size_t nl;
  while ((nl = partial.find('\n')) != std::string::npos) {
    const std::string line = partial.substr(0, nl);
    partial.erase(0, nl + 1);
    if (line.empty() || !cb.on_step) continue;
    json_limits lim;
    lim.max_bytes = 1u << 20;
    lim.max_depth = 4;
    auto j = parse_json(line, path, lim);
    if (j.ok() && j->is_object()) cb.on_step(*j);
  }
}

}  // namespace

status run_trainer(const std::vector<std::string>& argv, const std::string& log_path, const trainer_callbacks& cb) {
  if (argv.empty()) return make_error(errc::invalid_argument, "trainer: empty command");
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return make_error(errc::io, std::string("pipe: ") + std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(p[1]);
  if (rc != 0) {
    close(p[0]);
    return make_error(errc::not_found, "cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  std::deque<std::string> tail;  // the last output lines, for the error message
  std::string pending, log_partial;
  uint64_t log_offset = 0;
  bool cancelled = false;
  auto emit = [&](const std::string& line) {
    tail.push_back(line);
    if (tail.size() > 20) tail.pop_front();
    if (cb.on_output) cb.on_output(line);
  };
  pollfd fd{p[0], POLLIN, 0};
  char buf[65536];
  for (;;) {
    const int n = poll(&fd, 1, 200);
    if (n < 0 && errno != EINTR) break;
    bool eof = false;
    if (n > 0) {
      const ssize_t got = read(p[0], buf, sizeof buf);
      if (got > 0) {
        pending.append(buf, size_t(got));
        size_t nl;
        while ((nl = pending.find('\n')) != std::string::npos) {
          emit(pending.substr(0, nl));
          pending.erase(0, nl + 1);
        }
      } else if (got == 0 || errno != EINTR) {
        eof = true;
      }
    }
    poll_log(log_path, log_offset, log_partial, cb);
    if (!cancelled && cb.cancelled && cb.cancelled()) {
      cancelled = true;
      ::kill(-pid, SIGTERM);
      auto t0 = std::chrono::steady_clock::now();
      int st = 0;
      while (waitpid(pid, &st, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(5)) {
          ::kill(-pid, SIGKILL);
          waitpid(pid, &st, 0);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      close(p[0]);
      return make_error(errc::cancelled, "training cancelled");
    }
    if (eof) break;
  }
  close(p[0]);
  if (!pending.empty()) emit(pending);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  poll_log(log_path, log_offset, log_partial, cb);
  const bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  if (ok) return {};
  std::string last;
  for (auto& l : tail) last += "\n  " + l;
  const std::string how = WIFSIGNALED(st) ? "was killed by signal " + std::to_string(WTERMSIG(st))
                                          : "exited with status " + std::to_string(WEXITSTATUS(st));
  return make_error(errc::external, argv[1 < argv.size() ? 1 : 0] + " " + how + "; its last lines:" + last);
}

}  // namespace razor::recover
