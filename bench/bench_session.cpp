// The cost of the remote path's layers on the worker protocol: the same echo requests sent to
//   (a) a stdio worker                      `razor worker --cpu --telemetry-ms 0`   (the floor)
//   (b) a session worker through a bridge   `razor worker --connect ...`            (socket relay + journal)
//   (c) optionally (b) through ssh          --ssh "ssh -F cfg host"                 (encryption, sshd)
// Pipelined throughput (N requests written at once, N answers read) and ping-pong latency (one at a time).
//
//   bench_session [--razor PATH] [--requests N] [--pingpong M] [--ssh "ssh args... host"]
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "util/paths.h"

namespace {

using clk = std::chrono::steady_clock;

struct child {
  pid_t pid = -1;
  int in = -1, out = -1;
  std::string buf;

  bool start(const std::vector<std::string>& argv) {
    int a[2], b[2];
    if (pipe(a) || pipe(b)) return false;
    pid = fork();
    if (pid == 0) {
      dup2(a[0], 0);
      dup2(b[1], 1);
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, 2);
      for (int fd : {a[0], a[1], b[0], b[1], devnull}) close(fd);
      std::vector<char*> v;
      for (auto& s : argv) v.push_back(const_cast<char*>(s.c_str()));
      v.push_back(nullptr);
      execvp(v[0], v.data());
      _exit(127);
    }
    close(a[0]);
    close(b[1]);
    in = a[1];
    out = b[0];
    return pid > 0;
  }
  bool write_all(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t w = write(in, s.data() + off, s.size() - off);
      if (w <= 0) return false;
      off += size_t(w);
    }
    return true;
  }
  // The next line (blocking); false at end of output.
  bool line(std::string* l) {
    for (;;) {
      auto nl = buf.find('\n');
      if (nl != std::string::npos) {
        *l = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        return true;
      }
      char c[1 << 16];
      ssize_t n = read(out, c, sizeof c);
      if (n <= 0) return false;
      buf.append(c, size_t(n));
    }
  }
  // Reads lines until one with "t":"result" (or "error"); false at end of output.
  bool answer() {
    std::string l;
    while (line(&l))
      if (l.find("\"t\":\"result\"") != std::string::npos || l.find("\"t\":\"error\"") != std::string::npos) return true;
    return false;
  }
  void stop() {
    write_all("{\"t\":\"shutdown\"}\n");
    close(in);
    std::string l;
    while (line(&l)) {
    }
    int st;
    waitpid(pid, &st, 0);
    close(out);
  }
};

struct figures {
  double per_s = 0, p50_us = 0, p99_us = 0;
};

figures measure(const std::vector<std::string>& argv, int n, int m, int64_t first_id) {
  figures f;
  child c;
  if (!c.start(argv)) return f;
  std::string hello;
  if (!c.line(&hello)) {
    std::fprintf(stderr, "no hello from %s\n", argv[0].c_str());
    return f;
  }
  // Warm-up, then pipelined.
  int64_t id = first_id;
  c.write_all("{\"t\":\"req\",\"id\":" + std::to_string(id++) + ",\"method\":\"echo\",\"params\":{}}\n");
  c.answer();
  std::string batch;
  for (int i = 0; i < n; ++i)
    batch += "{\"t\":\"req\",\"id\":" + std::to_string(id++) + ",\"method\":\"echo\",\"params\":{\"i\":" + std::to_string(i) + "}}\n";
  auto t0 = clk::now();
  // The worker queues at most --max-queue requests: send in windows of 50 to stay under the default 64.
  size_t pos = 0;
  int sent = 0, got = 0;
  while (got < n) {
    while (sent < n && sent - got < 50) {
      size_t nl = batch.find('\n', pos);
      c.write_all(batch.substr(pos, nl + 1 - pos));
      pos = nl + 1;
      ++sent;
    }
    if (!c.answer()) break;
    ++got;
  }
  double s = std::chrono::duration<double>(clk::now() - t0).count();
  f.per_s = got / s;
  std::vector<double> lat;
  for (int i = 0; i < m; ++i) {
    auto a = clk::now();
    c.write_all("{\"t\":\"req\",\"id\":" + std::to_string(id++) + ",\"method\":\"echo\",\"params\":{}}\n");
    if (!c.answer()) break;
    lat.push_back(std::chrono::duration<double, std::micro>(clk::now() - a).count());
  }
  std::sort(lat.begin(), lat.end());
  if (!lat.empty()) {
    f.p50_us = lat[lat.size() / 2];
    f.p99_us = lat[std::min(lat.size() - 1, lat.size() * 99 / 100)];
  }
  c.stop();
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  std::string razor = razor::exe_dir() + "/../razor";
  if (!std::filesystem::exists(razor)) razor = razor::exe_dir() + "/razor";
  int n = 20000, m = 2000;
  std::string ssh;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--razor") razor = argv[i + 1];
    else if (k == "--requests") n = std::atoi(argv[i + 1]);
    else if (k == "--pingpong") m = std::atoi(argv[i + 1]);
    else if (k == "--ssh") ssh = argv[i + 1];
  }
  razor = std::filesystem::absolute(razor).string();
  auto ws = std::filesystem::temp_directory_path() / ("bench-session-" + std::to_string(getpid()));
  std::filesystem::create_directories(ws);
  std::vector<std::string> connect = {razor, "worker", "--connect", "--workspace", ws.string(), "--slot", "bench",
                                      "--cpu", "--telemetry-ms", "0", "--idle-exit", "60"};

  std::printf("%-34s %12s %10s %10s\n", "path", "requests/s", "p50 us", "p99 us");
  auto row = [](const char* name, const figures& f, const figures& floor) {
    std::printf("%-34s %12.0f %10.1f %10.1f   (%.2fx the stdio floor's time per request)\n", name, f.per_s, f.p50_us,
                f.p99_us, f.per_s > 0 ? floor.per_s / f.per_s : 0.0);
  };
  figures direct = measure({razor, "worker", "--cpu", "--telemetry-ms", "0"}, n, m, 1);
  row("stdio worker (floor)", direct, direct);
  // Ids grow across runs: the session remembers the earlier ones until they are forgotten.
  figures session = measure(connect, n, m, 1000000);
  row("session worker via bridge", session, direct);
  if (!ssh.empty()) {
    std::vector<std::string> via;
    std::stringstream ss(ssh);
    for (std::string w; ss >> w;) via.push_back(w);
    std::string remote;
    for (auto& w : connect) remote += (remote.empty() ? "" : " ") + w;
    via.push_back("--");
    via.push_back(remote);
    figures s = measure(via, n, m, 2000000);
    row("session worker via ssh + bridge", s, direct);
  }
  // End the session worker.
  child c;
  if (c.start(connect)) {
    std::string l;
    c.line(&l);
    c.stop();
  }
  std::filesystem::remove_all(ws);
  return 0;
}
