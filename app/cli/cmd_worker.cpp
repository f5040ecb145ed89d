// razor worker: the same jobs as the other commands, driven by JSON lines over stdio (docs/protocol.md).
// The workbench starts one per GPU (CUDA_VISIBLE_DEVICES) and one with --cpu.
#include <cstdio>

#include "cli/commands.h"
#include "jobs/methods.h"
#include "jobs/protocol.h"
#include "jobs/worker.h"

namespace {

struct worker_opts {
  bool cpu = false, list = false;
  int telemetry_ms = 1000;
  size_t max_queue = 64;
  std::string nvml = "libnvidia-ml.so.1";
};

RAZOR_COMMAND("worker", "Run jobs requested as JSON lines on stdin, reporting on stdout (docs/protocol.md)", 900,
              [](CLI::App& sub) {
                auto o = std::make_shared<worker_opts>();
                sub.add_flag("--cpu", o->cpu, "never use a GPU (the workbench's CPU worker)");
                sub.add_option("--telemetry-ms", o->telemetry_ms, "GPU telemetry period in ms; 0: none (default 1000)");
                sub.add_option("--max-queue", o->max_queue, "requests that may wait behind the running one (default 64)");
                sub.add_option("--nvml", o->nvml, "NVML library to load (default libnvidia-ml.so.1)");
                sub.add_flag("--list", o->list, "print the methods and their params, then exit");
                return [o] {
                  if (o->list) {
                    std::printf("protocol %d\n", razor::jobs::kProtocolVersion);
                    for (auto& m : razor::jobs::method_table())
                      std::printf("%-10s %s\n           params: %s\n", m.name.c_str(), m.help.c_str(), m.params.c_str());
                    return 0;
                  }
                  razor::jobs::worker_options opt;
                  opt.cpu_only = o->cpu;
                  opt.telemetry_ms = std::max(0, o->telemetry_ms);
                  opt.max_queue = o->max_queue;
                  opt.nvml_library = o->nvml;
                  return razor::jobs::run_worker(opt);
                };
              });

}  // namespace
