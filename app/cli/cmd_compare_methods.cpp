// razor compare-methods MODEL [--methods clip,absmax,rtn-asym,awq,gptq,hqq] [--bits 3] [--text T] [--out R.json]:
// the seed's moe_compare over every expert (held-out NMSE per expert and projection) and each method's model
// against the unquantized one (KL, ppl). The options and the work are the registry's `compare-methods` job
// (core/jobs/job_compare_methods.cpp, engine/method_compare.h); docs/methods.md.
#include <cstdio>

#include "cli/commands.h"
#include "cli/job_command.h"
#include "util/json_limits.h"

namespace {

razor::status run_compare(nlohmann::json& p, bool json_out) {
  using namespace razor;
  RAZOR_TRY(cli::default_text(p, "text", cli::bundled_text::calibration));
  if (!p.value("no_kl", false)) RAZOR_TRY(cli::default_text(p, "eval_text", cli::bundled_text::evaluation));
  RAZOR_ASSIGN_OR_RETURN(const nlohmann::json j, cli::run_job("compare-methods", p));
  if (json_out) {
    std::printf("%s\n", dump_json(j).c_str());
    return {};
  }
  const auto& s = j["summary"];
  const bool kl = j.contains("ref_ppl");
  double clip = 0;
  if (s.contains("clip")) clip = s["clip"]["mean_nmse"].get<double>();
  std::printf("int%g, group %d, held-out NMSE over %zu experts (second half of each expert's tokens)\n",
              j["bits"].get<double>(), j["group"].get<int>(), s.empty() ? size_t(0) : s.begin()->at("n_experts").get<size_t>());
  std::printf("%-9s %10s %10s %7s %9s %9s %9s", "method", "mean NMSE", "median", "x clip", "gate", "up", "down");
  if (kl) std::printf(" %9s %9s %8s", "KL mean", "top-1", "ppl");
  std::printf("  fallbacks\n");
  for (auto& name : j["methods"]) {
    const auto& m = s[name.get<std::string>()];
    const double mean = m["mean_nmse"].get<double>();
    std::printf("%-9s %10.5f %10.5f %7.3f %9.5f %9.5f %9.5f", name.get<std::string>().c_str(), mean,
                m["median_nmse"].get<double>(), clip > 0 ? mean / clip : 0.0, m["mean_nmse_gate"].get<double>(),
                m["mean_nmse_up"].get<double>(), m["mean_nmse_down"].get<double>());
    if (kl) std::printf(" %9.5f %9.4f %8.3f", m["kl_mean"].get<double>(), m["same_top1"].get<double>(), m["ppl"].get<double>());
    std::string fb;
    for (auto& [why, n] : m["fallbacks"].items()) fb += (fb.empty() ? "" : ", ") + why + " " + std::to_string(n.get<int64_t>());
    std::printf("  %s\n", fb.empty() ? "-" : fb.c_str());
  }
  if (kl) std::printf("unquantized ppl %.3f (%d windows of %d)\n", j["ref_ppl"].get<double>(), j["eval"]["windows"].get<int>(),
                      j["eval"]["ctx"].get<int>());
  if (j.contains("out")) std::printf("result: %s\n", j["out"].get<std::string>().c_str());
  return {};
}

RAZOR_COMMAND("compare-methods",
              "Held-out NMSE per expert and projection, and KL / ppl, of the quantization methods (clip, absmax, "
              "rtn-asym, awq, gptq, hqq)",
              42, razor::cli::job_command_with_json("compare-methods", "print the result as one JSON object", run_compare));

}  // namespace
