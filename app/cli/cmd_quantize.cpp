#include <cstdio>

#include "cli/commands.h"
#include "model/checkpoint.h"
#include "model/recipe.h"
#include "quant/quantize.h"

namespace {

struct quantize_opts {
  std::string model, recipe = "seed-default", out, layers = "all";
  bool cpu = false;
};

RAZOR_COMMAND("quantize", "Write the fake-quantized (dequantized BF16) checkpoint of a recipe, plus a summary", 40,
              [](CLI::App& sub) {
                auto o = std::make_shared<quantize_opts>();
                sub.add_option("MODEL", o->model, "checkpoint directory")->required();
                sub.add_option("--recipe", o->recipe, "recipe file or name in recipes/ (default seed-default)");
                sub.add_option("--out", o->out, "output checkpoint directory")->required();
                sub.add_flag("--cpu", o->cpu, "never use the GPU");
                sub.add_option("--layers", o->layers,
                               "only layers A:B (half-open), 'rest' (tensors outside the layers) or 'A:B,rest': "
                               "writes a part for razor merge (docs/slurm.md)");
                return [o] {
                  auto ck = razor::checkpoint::open(o->model);
                  if (!ck) return razor::cli::report(ck.error());
                  auto r = razor::load_recipe(o->recipe);
                  if (!r) return razor::cli::report(r.error());
                  razor::cli::stderr_progress prog("quantize");
                  razor::quant::quantize_options opt;
                  opt.allow_gpu = !o->cpu;
                  auto sel = razor::parse_layer_selection(o->layers, int(ck->config().num_layers));
                  if (!sel) return razor::cli::report(sel.error());
                  opt.layers = *sel;
                  auto rep = razor::quant::quantize_checkpoint(*ck, *r, o->out, opt, std::ref(prog));
                  prog.finish();
                  if (!rep) return razor::cli::report(rep.error());
                  if (!opt.layers.all) {
                    std::printf("wrote part %s (layers %s, %zu tensors, %s, %.2f s)\n", o->out.c_str(),
                                opt.layers.to_string().c_str(), rep->summary["files"].size(), rep->backend.c_str(),
                                rep->seconds);
                    return 0;
                  }
                  auto& t = rep->summary["totals"];
                  std::printf("wrote %s (%s, %.2f s, %.1f MB/s)\n", o->out.c_str(), rep->backend.c_str(), rep->seconds,
                              rep->bytes_in / 1e6 / std::max(rep->seconds, 1e-9));
                  std::printf("effective bits %.3f (with scales %.3f), packed %.3f GB, relative Frobenius error %.4f\n",
                              t["seed_effective_bits"].get<double>(), t["effective_bits_with_scales"].get<double>(),
                              t["packed_gb"].get<double>(), t["rel_error"].get<double>());
                  // The five routed experts with the largest error, for a first look.
                  auto ex = rep->summary["experts"];
                  std::vector<std::pair<double, std::string>> worst;
                  for (auto& e : ex)
                    worst.push_back({e["rel_error"].get<double>(), "layer " + std::to_string(e["layer"].get<int>()) +
                                                                      " expert " + std::to_string(e["expert"].get<int>()) +
                                                                      " " + e["proj"].get<std::string>()});
                  std::sort(worst.rbegin(), worst.rend());
                  if (!worst.empty()) std::printf("largest per-expert errors:\n");
                  for (size_t i = 0; i < std::min<size_t>(5, worst.size()); ++i)
                    std::printf("  %-28s %.4f\n", worst[i].second.c_str(), worst[i].first);
                  std::printf("summary: %s/razor_quant_summary.json\n", o->out.c_str());
                  return 0;
                };
              });

}  // namespace
