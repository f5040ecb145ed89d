#include "jobs/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "jobs/gpu_telemetry.h"
#include "jobs/methods.h"
#include "jobs/protocol.h"
#include "jobs/session.h"
#include "kernels/cuda_info.h"
#include "util/printable.h"
#include "util/mapped_file.h"
#include "util/temp_registry.h"

namespace razor::jobs {

using nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

// Splits a byte stream into lines; a line longer than `max` is reported once and dropped up to its newline.
struct line_splitter {
  std::string buf;
  bool discarding = false;
  template <class OnLine, class OnTooLong>
  void feed(const char* p, size_t n, size_t max, OnLine&& on_line, OnTooLong&& on_too_long) {
    size_t start = 0;
    for (size_t i = 0; i < n; ++i) {
      if (p[i] != '\n') continue;
      if (discarding) discarding = false;
      else {
        buf.append(p + start, i - start);
        on_line(buf);
      }
      buf.clear();
      start = i + 1;
    }
    if (discarding) return;
    buf.append(p + start, n - start);
    if (buf.size() > max) {
      on_too_long();
      buf.clear();
      discarding = true;
    }
  }
};

// Writes all of `n` bytes; a descriptor that stays unwritable for `stall_ms` (a client that stopped reading)
// counts as failed. Returns false on failure.
bool write_all(int fd, const char* p, size_t n, int stall_ms) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd pfd{fd, POLLOUT, 0};
        int r = ::poll(&pfd, 1, stall_ms);
        if (r <= 0) return false;
        continue;
      }
      return false;
    }
    p += w;
    n -= size_t(w);
  }
  return true;
}

class runner {
 public:
  runner(const worker_options& opt, int out_fd) : opt_(opt), out_fd_(out_fd) {
    if (opt_.max_line == 0) opt_.max_line = size_t(kMaxLineBytes);
  }

  int run(int listen_fd = -1) {
    std::string why;
    json gpus = gpu_list(&why);
    hello_ = hello_message(gpus, method_names(), opt_.cpu_only ? "cpu" : "gpu");
    hello_["cuda"] = cu::built_with_cuda();
    hello_["gpus_note"] = gpus.empty() ? why : std::string();
    hello_["queue"] = opt_.max_queue;
    hello_["schema"] = schema_json();  // every method's params (methods.h), for forms and the CLI alike
    hello_["enums"] = enums_json();
    session_ = listen_fd >= 0;
    started_ = std::time(nullptr);
    if (!session_) send_direct(hello_);

    std::thread reader([this, listen_fd] { session_ ? session_loop(listen_fd) : read_loop(); });
    std::thread ticker([this] { tick_loop(); });
    execute_loop();
    {
      std::lock_guard lk(q_mu_);
      stop_ = true;
    }
    q_cv_.notify_all();
    ticker.join();
    reader.join();
    send_direct({{"t", "bye"}});
    std::lock_guard lk(out_mu_);
    if (!session_) return broken_ ? 1 : 0;
    if (out_fd_ >= 0) ::close(out_fd_);
    out_fd_ = -1;
    return 0;
  }

 private:
  // ---- output: whole lines under one mutex ----
  // A job's event (or a worker-wide one: no integer id). In session mode it is recorded in the job's journal
  // and reaches the connection only if that connection submitted or attached the job.
  void send(const json& m) {
    std::lock_guard lk(out_mu_);
    if (session_) {
      auto id = m.find("id");
      if (id != m.end() && id->is_number_integer()) {
        const int64_t jid = id->get<int64_t>();
        record(jid, m);
        if (!subscribed_.count(jid)) return;
      }
    }
    write_line_locked(m);
  }
  // An answer to the line just read (a refusal, a replay, the hello): never recorded, always delivered.
  void send_direct(const json& m) {
    std::lock_guard lk(out_mu_);
    write_line_locked(m);
  }
  // A failed write: in stdio mode the client is gone and the worker stops; in session mode the connection is
  // dropped (the reader closes it) and the jobs go on.
  void write_line_locked(const json& m) {
    if (broken_ || out_fd_ < 0) return;
    std::string line = encode_line(m);
    line.push_back('\n');
    if (write_all(out_fd_, line.data(), line.size(), kStallMs)) return;
    broken_ = true;
    if (!session_) request_stop();
  }

  // ---- session mode: the job journal (under out_mu_) ----
  struct job_record {
    std::string method;
    std::string state = "queued";  // queued, running, ended
    std::vector<json> events;      // log and artifact events, in order
    size_t dropped = 0;            // log events beyond kMaxJournalEvents
    json progress;                 // the last progress event
    json end;                      // result or error
  };
  static constexpr size_t kMaxJournalEvents = 4096;
  static constexpr size_t kMaxEndedRecords = 256;

  void record(int64_t id, const json& m) {
    auto it = journal_.find(id);
    if (it == journal_.end()) return;  // not a job of this worker (a refusal)
    job_record& r = it->second;
    const std::string& t = m["t"].get_ref<const std::string&>();
    if (t == "progress") r.progress = m;
    else if (t == "result" || t == "error") {
      r.end = m;
      r.state = "ended";
      ended_order_.push_back(id);
      while (ended_order_.size() > kMaxEndedRecords) {  // the oldest ended jobs nobody attached
        journal_.erase(ended_order_.front());
        ended_order_.pop_front();
      }
    } else if (t == "artifact" || r.events.size() < kMaxJournalEvents) r.events.push_back(m);
    else ++r.dropped;
  }

  json session_hello() const {  // under out_mu_
    json h = hello_;
    json jobs = json::array();
    int64_t next = 1;
    for (auto& [id, r] : journal_) {
      jobs.push_back({{"id", id}, {"method", r.method}, {"state", r.state}});
      next = std::max(next, id + 1);
    }
    // The workspace's other live sessions: a workbench finds the services (svc-*) an earlier one left running.
    const std::string ws = std::filesystem::current_path().string();
    json others = json::array();
    for (auto& si : list_sessions(ws))
      if (si.alive && si.slot != opt_.slot) others.push_back({{"slot", si.slot}, {"pid", si.pid}});
    h["session"] = {{"slot", opt_.slot}, {"workspace", ws},  {"started", int64_t(started_)},
                    {"jobs", jobs},      {"next_id", next}, {"others", others}};
    return h;
  }

  void attach(int64_t id) {
    std::lock_guard lk(out_mu_);
    auto it = journal_.find(id);
    if (it == journal_.end()) {
      write_line_locked(error_message(id, "unknown_job",
                                      "this worker (pid " + std::to_string(getpid()) + ") has no job " +
                                          std::to_string(id) + ": it was restarted, or the job was forgotten"));
      return;
    }
    const job_record& r = it->second;
    subscribed_.insert(id);
    if (r.dropped)
      write_line_locked(log_message(id, "warn", std::to_string(r.dropped) + " log lines of this job were not kept"));
    for (auto& e : r.events) write_line_locked(e);
    if (r.state != "ended" && !r.progress.is_null()) write_line_locked(r.progress);
    if (r.state == "ended") write_line_locked(r.end);
  }

  void forget(int64_t id) {
    std::lock_guard lk(out_mu_);
    auto it = journal_.find(id);
    if (it == journal_.end() || it->second.state != "ended") return;
    journal_.erase(it);
    ended_order_.erase(std::remove(ended_order_.begin(), ended_order_.end(), id), ended_order_.end());
    subscribed_.erase(id);
  }

  void request_stop() {
    {
      std::lock_guard lk(q_mu_);
      shutting_down_ = true;
      stop_ = true;
      if (running_id_) cancelled_ = true;
    }
    q_cv_.notify_all();
  }

  // ---- reader thread ----
  void read_loop() {
    line_splitter lines;
    char chunk[1 << 16];
    for (;;) {
      {
        std::lock_guard lk(q_mu_);
        if (stop_ || input_closed_) return;
      }
      pollfd pfd{opt_.in_fd, POLLIN, 0};
      int pr = ::poll(&pfd, 1, 100);
      if (pr < 0 && errno != EINTR) break;
      if (pr <= 0) continue;
      ssize_t n = ::read(opt_.in_fd, chunk, sizeof chunk);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        break;
      }
      if (n == 0) break;  // end of input = shutdown
      feed(lines, chunk, size_t(n));
    }
    begin_shutdown();
    std::lock_guard lk(q_mu_);
    input_closed_ = true;
  }

  void feed(line_splitter& lines, const char* p, size_t n) {
    lines.feed(
        p, n, opt_.max_line, [this](std::string& line) { handle_line(line); },
        [this] {
          send_direct(error_message(std::nullopt, "bad_request",
                                    "a request line longer than " + std::to_string(opt_.max_line) +
                                        " bytes was discarded"));
        });
  }

  // ---- session mode: accept clients on the socket, one at a time ----
  void session_loop(int listen_fd) {
    line_splitter lines;
    char chunk[1 << 16];
    int client = -1;      // the reader's view; out_fd_ (under out_mu_) is the same descriptor
    bool reading = true;  // false once the client ended its input after a shutdown
    auto idle_since = clock_type::now();
    auto drop_client = [&] {
      std::lock_guard lk(out_mu_);
      if (client >= 0) ::close(client);
      client = out_fd_ = -1;
      broken_ = false;
      subscribed_.clear();
    };
    for (;;) {
      {
        std::lock_guard lk(q_mu_);
        if (stop_) break;
      }
      pollfd pfd[2] = {{listen_fd, POLLIN, 0}, {reading ? client : -1, POLLIN, 0}};
      int pr = ::poll(pfd, client >= 0 ? 2 : 1, 100);
      if (pr < 0 && errno != EINTR) break;
      if (pr > 0 && (pfd[0].revents & POLLIN)) {
        int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0 && !same_user(fd)) {
          ::close(fd);
        } else if (fd >= 0) {
          if (client >= 0) {  // the old client is told, so that it does not reconnect and take it back
            std::fprintf(stderr, "razor worker: a new client took over the session\n");
            send_direct({{"t", "bye"}, {"reason", "taken_over"}});
            drop_client();
          }
          lines = line_splitter();
          reading = true;
          std::lock_guard lk(out_mu_);
          client = out_fd_ = fd;
          broken_ = false;
          write_line_locked(session_hello());
        }
      }
      if (client >= 0 && pr > 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t n = ::read(client, chunk, sizeof chunk);
        if (n > 0) {
          feed(lines, chunk, size_t(n));
        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {  // end of input, or a dead connection
          bool down;
          {
            std::lock_guard lk(q_mu_);
            down = shutting_down_;
          }
          if (down) reading = false;  // after a shutdown: keep the connection for the bye
          else drop_client();         // detach: the jobs go on
        }
      }
      bool broken;
      {
        std::lock_guard lk(out_mu_);
        broken = broken_;
      }
      if (client >= 0 && broken) drop_client();
      // Idle: no client, nothing running or queued.
      bool busy;
      {
        std::lock_guard lk(q_mu_);
        busy = running_id_.has_value() || !queue_.empty();
      }
      if (client >= 0 || busy) idle_since = clock_type::now();
      else if (opt_.idle_exit_s > 0 && clock_type::now() - idle_since > std::chrono::seconds(opt_.idle_exit_s)) {
        std::fprintf(stderr, "razor worker: idle for %d s with no client, exiting\n", opt_.idle_exit_s);
        begin_shutdown();
      }
    }
    // The client stays connected for the bye (run() closes it).
  }

  static bool same_user(int fd) {
    ucred cr{};
    socklen_t len = sizeof cr;
    return ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.uid == ::getuid();
  }

  // One request line. A line must never end the worker: the reader thread has no one above it to catch an
  // exception (std::terminate would kill every queued job), so anything thrown here (bad_alloc on a huge but
  // valid request, a library's surprise) is answered as bad_request, addressed to the line's id when known.
  void handle_line(std::string& line) {
    std::optional<int64_t> id;
    try {
      handle_line_unguarded(line, &id);
    } catch (const std::exception& e) {
      send_direct(error_message(id, "bad_request", "the request could not be handled: " + printable(e.what())));
    } catch (...) {
      send_direct(error_message(id, "bad_request", "the request could not be handled (unknown exception)"));
    }
  }

  void handle_line_unguarded(std::string& line, std::optional<int64_t>* id_out) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) return;  // blank lines are ignored
    std::optional<int64_t>& id = *id_out;
    auto r = parse_request(line, &id);
    if (!r) {
      send_direct(error_message(id, "bad_request", r.error().message()));
      return;
    }
    switch (r->kind) {
      case request_kind::shutdown:
        begin_shutdown();
        return;
      case request_kind::cancel:
        cancel(r->id);
        return;
      case request_kind::req:
        enqueue(std::move(r).value());
        return;
      case request_kind::attach:
      case request_kind::forget:
        if (!session_) {
          send_direct(error_message(r->id, "bad_request", "attach and forget need a session worker (--listen)"));
          return;
        }
        if (r->kind == request_kind::attach) attach(r->id);
        else forget(r->id);
        return;
      case request_kind::kill:
        kill(r->id);
        return;
    }
  }

  // The remote form of SIGKILL: the running job is answered "cancelled", its partial output removed, and the
  // process ends now (queued jobs go with it; a session client finds them unknown after reconnecting).
  void kill(int64_t id) {
    {
      std::lock_guard lk(q_mu_);
      if (running_id_ != id) return;
    }
    send(error_message(id, "cancelled", "killed on request (the job did not stop after its cancel)"));
    remove_registered_temps();  // every temporary the job holds (util/temp_registry.h), wherever it writes
    std::fflush(stderr);
    ::_exit(3);
  }

  void enqueue(request r) {
    if (!find_method(r.method)) {
      std::string names;
      for (auto& m : method_names()) names += (names.empty() ? "" : ", ") + m;
      send_direct(error_message(r.id, "unknown_method", "no method \"" + r.method + "\" (this worker has: " + names + ")"));
      return;
    }
    if (session_) {
      std::lock_guard olk(out_mu_);
      if (journal_.count(r.id)) {
        write_line_locked(error_message(r.id, "duplicate_id", "request id " + std::to_string(r.id) +
                                                                  " is known to this session (see the hello's jobs)"));
        return;
      }
    }
    std::unique_lock lk(q_mu_);
    std::optional<json> refuse;
    if (shutting_down_) {
      refuse = error_message(r.id, "shutting_down", "the worker is shutting down");
    } else if (running_id_ == r.id || std::any_of(queue_.begin(), queue_.end(), [&](auto& q) { return q.id == r.id; })) {
      refuse = error_message(r.id, "duplicate_id", "request id " + std::to_string(r.id) + " is already queued or running");
    } else if (queue_.size() >= opt_.max_queue) {
      refuse = error_message(r.id, "busy", "the worker's queue is full (" + std::to_string(opt_.max_queue) +
                                               " requests wait behind the running one)");
    } else {
      if (session_) {
        std::lock_guard olk(out_mu_);
        job_record rec;
        rec.method = r.method;
        journal_[r.id] = std::move(rec);
        subscribed_.insert(r.id);
      }
      queue_.push_back(std::move(r));
    }
    lk.unlock();
    if (refuse) send_direct(*refuse);
    else q_cv_.notify_all();
  }

  void cancel(int64_t id) {
    std::unique_lock lk(q_mu_);
    if (running_id_ == id) {
      cancelled_ = true;
      return;
    }
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (it->id != id) continue;
      queue_.erase(it);
      lk.unlock();
      send(error_message(id, "cancelled", "cancelled before it started"));
      return;
    }
    // Unknown or already finished: nothing to do (its result or error was sent or is being sent).
  }

  void begin_shutdown() {
    std::deque<request> dropped;
    {
      std::lock_guard lk(q_mu_);
      if (shutting_down_) return;
      shutting_down_ = true;
      if (running_id_) cancelled_ = true;
      dropped.swap(queue_);
    }
    q_cv_.notify_all();
    for (auto& r : dropped) send(error_message(r.id, "shutting_down", "the worker shut down before the job started"));
  }

  // ---- ticker thread: throttled progress and telemetry ----
  void tick_loop() {
    std::optional<gpu_telemetry> tel;
    if (opt_.telemetry_ms > 0) {
      tel.emplace(opt_.nvml_library);
      if (!tel->available()) {
        send(log_message(std::nullopt, "info", "GPU telemetry off: " + tel->why_unavailable()));
        tel.reset();
      }
    }
    auto next_sample = clock_type::now();
    for (;;) {
      {
        std::unique_lock lk(q_mu_);
        q_cv_.wait_for(lk, std::chrono::milliseconds(25), [this] { return stop_; });
        if (stop_) return;
      }
      auto now = clock_type::now();
      {
        std::lock_guard lk(p_mu_);
        if (job_active_)
          if (auto v = throttle_.flush_due(now)) send(progress_message(job_id_, v->done, v->total, v->what));
      }
      if (tel && now >= next_sample) {
        send(tel->sample());
        next_sample = now + std::chrono::milliseconds(opt_.telemetry_ms);
      }
    }
  }

  // ---- the runner (calling thread) ----
  void execute_loop() {
    for (;;) {
      request r;
      {
        std::unique_lock lk(q_mu_);
        q_cv_.wait(lk, [this] { return stop_ || !queue_.empty() || shutting_down_; });
        if (queue_.empty() || stop_) return;  // shutting down with nothing queued, or the client is gone
        r = std::move(queue_.front());
        queue_.pop_front();
        running_id_ = r.id;
        running_params_ = r.params;
        cancelled_ = false;
      }
      if (session_) {
        std::lock_guard olk(out_mu_);
        if (auto it = journal_.find(r.id); it != journal_.end()) it->second.state = "running";
      }
      run_job(r);
      std::lock_guard lk(q_mu_);
      running_id_.reset();
    }
  }

  void run_job(const request& r) {
    const method_def* m = find_method(r.method);
    {
      std::lock_guard lk(p_mu_);
      throttle_ = progress_throttle();
      job_id_ = r.id;
      job_active_ = true;
    }
    job_context ctx;
    ctx.cancelled = &cancelled_;
    ctx.allow_gpu = !opt_.cpu_only;
    ctx.progress = [this](double done, double total, const char* what) {
      {
        std::lock_guard lk(p_mu_);
        if (auto v = throttle_.offer(done, total, what ? what : "", clock_type::now()))
          send(progress_message(job_id_, v->done, v->total, v->what));
      }
      return !cancelled_.load(std::memory_order_relaxed);
    };
    ctx.log = [this, id = r.id](std::string_view level, std::string_view msg) { send(log_message(id, level, msg)); };
    ctx.emit_artifact = [this, id = r.id](const artifact& a) {
      std::lock_guard lk(p_mu_);  // the progress held back so far goes first
      if (auto v = throttle_.take_pending()) send(progress_message(id, v->done, v->total, v->what));
      send(artifact_message(id, a));
    };

    auto t0 = clock_type::now();
    const uint64_t truncations = mapped_file::truncation_count();
    result<json> res = make_error(errc::internal, "the job did not run");
    try {
      auto params = apply_schema(*m, r.params);  // defaults filled in; a bad key is invalid_argument
      res = params.ok() ? m->run(*params, ctx) : result<json>(params.error());
      // An input truncated under a reader that had no check of its own (util/mapped_file.h) is no success.
      if (res.ok())
        if (status st = mapped_file::check_since(truncations); !st.ok()) res = st;
    } catch (const std::exception& e) {
      res = make_error(errc::internal, std::string("method \"") + r.method + "\" threw: " + e.what());
    } catch (...) {
      res = make_error(errc::internal, "method \"" + r.method + "\" threw a non-standard exception");
    }
    double seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    {
      std::lock_guard lk(p_mu_);
      if (auto v = throttle_.take_pending()) send(progress_message(r.id, v->done, v->total, v->what));
      job_active_ = false;
    }
    // A job that noticed the cancel may report it as another error (a half-written file): say cancelled.
    if (res.ok()) send(result_message(r.id, res.value(), seconds));
    else if (cancelled_ && res.error().code() != errc::cancelled)
      send(error_message(r.id, "cancelled", "cancelled (" + res.error().to_string() + ")"));
    else send(error_message(r.id, res.error()));
  }

  static constexpr int kStallMs = 10000;  // a client that reads nothing for this long is dropped

  worker_options opt_;
  json hello_;
  bool session_ = false;
  std::time_t started_ = 0;
  std::mutex out_mu_;
  int out_fd_;           // under out_mu_; -1 in session mode while no client is connected
  bool broken_ = false;  // under out_mu_
  std::map<int64_t, job_record> journal_;  // under out_mu_
  std::deque<int64_t> ended_order_;        // under out_mu_
  std::set<int64_t> subscribed_;           // under out_mu_: the jobs the connection sees

  std::mutex q_mu_;
  std::condition_variable q_cv_;
  std::deque<request> queue_;
  std::optional<int64_t> running_id_;
  json running_params_;
  bool shutting_down_ = false, stop_ = false, input_closed_ = false;
  std::atomic<bool> cancelled_{false};

  std::mutex p_mu_;
  progress_throttle throttle_;
  int64_t job_id_ = 0;
  bool job_active_ = false;
};

}  // namespace

int run_worker(const worker_options& opt) {
  ::signal(SIGPIPE, SIG_IGN);  // a vanished client is a failed write, not a signal
  if (!opt.listen_path.empty()) {
    auto lfd = listen_unix(opt.listen_path);
    if (!lfd) {
      std::fprintf(stderr, "razor worker: %s\n", lfd.error().to_string().c_str());
      return 1;
    }
    runner r(opt, -1);
    int rc = r.run(*lfd);
    ::close(*lfd);
    ::unlink(opt.listen_path.c_str());
    return rc;
  }
  int out_fd = opt.out_fd;
  if (out_fd < 0) {
    std::fflush(stdout);
    out_fd = ::dup(1);
    if (out_fd < 0) {
      std::perror("razor worker: dup(1)");
      return 1;
    }
    ::fcntl(out_fd, F_SETFD, FD_CLOEXEC);  // child programs must not inherit the protocol
    if (::dup2(2, 1) < 0) {
      std::perror("razor worker: dup2(2, 1)");
      return 1;
    }
  }
  runner r(opt, out_fd);
  int rc = r.run();
  if (opt.out_fd < 0) ::close(out_fd);
  return rc;
}

}  // namespace razor::jobs
