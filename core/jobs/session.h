// Session workers: a `razor worker` that outlives its clients, for workbenches on another machine
// (docs/remote.md). The workbench runs, through OpenSSH,
//
//     razor worker --connect --workspace W --slot gpu0 [--cuda-devices 0] [--telemetry-ms 0]
//
// on the GPU server. That bridge connects its stdin/stdout to the slot's session worker over a Unix socket in
// the workspace, starting the worker first (detached: its own session, stdio on a log file) when none runs.
// When the link drops, the bridge ends, the session worker notices the end of input and keeps running its jobs;
// the next bridge gets a hello listing them, and the client re-attaches by id (worker.h, session mode).
//
// Files, per workspace W and slot S (the folder is created 0700):
//   W/.razor/sessions/S.sock   the socket (or /tmp/razor-<uid>/<hash>.sock when that path is too long for one)
//   W/.razor/sessions/S.lock   flock()ed by the running session worker; holds its pid
//   W/.razor/sessions/S.log    the session worker's stderr
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "jobs/worker.h"
#include "util/status.h"

namespace razor::jobs {

struct session_paths {
  std::string dir, socket, lock, log;
};
// The paths of slot `slot` in `workspace` (creating the folders). The slot name is [A-Za-z0-9_-]{1,32}.
result<session_paths> session_paths_for(const std::string& workspace, const std::string& slot);

// Binds and listens on a Unix socket at `path` (mode 0600, close-on-exec), replacing a stale socket file.
result<int> listen_unix(const std::string& path);

// The spawned session worker: takes the slot's lock (returns 0 at once when another worker holds it), then
// serves the slot's socket (run_worker in session mode) with the workspace as its working directory.
int run_session_worker(worker_options opt, const std::string& workspace);

struct bridge_options {
  std::string workspace;
  std::string slot = "cpu";
  bool spawn = true;                     // start the session worker when none answers
  std::vector<std::string> worker_args;  // role flags for a spawned worker (--cpu, --telemetry-ms N, ...)
  std::string cuda_devices;              // CUDA_VISIBLE_DEVICES of a spawned worker; "" keeps the environment's
  int idle_exit_s = 3600;
  int connect_timeout_ms = 20000;
};
// `razor worker --connect`: relays stdin -> socket and socket -> stdout until either side ends. Returns the
// exit code: 0 when the worker closed the connection, 1 with a message on stderr when it cannot connect.
int run_bridge(const bridge_options& opt);

// The session workers of a workspace (every slot with a lock file), and whether each is alive (holds its lock).
struct session_info {
  std::string slot;
  int64_t pid = 0;
  bool alive = false;
};
std::vector<session_info> list_sessions(const std::string& workspace);

// The GPUs this process may use, as the hello lists them: [{index, name, total_memory, sm_count, cc}]; `why` says
// why there are none.
nlohmann::json gpu_list(std::string* why);

// `razor worker --probe`: what a workbench checks before it connects: {"t":"probe", proto, version, host,
// workspace, workspace_ok, workspace_note, sessions: [{slot, pid, alive}], gpus, gpus_note, cuda}.
nlohmann::json probe_host(const std::string& workspace);

}  // namespace razor::jobs
