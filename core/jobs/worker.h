// The job runner behind `razor worker` (docs/protocol.md): reads requests as JSON lines, runs one job at a time
// through the method table (methods.h) and writes events as JSON lines.
//
// Threads: a reader (requests, cancel and shutdown are read while a job runs), the runner (the calling
// thread: one job at a time; further requests wait in a FIFO queue of at most `max_queue`, beyond which a
// request is answered with error "busy"), and a ticker (sends the last throttled progress value of the running
// job when its 100 ms have passed, and a GPU telemetry sample every `telemetry_ms`).
//
// stdout belongs to the protocol: with out_fd = -1 the worker dup()s fd 1 as its protocol descriptor and points
// fd 1 at fd 2, so whatever a library prints to stdout ends on stderr.
//
// Session mode (listen_path set; docs/remote.md): the worker is a daemon that outlives its clients. It accepts
// connections on a Unix socket, one client at a time (a new connection takes over from the old one); each
// connection gets a hello listing the jobs the worker knows. End of input detaches the client, it does not stop
// jobs. Every job's events are recorded, so a client that lost its link reconnects and sends {"t":"attach"}
// to get the job's artifacts, logs, last progress and (if it ended meanwhile) its result. A connection only
// receives the events of jobs it submitted or attached.
#pragma once
#include <cstddef>
#include <string>

namespace razor::jobs {

struct worker_options {
  int in_fd = 0;             // requests
  int out_fd = -1;           // events; -1: take stdout over as described above
  bool cpu_only = false;     // jobs never use a GPU (the pool's CPU worker)
  int telemetry_ms = 1000;   // period of {"t":"gpu"} samples; 0: none
  std::string nvml_library = "libnvidia-ml.so.1";
  size_t max_queue = 64;     // requests waiting behind the running one
  size_t max_line = 0;       // longest request line; 0: kMaxLineBytes

  // Session mode: listen on this Unix socket instead of stdio (in_fd / out_fd are unused).
  std::string listen_path;
  std::string slot;          // the session's name, reported in the hello ("cpu", "gpu0", ...)
  int idle_exit_s = 3600;    // exit after this long with no client and no job; 0: never
};

// Runs until {"t":"shutdown"} or end of input (then finishes the running job cancelled, answers the queued
// ones with "shutting_down", sends {"t":"bye"}) or until the protocol descriptor is closed. Returns the
// process exit code: 0, or 1 when the events could not be written. In session mode: until shutdown, kill or
// the idle timeout; the socket must not be in use (the caller holds the session's lock, see session.h).
int run_worker(const worker_options& opt);

}  // namespace razor::jobs
