#include <cstdio>

#include "cli/commands.h"
#include "model/checkpoint.h"
#include "model/inventory.h"
#include "util/json_limits.h"
#include "util/stale_partials.h"

namespace {

std::string human_count(double n) {
  char b[32];
  if (n >= 1e9) std::snprintf(b, sizeof b, "%.2fB", n / 1e9);
  else if (n >= 1e6) std::snprintf(b, sizeof b, "%.2fM", n / 1e6);
  else if (n >= 1e3) std::snprintf(b, sizeof b, "%.1fK", n / 1e3);
  else std::snprintf(b, sizeof b, "%.0f", n);
  return b;
}

struct inspect_opts {
  std::string model;
  bool json = false, tensors = false;
};

RAZOR_COMMAND("inspect", "Architecture, layers, experts, parameter and byte counts by role, tensor list", 10,
              [](CLI::App& sub) {
                auto o = std::make_shared<inspect_opts>();
                sub.add_option("MODEL", o->model, "checkpoint directory (config.json + *.safetensors)")->required();
                sub.add_flag("--json", o->json, "stable JSON (docs/inventory-format.md)");
                sub.add_flag("--tensors", o->tensors, "list every tensor with its role");
                return [o] {
                  auto ck = razor::checkpoint::open(o->model);
                  if (!ck) return razor::cli::report(ck.error());
                  auto st = razor::check_adapter_config(ck->adapter(), ck->config(), o->model + "/config.json");
                  if (!st && ck->adapter().name != "generic") std::fprintf(stderr, "warning: %s\n", st.to_string().c_str());
                  auto j = razor::inventory_json(*ck, o->json || o->tensors);
                  // Temporaries of razor processes that died (SIGKILL, crash) beside the model: listed to delete.
                  const auto stale = razor::stale_partials_near(o->model);
                  j["stale_partials"] = razor::stale_partials_json(stale);
                  if (o->json) {
                    std::printf("%s\n", razor::dump_json(j, 2).c_str());
                    return 0;
                  }
                  std::printf("model        %s\n", o->model.c_str());
                  std::printf("model_type   %s (adapter %s, GGUF arch %s)\n", j["model_type"].get<std::string>().c_str(),
                              j["adapter"].get<std::string>().c_str(),
                              j["gguf_arch"].get<std::string>().empty() ? "-" : j["gguf_arch"].get<std::string>().c_str());
                  std::printf("layers       %lld", (long long)j["layers"].get<int64_t>());
                  for (auto& [k, v] : j["layer_types"].items()) std::printf("  %s: %d", k.c_str(), v.get<int>());
                  std::printf("\nexperts      %lld total, %lld active, %lld shared, FFN %lld, layout %s\n",
                              (long long)j["experts"]["total"].get<int64_t>(),
                              (long long)j["experts"]["active"].get<int64_t>(),
                              (long long)j["experts"]["shared"].get<int64_t>(),
                              (long long)j["experts"]["moe_intermediate_size"].get<int64_t>(),
                              j["experts"]["layout"].get<std::string>().c_str());
                  std::printf("parameters   %lld (%s), %.3f GB on disk in %zu shard(s)\n",
                              (long long)j["params_total"].get<int64_t>(),
                              human_count(double(j["params_total"].get<int64_t>())).c_str(),
                              double(j["bytes_total"].get<int64_t>()) / 1e9, j["shards"].size());
                  std::printf("\n%-20s %8s %14s %10s %12s\n", "role", "tensors", "params", "share", "bytes");
                  double total = double(j["params_total"].get<int64_t>());
                  for (auto& [k, v] : j["by_role"].items())
                    std::printf("%-20s %8lld %14lld %9.2f%% %12s\n", k.c_str(), (long long)v["tensors"].get<int64_t>(),
                                (long long)v["params"].get<int64_t>(), 100.0 * double(v["params"].get<int64_t>()) / total,
                                human_count(double(v["bytes"].get<int64_t>())).c_str());
                  if (!stale.empty()) {
                    std::printf("\nstale partial outputs (their razor process no longer runs; `razor clean-partials "
                                "DIR` removes them):\n");
                    for (auto& p : stale)
                      std::printf("  %s  (%s, %s bytes, pid %lld)\n", p.path.c_str(), p.is_dir ? "folder" : "file",
                                  human_count(double(p.bytes)).c_str(), (long long)p.pid);
                  }
                  if (o->tensors) {
                    std::printf("\n%-64s %-18s %5s %4s %-6s %s\n", "tensor", "role", "layer", "exp", "dtype", "shape");
                    for (auto& t : j["tensors"])
                      std::printf("%-64s %-18s %5d %4d %-6s %s\n", t["name"].get<std::string>().c_str(),
                                  t["role"].get<std::string>().c_str(), t["layer"].get<int>(), t["expert"].get<int>(),
                                  t["dtype"].get<std::string>().c_str(), t["shape"].dump().c_str());
                  }
                  return 0;
                };
              });

}  // namespace
