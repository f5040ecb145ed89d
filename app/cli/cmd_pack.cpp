// razor pack MODEL --type T | --recipe R | --ftype F [--imatrix F] [--allow-missing-imatrix] --out FILE.gguf
// Converts a Hugging Face checkpoint to GGUF in the requested ggml types (core/gguf/convert.h).
// --recipe takes a tensor-type recipe (llama-quantize --tensor-type-file syntax) or a razor.recipe/1 JSON
// fake-quant recipe, whose bits (per-expert bits included) are collapsed to one ggml type per GGUF tensor
// (gguf::collapse_bits_recipe; every change is printed).
// --ftype takes one of llama-quantize's file types (Q3_K_M, IQ2_XS, ...) and chooses every tensor's type as
// llama-quantize does (core/gguf/ftype.h); a tensor-type --recipe then acts as its --tensor-type overrides.
// --dry-run lists every tensor's type and why; --json prints the plan (and what was written) as JSON.
// The options and the work are the registry's `pack` job (core/jobs/job_gguf.cpp), as the worker runs it.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/job_command.h"

namespace {

// The command's work; errors are values (reported once, by the caller).
razor::status run_pack(const nlohmann::json& p, bool json_out) {
  using namespace razor;
  if (!p.contains("out") && !p.value("dry_run", false))
    return make_error(errc::invalid_argument, "--out is required (the output .gguf)");
  RAZOR_ASSIGN_OR_RETURN(nlohmann::json j, cli::run_job("pack", p));
  const bool dry = j.value("dry_run", false), part = j.contains("part_layers");
  if (json_out) {
    j.erase("out");
    j.erase("n_tensors");
    j.erase("elements");
    if (part) j.erase("file_bytes");
    std::printf("%s\n", j.dump(1).c_str());
    return {};
  }
  if (dry)
    for (auto& t : j["tensors"]) {
      std::string shape;
      for (auto& d : t["ne"]) shape += (shape.empty() ? "" : "x") + std::to_string(d.get<int64_t>());
      std::printf("%-34s %-16s %-8s %11llu  %s\n", t["name"].get<std::string>().c_str(), shape.c_str(),
                  t["type"].get<std::string>().c_str(), (unsigned long long)t["bytes"].get<uint64_t>(),
                  t["why"].get<std::string>().c_str());
    }
  for (auto& [t, e] : j["by_type"].items())
    std::printf("%-8s %12llu bytes  %6.3f bpw\n", t.c_str(), (unsigned long long)e["bytes"].get<uint64_t>(),
                e["bpw"].get<double>());
  std::printf("%s: %zu tensors, %llu tensor bytes, %.3f bpw", j["arch"].get<std::string>().c_str(),
              j["n_tensors"].get<size_t>(), (unsigned long long)j["tensor_bytes"].get<uint64_t>(), j["bpw"].get<double>());
  if (part) {
    std::printf(" (part: layers %s, %llu data bytes)\nwrote part %s\n", j["part_layers"].get<std::string>().c_str(),
                (unsigned long long)j["file_bytes"].get<uint64_t>(), j["out"].get<std::string>().c_str());
  } else if (!dry) {
    std::printf(", %llu file bytes\n", (unsigned long long)j["file_bytes"].get<uint64_t>());
    for (auto& path : j["paths"]) std::printf("wrote %s\n", path.get<std::string>().c_str());
  } else {
    std::printf(" (dry run), %llu file bytes\n", (unsigned long long)j["file_bytes"].get<uint64_t>());  // exact: plan_gguf
  }
  return {};
}

RAZOR_COMMAND("pack", "Convert a Hugging Face MoE checkpoint to GGUF (per-tensor types from a recipe)", 300,
              razor::cli::job_command_with_json(
                  "pack", "print the plan (per tensor: type, bytes, why) and the result as JSON", run_pack));
}  // namespace
