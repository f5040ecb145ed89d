// razor worker: the same jobs as the other commands, driven by JSON lines over stdio (docs/protocol.md).
// The workbench starts one per GPU (CUDA_VISIBLE_DEVICES) and one with --cpu; on a remote host it runs
// `razor worker --connect` through ssh, which relays to a session worker that outlives the link (docs/remote.md).
#include <cstdio>

#include "cli/commands.h"
#include "jobs/methods.h"
#include "jobs/protocol.h"
#include "jobs/session.h"
#include "jobs/worker.h"

namespace {

struct worker_opts {
  bool cpu = false, list = false, connect = false, session_daemon = false, probe = false;
  int telemetry_ms = 1000;
  size_t max_queue = 64;
  std::string nvml = "libnvidia-ml.so.1";
  std::string workspace, slot = "cpu", cuda_devices;
  int idle_exit_s = 3600;
};

RAZOR_COMMAND("worker", "Run jobs requested as JSON lines on stdin, reporting on stdout (docs/protocol.md)", 900,
              [](CLI::App& sub) {
                auto o = std::make_shared<worker_opts>();
                sub.add_flag("--cpu", o->cpu, "never use a GPU (the workbench's CPU worker)");
                auto* tel = sub.add_option("--telemetry-ms", o->telemetry_ms,
                                           "GPU telemetry period in ms; 0: none (default 1000)");
                // Checked as text before conversion: "-1" would otherwise wrap to an unbounded size_t.
                sub.add_option("--max-queue", o->max_queue,
                               "requests that may wait behind the running one (default 64, at most 65536)")
                    ->check(CLI::Range(0, 65536));
                sub.add_option("--nvml", o->nvml, "NVML library to load (default libnvidia-ml.so.1)");
                sub.add_flag("--list", o->list, "print the methods and their params, then exit");
                sub.add_flag("--connect", o->connect,
                             "relay stdio to the session worker of --workspace/--slot, starting it if none runs "
                             "(what the workbench runs through ssh; docs/remote.md)");
                sub.add_flag("--probe", o->probe, "print what a workbench checks before connecting (one JSON line)");
                sub.add_option("--workspace", o->workspace, "the session's workspace folder (its working directory)");
                sub.add_option("--slot", o->slot, "the session's name: cpu, gpu0, ... (default cpu)");
                sub.add_option("--cuda-devices", o->cuda_devices, "CUDA_VISIBLE_DEVICES of a session worker started by --connect");
                sub.add_option("--idle-exit", o->idle_exit_s,
                               "a session worker exits after this many seconds with no client and no job; 0: never "
                               "(default 3600)");
                sub.add_flag("--session-daemon", o->session_daemon, "(internal) serve the session's socket")
                    ->group("");
                return [o, tel] {
                  if (o->list) {
                    std::printf("protocol %d\n", razor::jobs::kProtocolVersion);
                    for (auto& m : razor::jobs::method_table())
                      std::printf("%-10s %s\n           params: %s\n", m.name.c_str(), m.help.c_str(), m.params_line().c_str());
                    return 0;
                  }
                  if (o->probe) {
                    std::printf("%s\n", razor::jobs::encode_line(razor::jobs::probe_host(o->workspace.empty() ? "." : o->workspace)).c_str());
                    return 0;
                  }
                  if ((o->connect || o->session_daemon) && o->workspace.empty()) {
                    std::fprintf(stderr, "razor worker: --connect needs --workspace\n");
                    return 2;
                  }
                  if (o->connect) {
                    razor::jobs::bridge_options b;
                    b.workspace = o->workspace;
                    b.slot = o->slot;
                    b.cuda_devices = o->cuda_devices;
                    b.idle_exit_s = o->idle_exit_s;
                    if (o->cpu) b.worker_args.push_back("--cpu");
                    if (tel->count() > 0) b.worker_args.insert(b.worker_args.end(), {"--telemetry-ms", std::to_string(o->telemetry_ms)});
                    b.worker_args.insert(b.worker_args.end(), {"--max-queue", std::to_string(o->max_queue), "--nvml", o->nvml});
                    return razor::jobs::run_bridge(b);
                  }
                  razor::jobs::worker_options opt;
                  opt.cpu_only = o->cpu;
                  opt.telemetry_ms = std::max(0, o->telemetry_ms);
                  opt.max_queue = o->max_queue;
                  opt.nvml_library = o->nvml;
                  if (o->session_daemon) {
                    opt.slot = o->slot;
                    opt.idle_exit_s = std::max(0, o->idle_exit_s);
                    return razor::jobs::run_session_worker(opt, o->workspace);
                  }
                  return razor::jobs::run_worker(opt);
                };
              });

}  // namespace
