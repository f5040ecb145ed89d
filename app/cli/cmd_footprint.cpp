#include <cstdio>

#include "cli/commands.h"
#include "cli/job_command.h"
#include "model/checkpoint.h"
#include "model/footprint.h"
#include "model/recipe.h"
#include "util/json_limits.h"

namespace {

// The command's work; errors are values (reported once, by the caller).
razor::status run_footprint(nlohmann::json& p, bool json_out) {
  using namespace razor;
  if (json_out) {
    RAZOR_ASSIGN_OR_RETURN(const nlohmann::json j, cli::run_job("footprint", p));
    std::printf("%s\n", dump_json(j, 2).c_str());
    return {};
  }
  const std::string model = p["model"].get<std::string>(), recipe_name = p.value("recipe", "seed-default");
  RAZOR_ASSIGN_OR_RETURN(const checkpoint ck, checkpoint::open(model));
  RAZOR_ASSIGN_OR_RETURN(const recipe r, load_recipe(recipe_name));
  RAZOR_ASSIGN_OR_RETURN(const footprint f, compute_footprint(ck, r));
  std::printf("recipe                      %s (group %d, scales %g bits)\n", r.name.c_str(), r.group, r.scale_bits);
  std::printf("parameters                  %.4f B total, %.4f B quantized\n", f.all.params / 1e9,
              f.all.params_quantized / 1e9);
  std::printf("effective weight bits       %.3f   (seed convention: tag average over quantized tensors)\n",
              f.seed_effective_bits());
  std::printf("  with per-group scales     %.3f\n", f.effective_bits_with_scales());
  std::printf("  routed experts            %.3f\n", f.expert_avg_bits());
  std::printf("seed footprint              %.2f GB  (all params x effective bits / 8)\n", f.seed_footprint_gb());
  std::printf("packed size                 %.2f GB = %.2f GiB  (weights + scales + kept tensors), %.3f bits/weight\n",
              f.packed_bytes() / 1e9, f.packed_bytes() / 1073741824.0, f.bits_per_weight());
  std::printf("\n%-20s %14s %14s %9s %12s\n", "role", "params", "quantized", "avg bits", "packed MB");
  for (auto& [role, t] : f.by_role)
    std::printf("%-20s %14lld %14lld %9.3f %12.2f\n", std::string(role_name(role)).c_str(), (long long)t.params,
                (long long)t.params_quantized, t.params_quantized ? t.weight_bits / double(t.params_quantized) : 16.0,
                t.packed_bits() / 8e6);
  return {};
}

// The options are the registry's `footprint` job's (core/jobs/methods.cpp); --json prints that job's result.
RAZOR_COMMAND("footprint", "Effective bits and packed size of a recipe, from shapes alone", 20,
              razor::cli::job_command_with_json("footprint", "JSON output (razor.footprint/1)", run_footprint));

}  // namespace
