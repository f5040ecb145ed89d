// razor study MODEL --probe P --budgets 3.0,2.5 --strategies solver,asal,... --text T --windows N --out study.json
// For every (strategy, budget): the allocation (as `razor allocate` builds it), the model fake-quantized in
// memory through the engine's weight transform (no checkpoint written), and KL (mean, p99), perplexity and
// same-top-1 against the unquantized model, on windows after the probe's calibration tokens. Prints a
// markdown table and writes plot-ready JSON (razor.study/1).
// The options and the work are the registry's `study` job (core/jobs/job_allocate.cpp), as the worker runs it.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/job_command.h"

namespace {

// The command's work; errors are values (reported once, by the caller).
razor::status run_study(nlohmann::json& p) {
  using namespace razor;
  RAZOR_TRY(cli::default_text(p, "text", cli::bundled_text::evaluation));
  RAZOR_ASSIGN_OR_RETURN(const nlohmann::json j, cli::run_job("study", p));
  std::printf("| strategy | budget | expert bits | packed MB | predicted damage | KL mean | KL p99 | ppl | same top-1 |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (auto& row : j["rows"]) {
    char dmg[32] = "-";
    if (!row["predicted_damage"].is_null())
      std::snprintf(dmg, sizeof dmg, "%.4g", row["predicted_damage"].get<double>());
    std::printf("| %s | %s | %.4f | %.3f | %s | %.5f | %.5f | %.4f | %.4f |\n",
                row["strategy"].get<std::string>().c_str(), row["budget"].get<std::string>().c_str(),
                row["expert_bits"].get<double>(), row["packed_bytes"].get<double>() / 1e6, dmg,
                row["kl_mean"].get<double>(), row["kl_p99"].get<double>(), row["ppl"].get<double>(),
                row["same_top1"].get<double>());
  }
  std::printf("\nreference (unquantized) ppl %.4f on %d windows of %d from token %zu\n",
              j["ref_ppl"].get<double>(), j["windows"].get<int>(), j["ctx"].get<int>(),
              j["eval_offset_tokens"].get<size_t>());
  if (!j.value("out", "").empty()) std::fprintf(stderr, "wrote %s\n", j["out"].get<std::string>().c_str());
  return {};
}

RAZOR_COMMAND("study", "Allocation study: KL / ppl of every strategy x budget, fake-quantized in memory", 330,
              [](CLI::App& sub) {
                auto p = razor::cli::add_job_options(sub, "study");
                return [p] { return razor::cli::report(run_study(*p)); };
              });

}  // namespace
