// Perplexity and KL divergence with the fixtures' protocol (resources/models/README.md):
//   tokens: split the text on "\n\n\n", encode each piece without special tokens, append token 0 after each
//           piece, concatenate;
//   windows: window i is tokens [ctx*i, ctx*i + ctx), its targets are the next tokens [ctx*i + 1, ctx*i + ctx
//           + 1); the first `windows` windows; each window starts from an empty cache;
//   ppl = exp(mean NLL over all predictions).
// KL compares a model's next-token distribution q with a reference model's p at every predicted position:
//   KL(p || q) = sum_v p_v (log p_v - log q_v) (full vocabulary; reported as mean and 99th / 99.9th
//   percentiles over positions), and the seed's topk_kl = sum over positions of sum over the reference's top-K
//   tokens of p (log p - log q), divided by the number of positions — restricted to the reference's top-K and
//   not renormalised (seed-reference.md §2.4), K = 256 by default; same_top1 = share of positions where both
//   models' argmax agree.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model_runner.h"
#include "engine/tokenizer.h"

namespace razor {
class checkpoint;
struct recipe;
}

namespace razor::engine {

// The protocol's token stream of `text`. The text is checked to be UTF-8 first, once: an error names `where`
// (the file) and the first malformed byte's offset, line and column (util/utf8.h). The separator after each piece:
// `separator` when >= 0, else the tokenizer's (tk.protocol_separator(): 0, or a SentencePiece-style vocabulary's
// end-of-sequence token, as llama.cpp's side of the protocol appends).
result<std::vector<int32_t>> protocol_tokens(const bpe_tokenizer& tk, std::string_view text, const std::string& where,
                                             int32_t separator = -1);

struct eval_options {
  int windows = 200;
  int ctx = 256;
  int batch_windows = 16;     // windows run through the layers together (bounds memory; see memory_plan)
  int topk = 256;             // K of topk_kl
  run_options run;            // observer / progress (progress counts windows here)
  bool print_plan = false;    // print the memory plan of one batch to stderr before running
};

struct ppl_result {
  double ppl = 0, mean_nll = 0;
  size_t n_predictions = 0;
  int windows = 0;
  double seconds = 0, tokens_per_s = 0;
};

struct kl_result {
  ppl_result model, ref;
  double kl_mean = 0, kl_p99 = 0, kl_p999 = 0, kl_max = 0;
  double topk_kl = 0;
  double same_top1 = 0;
  size_t n_positions = 0;
};

// Fails with invalid_argument when the stream holds fewer than windows*ctx + 1 tokens.
result<ppl_result> perplexity(weight_provider& wp, const std::vector<int32_t>& tokens, const eval_options& opt);
result<kl_result> kl_divergence(weight_provider& model, weight_provider& ref, const std::vector<int32_t>& tokens,
                                const eval_options& opt);

// ---- quantized models for perplexity / KL (razor eval-ppl --recipe / --gguf) ----

// The fake-quantized model of a razor.recipe/1 recipe, in memory: ck's weights through transformed_weights,
// each tensor (each routed expert) with the recipe's bits through core/quant's fake_quant (group, clip search,
// BF16 output: the values `razor quantize` would write). Tensors the recipe keeps pass unchanged. A recipe "method"
// without tokens (absmax, rtn-asym, hqq) is applied to the routed experts as quantize does; awq / gptq need
// calibration tokens and are refused (errc::unsupported) when an expert is loaded. `ck` and
// `r` must outlive the provider.
std::unique_ptr<weight_provider> fake_quant_weights(const checkpoint& ck, const recipe& r);

// A GGUF file written by core/gguf's conversion (qwen3moe / qwen35moe), dequantized (ggml's dequantize_row)
// and mapped back to Hugging Face text-model names and layout, every conversion step inverted: blk.* names,
// stacked experts unstacked, and for qwen35moe the V-head reorder undone (tiled -> grouped), A_log = log(-ssm_a),
// 1 subtracted from the zero-centred norms (y - 1 is exact for y in [0.5, 2], so the engine's +1 gives back
// llama.cpp's value). `cfg` is the config of the checkpoint it was converted from. Single-file GGUFs only.
result<std::unique_ptr<weight_provider>> gguf_weights(const std::string& path, const model_config& cfg);

// log-softmax of one row of logits into out (double accumulation of the normaliser).
void log_softmax(const float* logits, size_t n, float* out);

}  // namespace razor::engine
