// A `razor worker` child process driven through pipes, for the protocol tests (no Qt).
#pragma once
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace razor::test {

class child_worker {
 public:
  // Starts `exe args...` in `cwd` with stdin/stdout/stderr on pipes.
  bool start(const std::string& exe, const std::vector<std::string>& args, const std::string& cwd = "") {
    int in[2], out[2], err[2];
    if (pipe(in) || pipe(out) || pipe(err)) return false;
    pid_ = fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      dup2(err[1], 2);
      for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) close(fd);
      if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(exe.c_str()));
      for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(exe.c_str(), argv.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    in_ = in[1];
    out_ = out[0];
    err_ = err[0];
    fcntl(err_, F_SETFL, O_NONBLOCK);
    return true;
  }

  ~child_worker() {
    if (in_ >= 0) close(in_);
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      int st;
      waitpid(pid_, &st, 0);
    }
    if (out_ >= 0) close(out_);
    if (err_ >= 0) close(err_);
  }

  bool write_line(const std::string& s) {
    std::string line = s + "\n";
    return write(in_, line.data(), line.size()) == ssize_t(line.size());
  }
  bool send(const nlohmann::json& j) { return write_line(j.dump()); }
  void close_stdin() {
    close(in_);
    in_ = -1;
  }

  // The next line on stdout, or nothing after `timeout_ms` / at end of output.
  std::optional<std::string> read_line(int timeout_ms = 20000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      drain_stderr();
      auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      if (eof_) return std::nullopt;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, int(std::min<long>(left.count(), 100))) <= 0) continue;
      char chunk[65536];
      ssize_t n = read(out_, chunk, sizeof chunk);
      if (n <= 0) eof_ = true;
      else buf_.append(chunk, size_t(n));
    }
  }

  // The next message whose "t" is not in `skip` (default: unsolicited telemetry).
  std::optional<nlohmann::json> read_message(int timeout_ms = 20000, std::vector<std::string> skip = {"gpu"}) {
    for (;;) {
      auto line = read_line(timeout_ms);
      if (!line) return std::nullopt;
      auto j = nlohmann::json::parse(*line, nullptr, false);
      if (j.is_discarded()) return nlohmann::json{{"t", "<not json>"}, {"line", *line}};
      bool skipped = false;
      for (auto& s : skip)
        if (j.value("t", "") == s) skipped = true;
      if (!skipped) return j;
    }
  }

  // Exit status after the process ended (waits up to timeout_ms); -1 on timeout.
  int wait_exit(int timeout_ms = 20000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      drain_stderr();
      int st = 0;
      pid_t r = waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        reaped_ = true;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      usleep(10000);
    }
    return -1;
  }

  const std::string& stderr_text() {
    drain_stderr();
    return err_text_;
  }
  pid_t pid() const { return pid_; }

 private:
  void drain_stderr() {
    char chunk[65536];
    for (;;) {
      ssize_t n = read(err_, chunk, sizeof chunk);
      if (n <= 0) break;
      err_text_.append(chunk, size_t(n));
    }
  }

  pid_t pid_ = -1;
  int in_ = -1, out_ = -1, err_ = -1;
  bool eof_ = false, reaped_ = false;
  std::string buf_, err_text_;
};

}  // namespace razor::test
