// razor merge MODEL --recipe R --out DIR (--part P ... | --parts-dir D)
// Assembles the parts written by `razor quantize --layers` (one per Slurm array task, docs/slurm.md) into the
// checkpoint a single `razor quantize MODEL --recipe R --out DIR` writes (core/quant/quantize.h).
// The options and the work are the registry's `merge` job (core/jobs/job_handlers.cpp), as the worker runs it.
#include <cstdio>

#include "cli/commands.h"
#include "cli/job_command.h"

namespace {

RAZOR_COMMAND("merge", "Assemble razor quantize --layers parts into the full quantized checkpoint", 41,
              [](CLI::App& sub) {
                auto p = razor::cli::add_job_options(sub, "merge");
                return [p] {
                  auto r = razor::cli::run_job("merge", *p);
                  if (!r.ok()) return razor::cli::report(r.error());
                  const auto& t = (*r)["totals"];
                  std::printf("merged %zu parts into %s (%.2f s)\n", (*r)["parts"].size(),
                              (*r)["out"].get<std::string>().c_str(), (*r)["seconds"].get<double>());
                  std::printf("effective bits %.3f (with scales %.3f), packed %.3f GB, relative Frobenius error %.4f\n",
                              t["seed_effective_bits"].get<double>(), t["effective_bits_with_scales"].get<double>(),
                              t["packed_gb"].get<double>(), t["rel_error"].get<double>());
                  std::printf("summary: %s/razor_quant_summary.json\n", (*r)["out"].get<std::string>().c_str());
                  return 0;
                };
              });

}  // namespace
