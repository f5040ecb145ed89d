// razor synth --config C.json --out DIR [--sparse] [--per-expert] [--shard-gb N] [--seed S] [--stddev X]: a
// synthetic checkpoint with a config's exact tensor names and shapes. The options and the work are the registry's
// `synth` job (core/jobs/methods.cpp), as the worker runs it.
#include <cstdio>

#include "cli/commands.h"
#include "cli/job_command.h"

namespace {

RAZOR_COMMAND("synth", "Write a synthetic checkpoint with a config's exact tensor names and shapes", 30,
              [](CLI::App& sub) {
                auto p = razor::cli::add_job_options(sub, "synth");
                return [p] {
                  auto r = razor::cli::run_job("synth", *p);
                  if (!r.ok()) return razor::cli::report(r.error());
                  std::printf("wrote %s\n", (*r)["out"].get<std::string>().c_str());
                  return 0;
                };
              });

}  // namespace
