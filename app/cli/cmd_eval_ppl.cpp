// razor eval-ppl MODEL [--ref MODEL] [--text T] [--offset K] [--windows 200 --ctx 256]
// razor eval-ppl MODEL --recipe R.json --text T      fake-quantized MODEL, in memory, vs MODEL
// razor eval-ppl MODEL --gguf F.gguf --text T [--llamacpp]   F dequantized back to MODEL's layout, vs MODEL
// Perplexity of a Hugging Face checkpoint with the reference CPU engine and the fixtures' protocol
// (resources/models/README.md); with --ref, also KL divergence of MODEL's next-token distributions against
// the reference model's (mean, p99, p99.9, topk_kl, same-top-1 rate). With --recipe or --gguf the model
// scored is the quantized one and the reference (KL) is MODEL itself unless --ref says otherwise:
//   --recipe: every tensor through core/quant's fake_quant with the recipe's bits as it is loaded
//             (engine::fake_quant_weights); no checkpoint is written;
//   --gguf:   the GGUF's tensors dequantized by ggml's dequantize_row and mapped back to Hugging Face names
//             and layout, the conversion's transformations inverted (engine::gguf_weights); the engine computes
//             in float32 on the dequantized weights. --llamacpp also scores the file in the real llama.cpp
//             (validate-gguf; ggml quantizes activations to q8 inside quantized matmuls, so its perplexity
//             differs slightly from the engine's on the same weights).
// --offset K skips the first K tokens of the text (the windows a probe calibrated on).
// The options and the work are the registry's `eval-ppl` job (core/jobs/job_handlers.cpp), as the worker runs it.
#include <cstdio>

#include "cli/commands.h"
#include "cli/job_command.h"
#include "util/json_limits.h"

namespace {

// The command's work; errors are values (reported once, by the caller).
razor::status run_eval_ppl(nlohmann::json& p, bool json_out) {
  using namespace razor;
  RAZOR_TRY(cli::default_text(p, "text", cli::bundled_text::evaluation));
  if (!p.contains("plan")) p["plan"] = true;  // the memory plan on stderr, as always
  RAZOR_ASSIGN_OR_RETURN(const nlohmann::json j, cli::run_job("eval-ppl", p));
  if (json_out) {
    std::printf("%s\n", dump_json(j).c_str());
    return {};
  }
  if (j.contains("llamacpp_ppl"))
    std::printf("llama.cpp ppl %.4f  (exact mode, %d windows)\n", j["llamacpp_ppl"].get<double>(),
                j["windows"].get<int>());
  if (!j.contains("ref")) {
    std::printf("ppl %.4f  (mean NLL %.6f, %zu predictions, %.1f s, %.0f tokens/s)\n",
                j["ppl"].get<double>(), j["mean_nll"].get<double>(), j["n_predictions"].get<size_t>(),
                j["seconds"].get<double>(), j["tokens_per_s"].get<double>());
    return {};
  }
  std::printf("ppl %.4f  ref ppl %.4f\nKL mean %.6f  p99 %.6f  p99.9 %.6f  max %.6f\ntopk_kl (K=%d) %.6f  "
              "same top-1 %.4f  (%zu predictions)\n",
              j["ppl"].get<double>(), j["ref_ppl"].get<double>(), j["kl_mean"].get<double>(),
              j["kl_p99"].get<double>(), j["kl_p999"].get<double>(), j["kl_max"].get<double>(),
              j["topk"].get<int>(), j["topk_kl"].get<double>(), j["same_top1"].get<double>(),
              j["n_predictions"].get<size_t>());
  return {};
}

RAZOR_COMMAND("eval-ppl", "Perplexity (and KL against --ref) with the reference engine (CPU, or CUDA with --device)", 300,
              razor::cli::job_command_with_json("eval-ppl", "print one JSON object instead of text", run_eval_ppl));

}  // namespace
