// razor validate-gguf FILE [--text T] [--ref REF.gguf] [--windows N --first-window F --window W]: loads the file
// in the real llama.cpp (node-llama-cpp, in a child process, so a llama.cpp abort fails only the check) and
// reports its perplexity on T; with --ref (the unquantized export) also the KL divergence from REF per
// position (mean, percentiles, maximum) and how often both agree on the most probable token, as
// llama-perplexity --kl-divergence reports them.
// The options and the work are the registry's `validate-gguf` job (core/jobs/job_gguf.cpp).
#include <cstdio>

#include "cli/commands.h"
#include "cli/job_command.h"

namespace {

// The command's work; errors are values (reported once, by the caller).
razor::status run_validate_gguf(nlohmann::json& p, bool json_out) {
  using namespace razor;
  RAZOR_TRY(cli::default_text(p, "text", cli::bundled_text::evaluation));
  RAZOR_ASSIGN_OR_RETURN(const nlohmann::json j, cli::run_job("validate-gguf", p));
  if (json_out) {
    std::printf("%s\n", j.contains("llamacpp") ? j["llamacpp"].dump().c_str() : j.dump().c_str());
    return {};
  }
  const int first = j["first_window"].get<int>();
  std::printf("%s: loads in llama.cpp; perplexity %.4f over %d windows%s (%d predictions, %s), load %.0f ms, eval %.1f s\n",
              j["file"].get<std::string>().c_str(), j["ppl"].get<double>(), j["windows"].get<int>(),
              first > 0 ? (" from window " + std::to_string(first)).c_str() : "", j["predictions"].get<int>(),
              j["exact"].get<bool>() ? "exact mode" : "default mode", j["load_ms"].get<double>(),
              j["eval_ms"].get<double>() / 1000.0);
  if (j.contains("kl")) {
    const auto& k = j["kl"];
    auto d = [&](const char* key) { return k[key].get<double>(); };
    std::printf("against %s (perplexity %.4f, ln(PPL/PPL_ref) %+.5f):\n", j["ref"].get<std::string>().c_str(),
                d("ppl_ref"), d("ln_ppl_ratio"));
    std::printf("  KL mean %.6f +- %.6f  median %.6f  p90 %.6f  p99 %.6f  p99.9 %.6f  max %.6f  (%lld positions)\n",
                d("mean"), d("mean_err"), d("median"), d("p90"), d("p99"), d("p999"), d("max"),
                k["positions"].get<long long>());
    std::printf("  same top-1 %.3f +- %.3f %%  delta p mean %+.4f %%  rms %.4f %%\n", 100.0 * d("same_top1"),
                100.0 * d("same_top1_err"), 100.0 * d("delta_p_mean"), 100.0 * d("delta_p_rms"));
    if (k["clamped"].get<long long>() > 0)
      std::printf("  note: %lld probabilities of FILE underflowed to 0 where REF's did not (taken as 1.4e-45)\n",
                  k["clamped"].get<long long>());
  }
  if (j.contains("generated")) {
    std::string ids;
    for (auto& id : j["generated_ids"]) ids += (ids.empty() ? "" : " ") + std::to_string(id.get<int>());
    std::printf("generated %zu tokens: \"%s\" (ids %s)\n", j["generated_ids"].size(),
                j["generated"].get<std::string>().c_str(), ids.c_str());
  }
  return {};
}

RAZOR_COMMAND("validate-gguf", "Load a GGUF file in the real llama.cpp: perplexity, and KL against a reference file", 320,
              razor::cli::job_command_with_json("validate-gguf", "print the script's JSON answer", run_validate_gguf));
}  // namespace
