// razor probe MODEL [--text T] [--tokens N --seqlen 256 --offset K] [--out probe.h5] [--imatrix imatrix.gguf]
// One layer-streamed forward pass over N tokens of the text (fixtures' protocol tokens) starting at token K,
// writing per layer x expert routing statistics, weight norms and imatrix input statistics
// (docs/probe-format.md) and/or a llama.cpp GGUF importance matrix named by GGUF tensor
// (engine::probe_to_imatrix). Calibrate on tokens disjoint from the scored windows: the reference imatrix
// used windows 256..655 of the protocol stream, i.e. --offset 65536 --tokens 102400.
// The options and the work are the registry's `probe` job (core/jobs/job_handlers.cpp), as the worker runs it.
#include <cstdio>

#include "cli/commands.h"
#include "cli/job_command.h"
#include "util/json_limits.h"

namespace {

// The command's work; errors are values (reported once, by the caller).
razor::status run_probe(nlohmann::json& p, bool json_out) {
  using namespace razor;
  RAZOR_TRY(cli::default_text(p, "text", cli::bundled_text::calibration));
  RAZOR_ASSIGN_OR_RETURN(const nlohmann::json j, cli::run_job("probe", p));
  if (json_out) {
    std::printf("%s\n", dump_json(j).c_str());
    return {};
  }
  const std::string out = j.value("out", "");
  std::printf("tokens [%zu, %zu) in %zu sequences, %.1f s (%.0f tokens/s)%s%s\n",
              j["first_token"].get<size_t>(), j["first_token"].get<size_t>() + j["n_tokens"].get<size_t>(),
              j["n_seqs"].get<size_t>(), j["seconds"].get<double>(), j["tokens_per_s"].get<double>(),
              out.empty() ? "" : " -> ", out.c_str());
  if (j.contains("imatrix"))
    std::printf("imatrix: %zu entries (GGUF tensor names), %lld chunks of %lld -> %s\n",
                j["imatrix_entries"].get<size_t>(), j["imatrix_chunks"].get<long long>(),
                j["imatrix_chunk_size"].get<long long>(), j["imatrix"].get<std::string>().c_str());
  std::printf("layer  entropy  max/mean  maxshare  cold\n");
  for (size_t L = 0; L < j["entropy"].size(); ++L)
    std::printf("%5zu  %7.3f  %8.2f  %8.3f  %4.2f\n", L, j["entropy"][L].get<double>(),
                j["max_mean"][L].get<double>(), j["maxshare"][L].get<double>(),
                j["cold_frac"][L].get<double>());
  return {};
}

RAZOR_COMMAND("probe", "Routing statistics, weight norms and imatrix inputs to HDF5 (reference engine: CPU, or CUDA with --device)", 310,
              razor::cli::job_command_with_json("probe", "print the result as one JSON object", run_probe));

}  // namespace
