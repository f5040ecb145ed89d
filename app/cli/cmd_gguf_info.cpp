// razor gguf-info FILE [--json]: metadata, tensors, types, bytes and bits per weight by role.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/job_command.h"
#include "gguf/convert.h"
#include "gguf/gguf_file.h"
#include "util/json_limits.h"
#include "util/printable.h"

namespace {
struct info_args {
  std::string file;
  bool json = false, all_tensors = false;
  size_t max_items = 8;
};

// The command's work; errors are values (reported once, by the caller).
razor::status run_gguf_info(info_args& a, nlohmann::json& p) {
  using namespace razor;
  a.file = p["file"].get<std::string>();
  a.max_items = size_t(p.value("max_items", 8));
  // The summary (by role, by type, total) is the job's, as the worker answers it.
  RAZOR_ASSIGN_OR_RETURN(nlohmann::json j, cli::run_job("gguf-info", p));
  if (a.json) {
    // GGUF strings are a file's bytes: invalid UTF-8 becomes U+FFFD (util/json_limits.h) instead of a throw.
    std::printf("%s\n", dump_json(j, 1).c_str());
    return {};
  }
  RAZOR_ASSIGN_OR_RETURN(const gguf::file f, gguf::file::open(a.file));
  std::printf("%s: GGUF v%u, %zu metadata keys, %zu tensors, alignment %u, %llu bytes\n", printable(a.file).c_str(),
              f.version(), f.metadata().size(), f.tensors().size(), f.alignment(),
              (unsigned long long)f.file_size());
  for (auto& kv : f.metadata()) {
    std::string v = kv.val.to_string(a.max_items);
    std::printf("  %-44s %-8s %s\n", printable(kv.key).c_str(),
                kv.val.is_array() ? ("[" + std::string(gguf::value_type_name(kv.val.elem_type())) + "]").c_str()
                                  : std::string(gguf::value_type_name(kv.val.type())).c_str(),
                v.c_str());
  }
  if (a.all_tensors) {
    std::printf("\ntensors:\n");
    for (auto& t : f.tensors()) {
      const auto* tt = gguf::find_type(t.type);
      std::string shape;
      for (auto d : t.ne) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
      std::printf("  %-36s %-8s {%s} %llu bytes\n", printable(t.name).c_str(), tt ? tt->name : "?", shape.c_str(),
                  (unsigned long long)t.nbytes);
    }
  }
  auto row = [](const std::string& k, const nlohmann::json& g) {
    std::printf("  %-20s %9lld %12lld %14llu %8.3f\n", k.c_str(), g["tensors"].get<long long>(),
                g["elements"].get<long long>(), (unsigned long long)g["bytes"].get<uint64_t>(), g["bpw"].get<double>());
  };
  std::printf("\nby role:                 tensors     elements          bytes      bpw\n");
  for (auto& [k, g] : j["by_role"].items()) row(k, g);
  std::printf("by type:\n");
  for (auto& [k, g] : j["by_type"].items()) row(k, g);
  row("total", j["total"]);
  return {};
}

RAZOR_COMMAND("gguf-info", "Show a GGUF file's metadata, tensors, types and bits per weight by role", 310,
              [](CLI::App& sub) {
  auto a = std::make_shared<info_args>();
  // The options of the registry's `gguf-info` job (file, --max-items), plus the command's own --json, --tensors.
  auto p = razor::cli::add_job_options(sub, "gguf-info");
  sub.add_flag("--json", a->json, "machine-readable output");
  sub.add_flag("--tensors", a->all_tensors, "list every tensor (default: summary by role and type)");
  return [a, p] { return razor::cli::report(run_gguf_info(*a, *p)); };
});
}  // namespace
