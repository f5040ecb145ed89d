// razor serve [--engine vllm|llama-server|command] [--model M] [--tp N] [--port P] [--name NAME] [--ctx N]
//             [--program PATH] [--log FILE] [--ready-timeout S] [-- extra args | command with {port} ...]
// An inference server in the foreground until Ctrl-C (docs/serving.md): the URL is printed on stdout once
// GET /v1/models answers; SIGINT / SIGTERM / SIGHUP stop it (SIGTERM to its process group, SIGKILL after the grace).
#include <signal.h>

#include <atomic>
#include <cstdio>

#include "cli/commands.h"
#include "eval/serve.h"
#include "util/shell.h"

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct serve_args {
  razor::eval::serve_options o;
  std::vector<std::string> rest;
};

RAZOR_COMMAND("serve", "Start vLLM (tensor parallel), llama-server or a command as an OpenAI-compatible server until Ctrl-C",
              455, [](CLI::App& sub) {
  auto a = std::make_shared<serve_args>();
  auto& o = a->o;
  sub.add_option("--engine", o.engine, "vllm (default), llama-server or command")
      ->check(CLI::IsMember({"vllm", "llama-server", "command"}));
  sub.add_option("--model", o.model, "vllm: checkpoint folder or repo id; llama-server: the .gguf");
  sub.add_option("--host", o.host, "address to bind (default 127.0.0.1)");
  sub.add_option("--port", o.port, "port (default 0: a free one)")->check(CLI::Range(0, 65535));
  sub.add_option("--tp,--tensor-parallel", o.tensor_parallel,
                 "GPUs (default: CUDA_VISIBLE_DEVICES's count, else the GPUs the CUDA runtime sees)");
  sub.add_option("--name", o.name, "served model name (vllm --served-model-name, llama-server --alias)");
  sub.add_option("--program", o.program, "the engine's program (default vllm / llama-server on PATH)");
  sub.add_option("--ctx", o.ctx, "context length (vllm --max-model-len; llama-server -c, default 40960)");
  sub.add_option("--gpu-memory-utilization", o.gpu_memory_utilization, "vllm only (default: vLLM's 0.9)");
  sub.add_option("--n-cpu-moe", o.n_cpu_moe, "llama-server only: keep the experts of the first N layers on the CPU");
  sub.add_option("--ready-timeout", o.ready_timeout_s, "seconds to wait for GET /v1/models (default 900)");
  sub.add_option("--stop-grace", o.stop_grace_s, "seconds between SIGTERM and SIGKILL (default 4)");
  sub.add_option("--log", o.log_path, "server stdout + stderr (default <tmp>/razor-serve-<pid>-<port>.log)");
  sub.add_option("args", a->rest,
                 "after --: extra arguments of the engine, or (--engine command) the command itself, with "
                 "{model} {port} {host} {name} replaced");
  return [a]() -> int {
    using namespace razor;
    auto& o = a->o;
    if (o.engine == "command") o.command = a->rest;
    else o.args = a->rest;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(s, &sa, nullptr);
    double last = -1e9;
    auto loading = [&](double el, double, const char* what) {
      if (el - last >= 10) {
        std::fprintf(stderr, "[serve] %s: %.0f s\n", what, el);
        last = el;
      }
      return g_stop == 0;
    };
    auto srv = eval::inference_server::start(o, loading);
    if (!srv.ok()) return cli::report(srv.error());
    auto& s = **srv;
    std::fprintf(stderr, "[serve] %s (pid %d, tensor parallel %d, log %s)\n", razor::shell_join(s.argv()).c_str(),
                 int(s.pid()), s.gpus(), s.log_path().c_str());
    std::string models;
    for (auto& m : s.served_models()) models += (models.empty() ? "" : ", ") + m;
    std::fprintf(stderr, "[serve] ready in %.1f s; models: %s; Ctrl-C stops it\n", s.uptime_s(), models.c_str());
    std::printf("%s\n", s.url().c_str());
    std::fflush(stdout);
    status st = s.serve({}, [] { return g_stop != 0; });
    if (st.code() == errc::cancelled) {
      std::fprintf(stderr, "[serve] %s\n", st.message().c_str());
      return 0;
    }
    return cli::report(st);
  };
});

}  // namespace
