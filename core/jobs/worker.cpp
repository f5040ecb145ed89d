#include "jobs/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "jobs/gpu_telemetry.h"
#include "jobs/methods.h"
#include "jobs/protocol.h"
#include "kernels/cuda_info.h"

namespace razor::jobs {

using nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

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

class runner {
 public:
  runner(const worker_options& opt, int out_fd) : opt_(opt), out_fd_(out_fd) {
    if (opt_.max_line == 0) opt_.max_line = size_t(kMaxLineBytes);
  }

  int run() {
    std::string why;
    json gpus = gpu_list(&why);
    json hello = hello_message(gpus, method_names(), opt_.cpu_only ? "cpu" : "gpu");
    hello["cuda"] = cu::built_with_cuda();
    hello["gpus_note"] = gpus.empty() ? why : std::string();
    hello["queue"] = opt_.max_queue;
    send(hello);

    std::thread reader([this] { read_loop(); });
    std::thread ticker([this] { tick_loop(); });
    execute_loop();
    {
      std::lock_guard lk(q_mu_);
      stop_ = true;
    }
    q_cv_.notify_all();
    ticker.join();
    reader.join();
    if (!broken_) send({{"t", "bye"}});
    return broken_ ? 1 : 0;
  }

 private:
  // ---- output: whole lines under one mutex; a failed write (client gone) stops the worker ----
  void send(const json& m) {
    std::string line = encode_line(m);
    line.push_back('\n');
    std::lock_guard lk(out_mu_);
    if (broken_) return;
    const char* p = line.data();
    size_t n = line.size();
    while (n > 0) {
      ssize_t w = ::write(out_fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        broken_ = true;
        break;
      }
      p += w;
      n -= size_t(w);
    }
    if (broken_) request_stop();
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
    std::string buf;
    bool discarding = false;  // inside an over-long line: drop bytes up to the next newline
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
      size_t start = 0;
      for (size_t i = 0; i < size_t(n); ++i) {
        if (chunk[i] != '\n') continue;
        if (discarding) {
          discarding = false;
        } else {
          buf.append(chunk + start, i - start);
          handle_line(buf);
        }
        buf.clear();
        start = i + 1;
      }
      if (!discarding) {
        buf.append(chunk + start, size_t(n) - start);
        if (buf.size() > opt_.max_line) {
          send(error_message(std::nullopt, "bad_request",
                             "a request line longer than " + std::to_string(opt_.max_line) +
                                 " bytes was discarded"));
          buf.clear();
          discarding = true;
        }
      }
    }
    begin_shutdown();
    std::lock_guard lk(q_mu_);
    input_closed_ = true;
  }

  void handle_line(std::string& line) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) return;  // blank lines are ignored
    std::optional<int64_t> id;
    auto r = parse_request(line, &id);
    if (!r) {
      send(error_message(id, "bad_request", r.error().message()));
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
    }
  }

  void enqueue(request r) {
    if (!find_method(r.method)) {
      std::string names;
      for (auto& m : method_names()) names += (names.empty() ? "" : ", ") + m;
      send(error_message(r.id, "unknown_method", "no method \"" + r.method + "\" (this worker has: " + names + ")"));
      return;
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
      queue_.push_back(std::move(r));
    }
    lk.unlock();
    if (refuse) send(*refuse);
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
        cancelled_ = false;
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
    result<json> res = make_error(errc::internal, "the job did not run");
    try {
      res = m->run(r.params, ctx);
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

  worker_options opt_;
  int out_fd_;
  std::mutex out_mu_;
  bool broken_ = false;  // under out_mu_

  std::mutex q_mu_;
  std::condition_variable q_cv_;
  std::deque<request> queue_;
  std::optional<int64_t> running_id_;
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
