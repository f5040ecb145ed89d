#include <cstdio>

#include "cli/commands.h"
#include "model/synth.h"
#include "util/atomic_file.h"
#include "util/json_limits.h"

namespace {

struct synth_opts {
  std::string config, out;
  bool sparse = false, per_expert = false;
  double shard_gb = 5.0;
  uint64_t seed = 1;
  std::string dtype = "bf16";
};

RAZOR_COMMAND("synth", "Write a synthetic checkpoint with a config's exact tensor names and shapes", 30,
              [](CLI::App& sub) {
                auto o = std::make_shared<synth_opts>();
                sub.add_option("--config", o->config, "config.json to synthesise (e.g. resources/configs/qwen3.5-122b-a10b.json)")
                    ->required();
                sub.add_option("--out", o->out, "output directory")->required();
                sub.add_flag("--sparse", o->sparse, "zero data as sparse-file holes (instant, no disk blocks)");
                sub.add_flag("--per-expert", o->per_expert, "experts.E.gate_proj layout instead of fused gate_up_proj");
                sub.add_option("--shard-gb", o->shard_gb, "shard size in GB (default 5)")->check(CLI::PositiveNumber);
                sub.add_option("--seed", o->seed, "random seed for the data");
                sub.add_option("--dtype", o->dtype,
                               "bf16 (default), f16, f32, or fp8: FP8 E4M3 linear weights with 128x128 block scales "
                               "(<weight>_scale_inv, the Hub's fine-grained FP8 layout)")
                    ->check(CLI::IsMember({"bf16", "f16", "f32", "fp8"}));
                return [o] {
                  razor::json_limits lim;
                  lim.max_bytes = 16u << 20;
                  lim.code = razor::errc::bad_config;
                  auto jr = razor::read_json_file(o->config, lim);
                  if (!jr) return razor::cli::report(jr.error());
                  const nlohmann::json& j = *jr;
                  razor::synth_options opt;
                  opt.sparse = o->sparse;
                  opt.fused_experts = !o->per_expert;
                  opt.shard_bytes = uint64_t(o->shard_gb * 1e9);
                  opt.seed = o->seed;
                  opt.dt = o->dtype == "fp8"   ? razor::dtype::f8_e4m3
                           : o->dtype == "f16" ? razor::dtype::f16
                           : o->dtype == "f32" ? razor::dtype::f32
                                               : razor::dtype::bf16;
                  razor::cli::stderr_progress prog("synth");
                  auto st = razor::synth_checkpoint(j, o->out, opt, std::ref(prog));
                  prog.finish();
                  if (!st) return razor::cli::report(st);
                  std::printf("wrote %s\n", o->out.c_str());
                  return 0;
                };
              });

}  // namespace
