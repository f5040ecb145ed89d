#include "eval/serve.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "eval/client.h"
#include "util/atomic_file.h"
#include "util/gpu_count.h"
#include "util/shell.h"

namespace razor::eval {
namespace fs = std::filesystem;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string fmt_num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

int dev_node_count() {
  int n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator("/dev", ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::string f = it->path().filename().string();
    if (f.size() > 6 && f.compare(0, 6, "nvidia") == 0 &&
        f.find_first_not_of("0123456789", 6) == std::string::npos)
      ++n;
  }
  return n;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

// The program as execv wants it: a path with a '/' is taken as is, a bare name is looked up on PATH.
std::string resolve_program(const std::string& prog) {
  if (prog.find('/') != std::string::npos) return ::access(prog.c_str(), X_OK) == 0 ? prog : std::string();
  const char* p = std::getenv("PATH");
  std::stringstream ss(p ? p : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string c = (dir.empty() ? std::string(".") : dir) + "/" + prog;  // an empty entry is the cwd
    if (::access(c.c_str(), X_OK) == 0 && !fs::is_directory(c)) return c;
  }
  return {};
}

// The address clients use to reach a server bound to `host`.
std::string connect_host(const std::string& host) {
  if (host.empty() || host == "0.0.0.0") return "127.0.0.1";
  if (host == "::" || host == "[::]") return "[::1]";
  if (host.find(':') != std::string::npos && host.front() != '[') return "[" + host + "]";
  return host;
}

std::string describe_wait_status(int st) {
  if (WIFEXITED(st)) return "exited with status " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) {
    const char* n = ::strsignal(WTERMSIG(st));
    return "was killed by signal " + std::to_string(WTERMSIG(st)) + (n ? std::string(" (") + n + ")" : "");
  }
  return "ended (wait status " + std::to_string(st) + ")";
}

// Whether a process of group `pgid` is still running. Zombies do not count: an orphaned member is reaped by
// init (or not at all, in containers whose PID 1 never reaps), which is no business of ours.
bool group_running(pid_t pgid) {
  if (::kill(-pgid, 0) != 0) return false;
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc", ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(it->path() / "stat");
    std::string stat;
    if (!std::getline(f, stat)) continue;
    auto rp = stat.rfind(')');  // "pid (comm) S ppid pgrp ...": comm may hold spaces and parentheses
    if (rp == std::string::npos) continue;
    std::istringstream rest(stat.substr(rp + 1));
    char state = 0;
    long ppid = 0, pgrp = 0;
    if (!(rest >> state >> ppid >> pgrp)) continue;
    if (pgrp == pgid && state != 'Z' && state != 'X') return true;
  }
  return false;
}

}  // namespace

int visible_gpu_count(const char* cvd, int runtime_count, int dev_nodes) {
  if (cvd) {
    int n = 0;
    std::stringstream ss(cvd);
    std::string e;
    while (std::getline(ss, e, ',')) {
      size_t a = e.find_first_not_of(" \t"), b = e.find_last_not_of(" \t");
      if (a == std::string::npos) break;  // an empty entry ends the list
      e = e.substr(a, b - a + 1);
      if (e[0] == '-') break;              // CUDA stops at the first invalid index ("-1" hides every GPU)
      ++n;
    }
    return std::max(1, n);
  }
  if (runtime_count > 0) return runtime_count;
  if (dev_nodes > 0) return dev_nodes;
  return 1;
}

int visible_gpu_count() {
  const char* cvd = std::getenv("CUDA_VISIBLE_DEVICES");
  if (cvd) return visible_gpu_count(cvd, 0, 0);
  const int rt = cuda_driver_device_count();
  return visible_gpu_count(nullptr, rt, rt > 0 ? 0 : dev_node_count());
}

result<std::vector<std::string>> server_argv(const serve_options& o, int port, int gpus) {
  if (gpus < 1) return make_error(errc::invalid_argument, "tensor parallel size must be at least 1");
  auto subst = [&](const std::string& s) {
    std::string r = replace_all(s, "{model}", o.model);
    r = replace_all(r, "{port}", std::to_string(port));
    r = replace_all(r, "{host}", o.host);
    return replace_all(r, "{name}", o.name);
  };
  std::vector<std::string> v;
  if (o.engine == "vllm") {
    if (o.model.empty()) return make_error(errc::invalid_argument, "vllm: the model (folder or repo id) is required");
    v = {o.program.empty() ? "vllm" : o.program, "serve", o.model, "--host", o.host, "--port", std::to_string(port),
         "--tensor-parallel-size", std::to_string(gpus)};
    if (!o.name.empty()) v.insert(v.end(), {"--served-model-name", o.name});
    if (o.ctx > 0) v.insert(v.end(), {"--max-model-len", std::to_string(o.ctx)});
    if (o.gpu_memory_utilization > 0) v.insert(v.end(), {"--gpu-memory-utilization", fmt_num(o.gpu_memory_utilization)});
  } else if (o.engine == "llama-server") {
    if (o.model.empty()) return make_error(errc::invalid_argument, "llama-server: the model (.gguf) is required");
    v = {o.program.empty() ? "llama-server" : o.program, "-m", o.model, "--host", o.host, "--port",
         std::to_string(port), "-ngl", "999", "-c", std::to_string(o.ctx > 0 ? o.ctx : kDefaultLlamaCtx)};
    if (!o.name.empty()) v.insert(v.end(), {"--alias", o.name});
    if (o.n_cpu_moe > 0) v.insert(v.end(), {"--n-cpu-moe", std::to_string(o.n_cpu_moe)});
    if (gpus > 1) {
      std::string ts = "1";
      for (int i = 1; i < gpus; ++i) ts += ",1";
      v.insert(v.end(), {"-sm", "layer", "-ts", ts});
    }
  } else if (o.engine == "command") {
    if (o.command.empty() || o.command[0].empty())
      return make_error(errc::invalid_argument, "engine \"command\" needs the command (program and arguments)");
    for (auto& a : o.command) v.push_back(subst(a));
    if (!o.program.empty()) v[0] = o.program;
  } else {
    return make_error(errc::invalid_argument,
                      "unknown engine \"" + o.engine + "\" (known: vllm, llama-server, command)");
  }
  for (auto& a : o.args) v.push_back(subst(a));
  return v;
}

result<int> free_port(const std::string& host) {
  addrinfo hints{}, *ai = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  int rc = ::getaddrinfo(h.empty() ? nullptr : h.c_str(), "0", &hints, &ai);
  if (rc != 0 || !ai) return make_error(errc::invalid_argument, "host \"" + host + "\": " + ::gai_strerror(rc));
  int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0) {
    ::freeaddrinfo(ai);
    return make_error(errc::io, std::string("socket: ") + std::strerror(errno));
  }
  int port = -1;
  if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      if (ss.ss_family == AF_INET) port = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
      else if (ss.ss_family == AF_INET6) port = ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    }
  }
  int err = errno;
  ::close(fd);
  ::freeaddrinfo(ai);
  if (port <= 0) return make_error(errc::io, "no free port on " + host + ": " + std::strerror(err));
  return port;
}


// ---- inference_server ---------------------------------------------------------------------------------------

result<std::unique_ptr<inference_server>> inference_server::start(const serve_options& o, const progress_fn& progress) {
  std::unique_ptr<inference_server> s(new inference_server());
  s->opt_ = o;
  s->gpus_ = o.tensor_parallel > 0 ? o.tensor_parallel : visible_gpu_count();
  if (o.port < 0 || o.port > 65535) return make_error(errc::invalid_argument, "port must be in [0, 65535]");
  if (o.port > 0) {
    s->port_ = o.port;
  } else {
    RAZOR_ASSIGN_OR_RETURN(s->port_, free_port(o.host));
  }
  RAZOR_ASSIGN_OR_RETURN(s->argv_, server_argv(o, s->port_, s->gpus_));
  std::string exe = resolve_program(s->argv_[0]);
  if (exe.empty())
    return make_error(errc::not_found, s->argv_[0] + ": not found or not executable" +
                                           (s->argv_[0].find('/') == std::string::npos ? " on PATH" : "") +
                                           " (install it, or name the program: params.program / --program)");
  if (o.engine == "llama-server" && !fs::exists(o.model))
    return make_error(errc::not_found, o.model + ": no such GGUF file");
  s->url_ = "http://" + connect_host(o.host) + ":" + std::to_string(s->port_) + "/v1";

  s->log_ = o.log_path.empty()
                ? (fs::temp_directory_path() / ("razor-serve-" + std::to_string(::getpid()) + "-" +
                                                std::to_string(s->port_) + ".log")).string()
                : o.log_path;
  std::error_code ec;
  if (fs::path(s->log_).has_parent_path()) fs::create_directories(fs::path(s->log_).parent_path(), ec);
  int log_fd = ::open(s->log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) return make_error(errc::io, s->log_ + ": cannot create the server log: " + std::strerror(errno));
  std::string head = "razor serve: " + shell_join(s->argv_) + "\n";
  if (::write(log_fd, head.data(), head.size()) < 0) { /* the log is best effort */ }
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);

  // Everything the child needs is prepared before fork: the parent has threads.
  std::vector<char*> cargv;
  for (auto& a : s->argv_) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    return make_error(errc::external, std::string("fork: ") + std::strerror(e));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);  // the parent died before prctl
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::syscall(SYS_close_range, 3u, ~0u, 0u);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);  // the worker ignores it; ignored dispositions survive exec
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::execv(exe.c_str(), cargv.data());
    const char msg[] = "razor serve: exec failed: ";
    if (::write(2, msg, sizeof msg - 1) < 0 || ::write(2, exe.c_str(), exe.size()) < 0) ::_exit(127);
    const char* e = ::strerror(errno);
    if (::write(2, ": ", 2) < 0 || ::write(2, e, std::strlen(e)) < 0 || ::write(2, "\n", 1) < 0) ::_exit(127);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here: no window in which a stop() would miss the group
  ::close(log_fd);
  if (null_fd >= 0) ::close(null_fd);
  s->pid_ = pid;
  s->t0_ = now_s();

  // Readiness: GET /v1/models answers with a list (vLLM binds its port only after loading; llama-server
  // answers 503 while it loads).
  client_options co;
  co.endpoint = s->url_;
  co.retries = 0;
  co.connect_timeout_s = 2;
  co.timeout_s = 5;
  client c(co);
  std::string last = "no answer yet";
  for (;;) {
    if (!s->alive()) return s->died_error("before it was ready");
    auto m = c.models();
    if (m.ok()) {
      s->models_ = *m;
      return s;
    }
    last = m.error().message();
    double el = now_s() - s->t0_;
    if (progress && !progress(el, o.ready_timeout_s, ("loading " + o.engine + " (" + s->url_ + ")").c_str())) {
      s->stop();
      return make_error(errc::cancelled, "cancelled while the " + o.engine + " server was loading (stopped pid " +
                                             std::to_string(pid) + ")");
    }
    if (el >= o.ready_timeout_s) {
      if (!s->alive()) return s->died_error("before it was ready");
      bool killed = s->stop();
      std::string tail = file_tail(s->log_, 20);
      return make_error(errc::external, o.engine + " server (pid " + std::to_string(pid) + ") was not ready after " +
                                            fmt_num(o.ready_timeout_s) + " s (" + last + "); stopped it" +
                                            (killed ? " with SIGKILL" : "") + ". Last lines of " + s->log_ +
                                            (tail.empty() ? std::string(": (empty)") : ":\n" + tail));
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(o.poll_interval_s, o.ready_timeout_s - el)));
  }
}

inference_server::~inference_server() { stop(); }

double inference_server::uptime_s() const { return now_s() - t0_; }

bool inference_server::alive(std::string* why) {
  if (pid_ <= 0) return false;
  if (!reaped_) {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == 0) return true;
    reaped_ = true;
    wait_status_ = r == pid_ ? st : -1;
  }
  if (why) *why = wait_status_ == -1 ? "could not be waited for (already reaped)" : describe_wait_status(wait_status_);
  return false;
}

status inference_server::died_error(const std::string& when) {
  std::string why;
  alive(&why);
  stop();  // what the leader left in its group
  std::string tail = file_tail(log_, 20);
  return make_error(errc::external, opt_.engine + " server (pid " + std::to_string(pid_) + ") " + why + " " + when +
                                        ". Last lines of " + log_ +
                                        (tail.empty() ? std::string(": (empty)") : ":\n" + tail));
}

bool inference_server::stop() {
  if (pid_ <= 0 || stopped_) return false;
  stopped_ = true;
  // The group may outlive its leader (vLLM's tensor-parallel workers): signal it even when the leader is gone.
  ::kill(-pid_, SIGTERM);
  if (!reaped_) ::kill(pid_, SIGTERM);
  double deadline = now_s() + opt_.stop_grace_s;
  bool killed = false;
  for (;;) {
    alive();
    bool group = group_running(pid_);
    if (reaped_ && !group) break;
    if (now_s() >= deadline) {
      ::kill(-pid_, SIGKILL);
      if (!reaped_) {
        ::kill(pid_, SIGKILL);
        int st = 0;
        if (::waitpid(pid_, &st, 0) == pid_) wait_status_ = st;
        reaped_ = true;
      }
      killed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return killed;
}

status inference_server::serve(const progress_fn& progress, const std::function<bool()>& should_stop,
                               double interval_s) {
  double next = 0;
  for (;;) {
    if (!alive()) return died_error("while serving " + url_);
    double up = uptime_s();
    bool go = !(should_stop && should_stop());
    if (go && progress && up >= next) {
      go = progress(up, 0, ("serving " + url_).c_str());
      next = up + interval_s;
    }
    if (!go) {
      bool killed = stop();
      return make_error(errc::cancelled, "stopped the " + opt_.engine + " server at " + url_ + " (pid " +
                                             std::to_string(pid_) + ", up " + fmt_num(double(int64_t(up))) + " s" +
                                             (killed ? ", killed after " + fmt_num(opt_.stop_grace_s) + " s" : "") +
                                             ")");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace razor::eval
