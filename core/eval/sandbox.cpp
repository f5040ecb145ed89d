#include "eval/sandbox.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "util/atomic_file.h"

namespace razor::eval {

namespace {
// The child's output file (bounded by RLIMIT_FSIZE); "" when it wrote none.
std::string output_of(const std::string& path) {
  auto t = read_text_file(path);
  return t.ok() ? std::move(t).value() : std::string();
}
}  // namespace

sandbox_result run_python(const std::string& program, const sandbox_limits& lim, const std::string& stdin_data) {
  sandbox_result res;
  char tmpl[] = "/tmp/razor-sbx-XXXXXX";
  if (!mkdtemp(tmpl)) {
    res.error = std::string("mkdtemp: ") + std::strerror(errno);
    return res;
  }
  std::string dir = tmpl, file = dir + "/prog.py", out = dir + "/out.txt", err = dir + "/err.txt",
              in_file = stdin_data.empty() ? std::string("/dev/null") : dir + "/stdin.txt", flag = dir + "/net";
  {
    std::ofstream f(file, std::ios::binary);
    f << program;
  }
  if (!stdin_data.empty()) {
    std::ofstream f(in_file, std::ios::binary);
    f << stdin_data;
  }
  // Everything the child needs is prepared before fork (the parent is multi-threaded).
  std::string py = lim.python;
  const char* argv[] = {py.c_str(), "-I", "-B", file.c_str(), nullptr};
  rlim_t as = lim.memory_bytes, cpu = rlim_t(lim.timeout_s) + 2, fsz = rlim_t(16) << 20;
  bool require = lim.require_no_network;

  pid_t pid = fork();
  if (pid < 0) {
    res.error = std::string("fork: ") + std::strerror(errno);
    std::filesystem::remove_all(dir);
    return res;
  }
  if (pid == 0) {
    setpgid(0, 0);
    bool iso = unshare(CLONE_NEWNET) == 0 || unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0;
    if (iso) {
      int fd = open(flag.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (fd >= 0) close(fd);
    } else if (require) {
      _exit(126);
    }
    rlimit r{as, as};
    setrlimit(RLIMIT_AS, &r);
    r = {cpu, cpu};
    setrlimit(RLIMIT_CPU, &r);
    r = {fsz, fsz};
    setrlimit(RLIMIT_FSIZE, &r);
    r = {0, 0};
    setrlimit(RLIMIT_CORE, &r);
    int in = open(in_file.c_str(), O_RDONLY);
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in >= 0) dup2(in, 0);
    if (o >= 0) dup2(o, 1);
    if (e >= 0) dup2(e, 2);
    if (chdir(tmpl) != 0) _exit(127);
    execvp(argv[0], const_cast<char* const*>(argv));
    _exit(127);
  }
  setpgid(pid, pid);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(lim.timeout_s);
  int st = 0;
  for (;;) {
    pid_t w = waitpid(pid, &st, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (std::chrono::steady_clock::now() > deadline) {
      res.timed_out = true;
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(-pid, SIGKILL);  // stray children of the program
  res.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  res.passed = !res.timed_out && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  res.net_isolated = std::filesystem::exists(flag);
  res.stdout_text = output_of(out);
  std::string both = res.stdout_text.size() > 2048 ? res.stdout_text.substr(res.stdout_text.size() - 2048)
                                                   : res.stdout_text;
  both += output_of(err);
  res.output_tail = both.size() > 2048 ? both.substr(both.size() - 2048) : both;
  if (res.exit_code == 126 && require && !res.net_isolated) res.error = "no network namespace could be made";
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return res;
}

}  // namespace razor::eval
