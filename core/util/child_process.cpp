#include "util/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace razor {

result<child_output> run_child(const std::vector<std::string>& argv) {
  if (argv.empty()) return make_error(errc::invalid_argument, "run_child: empty command");
  int out_p[2], err_p[2];
  if (pipe2(out_p, O_CLOEXEC) != 0) return make_error(errc::io, std::string("pipe: ") + std::strerror(errno));
  if (pipe2(err_p, O_CLOEXEC) != 0) {
    close(out_p[0]);
    close(out_p[1]);
    return make_error(errc::io, std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_p[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_p[1], 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out_p[1]);
  close(err_p[1]);
  if (rc != 0) {
    close(out_p[0]);
    close(err_p[0]);
    return make_error(errc::not_found, "cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  child_output co;
  pollfd fds[2] = {{out_p[0], POLLIN, 0}, {err_p[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? co.out : co.err).append(buf, size_t(n));
      } else if (n == 0 || (n < 0 && errno != EINTR)) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(st)) {
    co.term_signal = WTERMSIG(st);
    co.exit_code = 128 + co.term_signal;
  } else {
    co.exit_code = WEXITSTATUS(st);
  }
  return co;
}

}  // namespace razor
