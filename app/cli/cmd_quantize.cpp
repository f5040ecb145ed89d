// razor quantize MODEL --recipe R --out DIR [--layers A:B|rest] [--cpu]: the fake-quantized (dequantized BF16)
// checkpoint of a recipe, plus a summary. The options and the work are the registry's `quantize` job
// (core/jobs/methods.cpp), as the worker runs it.
#include <algorithm>
#include <cstdio>

#include "cli/commands.h"
#include "cli/job_command.h"

namespace {

RAZOR_COMMAND("quantize", "Write the fake-quantized (dequantized BF16) checkpoint of a recipe, plus a summary", 40,
              [](CLI::App& sub) {
                auto p = razor::cli::add_job_options(sub, "quantize");
                return [p] {
                  auto r = razor::cli::run_job("quantize", *p);
                  if (!r.ok()) return razor::cli::report(r.error());
                  const nlohmann::json& j = *r;
                  const std::string out = j["out"].get<std::string>();
                  if (j.contains("part_layers")) {
                    std::printf("wrote part %s (layers %s, %zu tensors, %s, %.2f s)\n", out.c_str(),
                                j["part_layers"].get<std::string>().c_str(), j["files"].get<size_t>(),
                                j["backend"].get<std::string>().c_str(), j["seconds"].get<double>());
                    return 0;
                  }
                  const auto& t = j["totals"];
                  const double secs = j["seconds"].get<double>();
                  std::printf("wrote %s (%s, %.2f s, %.1f MB/s)\n", out.c_str(), j["backend"].get<std::string>().c_str(),
                              secs, j["bytes_in"].get<double>() / 1e6 / std::max(secs, 1e-9));
                  std::printf("effective bits %.3f (with scales %.3f), packed %.3f GB, relative Frobenius error %.4f\n",
                              t["seed_effective_bits"].get<double>(), t["effective_bits_with_scales"].get<double>(),
                              t["packed_gb"].get<double>(), t["rel_error"].get<double>());
                  if (!j["worst_experts"].empty()) std::printf("largest per-expert errors:\n");
                  for (auto& e : j["worst_experts"]) {
                    const std::string what = "layer " + std::to_string(e["layer"].get<int>()) + " expert " +
                                             std::to_string(e["expert"].get<int>()) + " " + e["proj"].get<std::string>();
                    std::printf("  %-28s %.4f\n", what.c_str(), e["rel_error"].get<double>());
                  }
                  std::printf("summary: %s/razor_quant_summary.json\n", out.c_str());
                  return 0;
                };
              });

}  // namespace
