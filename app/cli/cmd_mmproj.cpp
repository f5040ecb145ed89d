// razor mmproj MODEL --out FILE.gguf [--type f16|bf16|q8_0|f32] [--dry-run] [--json]
// The vision tower's mmproj GGUF (llama.cpp's clip file, projector qwen3vl_merger: core/gguf/mmproj.h), served beside
// the text GGUF with `llama-server -m MODEL.gguf --mmproj FILE.gguf`. --dry-run lists every tensor (GGUF name, shape,
// type, bytes, why) without writing. The options and the work are the registry's `mmproj` job (core/jobs/job_mmproj.cpp).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/job_command.h"

namespace {

razor::status run_mmproj(const nlohmann::json& p, bool json_out) {
  using namespace razor;
  if (!p.contains("out") && !p.value("dry_run", false))
    return make_error(errc::invalid_argument, "--out is required (the output .gguf)");
  RAZOR_ASSIGN_OR_RETURN(nlohmann::json j, cli::run_job("mmproj", p));
  if (json_out) {
    std::printf("%s\n", j.dump(1).c_str());
    return {};
  }
  const bool dry = j.value("dry_run", false);
  if (dry)
    for (auto& t : j["tensors"]) {
      std::string shape;
      for (auto& d : t["ne"]) shape += (shape.empty() ? "" : "x") + std::to_string(d.get<int64_t>());
      std::printf("%-26s %-16s %-5s %11llu  %s\n", t["name"].get<std::string>().c_str(), shape.c_str(),
                  t["type"].get<std::string>().c_str(), (unsigned long long)t["bytes"].get<uint64_t>(),
                  t["why"].get<std::string>().c_str());
    }
  std::printf("mmproj (clip, %s): %zu tensors, %llu tensor bytes, %llu file bytes%s\n",
              j["projector"].get<std::string>().c_str(), j["n_tensors"].get<size_t>(),
              (unsigned long long)j["tensor_bytes"].get<uint64_t>(), (unsigned long long)j["file_bytes"].get<uint64_t>(),
              dry ? " (dry run)" : "");
  if (!dry)
    for (auto& path : j["paths"]) std::printf("wrote %s\n", path.get<std::string>().c_str());
  return {};
}

RAZOR_COMMAND("mmproj", "Export a checkpoint's vision tower as the mmproj GGUF llama-server takes with --mmproj", 305,
              razor::cli::job_command_with_json("mmproj", "print the plan and the result as JSON", run_mmproj));
}  // namespace
