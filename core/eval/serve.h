// Inference servers as child processes (docs/serving.md): vLLM (tensor parallel over the visible GPUs),
// llama-server (layer split over them) or any command, started on this machine, watched until they answer
// GET /v1/models, and stopped as a process group. The worker's `serve` method and `razor serve` use it, so a
// model too large for one GPU is served on a remote GPU box through the same channel as every other job and
// `razor eval` (or the worker's `eval` method) talks to it.
//
//   vllm          vllm serve MODEL --host H --port P --tensor-parallel-size N [--served-model-name NAME]
//                      [--max-model-len CTX] [--gpu-memory-utilization F] [args...]
//   llama-server  llama-server -m MODEL.gguf --host H --port P -ngl 999 -c CTX [--alias NAME]
//                      [-sm layer -ts 1,1,...  (N > 1)] [args...]
//   command       the argv given, with {model} {port} {host} {name} replaced (also in args of every engine)
//
// The child: its own process group (setpgid), stdin /dev/null, stdout and stderr appended to the log file,
// PR_SET_PDEATHSIG SIGTERM (a killed parent thread takes the server down with it), every other descriptor
// closed. Stopping: SIGTERM to the group, SIGKILL to whatever is left after the grace period, the leader reaped.
#pragma once
#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "util/parallel.h"
#include "util/status.h"

namespace razor::eval {

struct serve_options {
  std::string engine = "vllm";        // "vllm", "llama-server" or "command"
  std::string model;                  // vllm: HF folder or repo id; llama-server: the .gguf (first shard)
  std::string host = "127.0.0.1";     // address the server binds
  int port = 0;                       // 0: a free port picked here
  int tensor_parallel = 0;            // GPUs; 0: the visible ones (visible_gpu_count), at least 1
  std::string name;                   // served model name ("" = the engine's default: the model path)
  std::string program;                // "" = "vllm" / "llama-server" from PATH
  std::vector<std::string> args;      // appended to the engine's argv
  std::vector<std::string> command;   // engine "command": program and arguments, with placeholders
  int ctx = 0;                        // vllm --max-model-len (0: omitted); llama-server -c (0: kDefaultLlamaCtx)
  double gpu_memory_utilization = 0;  // vllm only; 0: omitted (vLLM's default, 0.9)
  int n_cpu_moe = 0;                  // llama-server only: --n-cpu-moe N (the experts of the first N layers on the CPU)
  double ready_timeout_s = 900;       // vLLM loading a 245 GB checkpoint over TP 4 takes minutes
  double poll_interval_s = 0.5;       // readiness polls
  double stop_grace_s = 4;            // SIGTERM -> SIGKILL (under the pool's 5 s cancel grace)
  std::string log_path;               // server stdout + stderr; "" = <tmp>/razor-serve-<pid>-<port>.log
};

// llama-server's -c when ctx is 0: room for the seed's 32k budget plus the prompt (docs/eval.md).
inline constexpr int kDefaultLlamaCtx = 40960;

// GPUs this process may use: the entries of CUDA_VISIBLE_DEVICES when it is set (`cuda_visible_devices`,
// nullptr = unset; counting stops at the first "-1"-like entry, as CUDA does), else `runtime_count`
// (the driver's device count, util/gpu_count.h), else the /dev/nvidia<N> nodes, else 1.
int visible_gpu_count(const char* cuda_visible_devices, int runtime_count, int dev_nodes = 0);
// The same for this process (environment, CUDA driver, /dev).
int visible_gpu_count();

// The argv for `o` (program first, not yet resolved on PATH) with `port` and `gpus` (the resolved tensor
// parallel size). invalid_argument for an unknown engine or a missing model / command.
result<std::vector<std::string>> server_argv(const serve_options& o, int port, int gpus);
// A TCP port that was free on `host` a moment ago (bound to port 0, then closed).
result<int> free_port(const std::string& host = "127.0.0.1");

class inference_server {
 public:
  // Starts the server and waits until GET <url>/models answers with a model list. `progress` gets
  // (elapsed s, ready_timeout_s, "loading ...") about every poll; returning false stops the server and
  // gives errc::cancelled. A server that exits first gives errc::external quoting its last log lines; one
  // that is not ready in time is stopped and gives errc::external ("not ready after N s").
  static result<std::unique_ptr<inference_server>> start(const serve_options& o, const progress_fn& progress);
  ~inference_server();  // stop()
  inference_server(const inference_server&) = delete;
  inference_server& operator=(const inference_server&) = delete;

  // Serves until `progress` returns false or `should_stop` (polled every 50 ms; may be empty) returns true, then
  // stops the server and gives errc::cancelled ("stopped ..."); or until the server exits (errc::external with
  // how it ended and its last log lines). progress(uptime s, 0, "serving URL") every `interval_s`.
  status serve(const progress_fn& progress, const std::function<bool()>& should_stop, double interval_s = 1.0);
  // SIGTERM to the group, SIGKILL after the grace; idempotent. Returns true when it had to SIGKILL.
  bool stop();
  // Whether the server (the group leader) is still running; when it has exited, `why` says how.
  bool alive(std::string* why = nullptr);

  const std::string& url() const { return url_; }            // http://127.0.0.1:P/v1
  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  int gpus() const { return gpus_; }                          // the tensor parallel size used
  const std::string& log_path() const { return log_; }
  const std::vector<std::string>& argv() const { return argv_; }
  const std::vector<std::string>& served_models() const { return models_; }  // ids from /v1/models
  double uptime_s() const;

 private:
  inference_server() = default;
  status died_error(const std::string& when);
  serve_options opt_;
  std::string url_, log_;
  std::vector<std::string> argv_, models_;
  pid_t pid_ = -1;
  int port_ = 0, gpus_ = 1;
  bool reaped_ = false, stopped_ = false;
  int wait_status_ = 0;
  double t0_ = 0;  // steady clock seconds at start
};

}  // namespace razor::eval
