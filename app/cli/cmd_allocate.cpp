// razor allocate MODEL --probe P --target 47GB|3.05bits [--strategy solver|composite|...] --out recipe.json
// Routed-expert bit allocation from a probe file (razor probe): the seed's salience strategies or the budget
// solver (docs/allocation.md). Writes a razor.recipe/1 file `razor quantize` accepts as is, whose footprint is
// what `razor footprint --recipe` reports, and a report (razor.allocation/1) beside it; with --measure, also the
// measured KL against the unquantized model on text windows after the probe's calibration tokens.
// --mode gguf: one ggml type per quantized tensor of the whole GGUF file under an exact byte budget, from KL
// sensitivities measured in memory (core/alloc, docs/allocation.md "Whole-file GGUF allocation"), written as a
// tensor-type recipe that `razor pack --recipe` takes unchanged.
// The options and the work are the registry's `allocate` job (core/jobs/job_allocate.cpp), as the worker runs it.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/job_command.h"
#include "util/json_limits.h"

namespace {

void print_gguf(const nlohmann::json& r, const nlohmann::json& p) {
  const auto& sz = r["size"];
  std::printf("gguf whole-file allocation, target %s: %llu bytes (%.4f bits per weight), predicted KL %.6g%s\n",
              p.value("target", "").c_str(), (unsigned long long)sz["file_bytes"].get<uint64_t>(), sz["bpw"].get<double>(),
              r["predicted_kl"].get<double>(), r["solver"]["exact"].get<bool>() ? " (exact optimum)" : "");
  const auto& se = r["sensitivity"];
  if (r.contains("calibration"))
    std::printf("sensitivities: %s, %d KL measurements on %zu positions", se["mode"].get<std::string>().c_str(),
                se["measurements"].get<int>(), r["calibration"]["positions"].get<size_t>());
  else
    std::printf("sensitivities: weights only (no forward pass), %lld rows sampled per tensor, %.1f s",
                (long long)se.value("sample_rows", int64_t(0)), se["seconds"].get<double>());
  if (se["cache"].is_string())
    std::printf(" (%s %s)", se["from_cache"].get<bool>() ? "reused from" : "cached in", se["cache"].get<std::string>().c_str());
  std::printf("\n");
  std::printf("%-34s %-18s %-8s %8s %12s\n", "tensor", "role", "type", "bpw", r.contains("calibration") ? "KL" : "damage");
  for (auto& t : r["tensors"])
    std::printf("%-34s %-18s %-8s %8.3f %12.4g\n", t["tensor"].get<std::string>().c_str(),
                t["role"].get<std::string>().c_str(), t["type"].get<std::string>().c_str(), t["bpw"].get<double>(),
                t["damage"].get<double>());
  if (r.contains("measured"))
    std::printf("measured (whole allocation, in memory): KL mean %.6f  p99 %.6f  same top-1 %.4f  (predicted %.6f)\n",
                r["measured"]["kl_mean"].get<double>(), r["measured"]["kl_p99"].get<double>(),
                r["measured"]["same_top1"].get<double>(), r["predicted_kl"].get<double>());
  const std::string out = p.value("out", ""), im = p.value("imatrix", "");
  std::printf("wrote %s and %s (razor pack MODEL --recipe %s%s%s --out F.gguf)\n", out.c_str(),
              r["report"].get<std::string>().c_str(), out.c_str(), im.empty() ? "" : " --imatrix ", im.c_str());
}

void print_fake(const nlohmann::json& rep, const nlohmann::json& p) {
  auto& fp = rep["footprint"];
  std::printf("strategy %s, target %s: expert bits %.4f, packed %.6f GB (%.6f GiB), seed effective bits %.4f\n",
              p.value("strategy", "solver").c_str(), p.value("target", "").c_str(), fp["expert_avg_bits"].get<double>(),
              fp["packed_gb"].get<double>(), fp["packed_gib"].get<double>(), fp["seed_effective_bits"].get<double>());
  if (!rep["predicted_damage"].is_null())
    std::printf("predicted damage %.6g%s\n", rep["predicted_damage"].get<double>(),
                rep.contains("solver") ? (rep["solver"]["exact"].get<bool>() ? " (exact optimum)" : " (greedy)") : "");
  std::printf("layer  avg bits  bits histogram\n");
  for (auto& l : rep["layers"]) {
    std::string h;
    for (auto it = l["bits_histogram"].begin(); it != l["bits_histogram"].end(); ++it)
      h += it.key() + ":" + std::to_string(it.value().get<int>()) + " ";
    std::printf("%5d  %8.3f  %s\n", l["layer"].get<int>(), l["avg_bits"].get<double>(), h.c_str());
  }
  if (rep.contains("measured"))
    std::printf("measured: KL mean %.6f  p99 %.6f  ppl %.4f (ref %.4f)  same top-1 %.4f\n",
                rep["measured"]["kl_mean"].get<double>(), rep["measured"]["kl_p99"].get<double>(),
                rep["measured"]["ppl"].get<double>(), rep["measured"]["ref_ppl"].get<double>(),
                rep["measured"]["same_top1"].get<double>());
  std::printf("wrote %s and %s\n", p.value("out", "").c_str(), rep["report"].get<std::string>().c_str());
}

// The command's work; errors are values (reported once, by the caller).
razor::status run_allocate(nlohmann::json& p, bool json_out) {
  using namespace razor;
  const bool gguf = p.value("mode", "fake") == "gguf";
  // The bundled texts when none is given, said on stderr as every command does.
  if (gguf || p.value("measure", false))
    RAZOR_TRY(cli::default_text(p, "text", gguf ? cli::bundled_text::calibration : cli::bundled_text::evaluation));
  if (gguf && p.value("measure", false)) RAZOR_TRY(cli::default_text(p, "eval_text", cli::bundled_text::evaluation));
  RAZOR_ASSIGN_OR_RETURN(const nlohmann::json r, cli::run_job("allocate", p));
  if (json_out) std::printf("%s\n", dump_json(r).c_str());
  else if (gguf) print_gguf(r, p);
  else print_fake(r, p);
  return {};
}

RAZOR_COMMAND("allocate", "Bit allocation: per-expert bits from a probe (fake mode) or a ggml type per GGUF tensor (gguf mode)", 320,
              razor::cli::job_command_with_json("allocate", "print the report JSON", run_allocate));

}  // namespace
