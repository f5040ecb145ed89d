// razor merge MODEL --recipe R --out DIR (--part P ... | --parts-dir D)
// Assembles the parts written by `razor quantize --layers` (one per Slurm array task, docs/slurm.md) into the
// checkpoint a single `razor quantize MODEL --recipe R --out DIR` writes (core/quant/quantize.h).
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "model/checkpoint.h"
#include "model/recipe.h"
#include "quant/quantize.h"

namespace {

struct merge_opts {
  std::string model, recipe = "seed-default", out, parts_dir;
  std::vector<std::string> parts;
};

RAZOR_COMMAND("merge", "Assemble razor quantize --layers parts into the full quantized checkpoint", 41,
              [](CLI::App& sub) {
                auto o = std::make_shared<merge_opts>();
                sub.add_option("MODEL", o->model, "the source checkpoint directory the parts were made from")->required();
                sub.add_option("--recipe", o->recipe, "the recipe the parts were made with (default seed-default)");
                sub.add_option("--out", o->out, "output checkpoint directory")->required();
                sub.add_option("--part", o->parts, "a part directory (repeat; every part of the job)");
                sub.add_option("--parts-dir", o->parts_dir, "a folder whose subfolders are the parts");
                return [o] {
                  namespace fs = std::filesystem;
                  std::vector<std::string> parts = o->parts;
                  if (!o->parts_dir.empty()) {
                    std::error_code ec;
                    std::vector<std::string> found;
                    for (auto& e : fs::directory_iterator(o->parts_dir, ec)) {
                      std::string n = e.path().filename().string();
                      // skip hidden names and unfinished atomic outputs ("<dir>.partial-<pid>")
                      if (!e.is_directory() || n.empty() || n[0] == '.' || n.find(".partial-") != std::string::npos)
                        continue;
                      found.push_back(e.path().string());
                    }
                    if (ec)
                      return razor::cli::report(razor::make_error(razor::errc::io, o->parts_dir + ": " + ec.message()));
                    std::sort(found.begin(), found.end());
                    parts.insert(parts.end(), found.begin(), found.end());
                  }
                  if (parts.empty())
                    return razor::cli::report(
                        razor::make_error(razor::errc::invalid_argument, "merge: give --part (repeated) or --parts-dir"));
                  auto ck = razor::checkpoint::open(o->model);
                  if (!ck) return razor::cli::report(ck.error());
                  auto r = razor::load_recipe(o->recipe);
                  if (!r) return razor::cli::report(r.error());
                  razor::cli::stderr_progress prog("merge");
                  auto rep = razor::quant::merge_quantize_parts(*ck, *r, parts, o->out, {}, std::ref(prog));
                  prog.finish();
                  if (!rep) return razor::cli::report(rep.error());
                  auto& t = rep->summary["totals"];
                  std::printf("merged %zu parts into %s (%.2f s)\n", parts.size(), o->out.c_str(), rep->seconds);
                  std::printf("effective bits %.3f (with scales %.3f), packed %.3f GB, relative Frobenius error %.4f\n",
                              t["seed_effective_bits"].get<double>(), t["effective_bits_with_scales"].get<double>(),
                              t["packed_gb"].get<double>(), t["rel_error"].get<double>());
                  std::printf("summary: %s/razor_quant_summary.json\n", o->out.c_str());
                  return 0;
                };
              });

}  // namespace
