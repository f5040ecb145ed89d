#include <cstdio>

#include "cli/commands.h"
#include "cli/job_command.h"
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

RAZOR_COMMAND("inspect", "Architecture, layers, experts, parameter and byte counts by role, tensor list", 10,
              [](CLI::App& sub) {
                // The options are the registry's `inspect` job's (core/jobs/methods.cpp); --json is the command's.
                auto p = razor::cli::add_job_options(sub, "inspect");
                auto json_out = std::make_shared<bool>(false);
                sub.add_flag("--json", *json_out, "stable JSON (docs/inventory-format.md)");
                return [p, json_out] {
                  const bool tensors = p->value("tensors", false);
                  nlohmann::json params = *p;
                  params["tensors"] = tensors || *json_out;  // the JSON always lists the tensors
                  auto r = razor::cli::run_job("inspect", params);
                  if (!r.ok()) return razor::cli::report(r.error());
                  const nlohmann::json& j = *r;
                  if (*json_out) {
                    std::printf("%s\n", razor::dump_json(j, 2).c_str());
                    return 0;
                  }
                  const std::string model = (*p)["model"].get<std::string>();
                  std::printf("model        %s\n", model.c_str());
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
                  if (!j["stale_partials"].empty()) {
                    std::printf("\nstale partial outputs (their razor process no longer runs; `razor clean-partials "
                                "DIR` removes them):\n");
                    for (auto& sp : j["stale_partials"])
                      std::printf("  %s  (%s, %s bytes, pid %lld)\n", sp["path"].get<std::string>().c_str(),
                                  sp["dir"].get<bool>() ? "folder" : "file",
                                  human_count(double(sp["bytes"].get<uint64_t>())).c_str(), sp["pid"].get<long long>());
                  }
                  if (tensors) {
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
