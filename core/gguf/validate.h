// Validation of a GGUF file in the real llama.cpp: tools/llamacpp/validate.mjs (node-llama-cpp, prebuilt
// CPU binaries) runs in a child process, so that a llama.cpp abort() on a bad file fails only the child.
// The script loads the file, tokenizes the text with the file's own tokenizer and measures perplexity
// with the protocol of resources/models/README.md (windows of 256 tokens, empty cache per window; exact mode:
// flash attention off, F32 KV cache). With a reference file (ref_path: the unquantized F32/BF16 export) both
// files score the same windows in the same llama.cpp process and the KL divergence of the file from the
// reference is measured at every predicted position over the whole vocabulary, with the statistics
// llama-perplexity --kl-divergence prints (tools/llamacpp/validate.mjs says how).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/status.h"

namespace razor::gguf {

struct validate_options {
  std::string text_path;     // evaluation text
  int windows = 200;         // N windows ...
  int first_window = 0;      // ... from this one on (skip held-out calibration windows)
  int window = 256;          // tokens per window
  std::string ref_path;      // reference GGUF for KL ("" none)
  int batch = 256;           // llama.cpp batch size (fixed: sub-batching changes the last digits)
  bool exact = true;         // flash attention off, F32 KV cache
  int generate = 0;          // > 0: also greedily generate this many tokens after the first 16 of the stream
  int threads = 0;           // 0: llama.cpp's default
  std::string node = "node"; // the node executable
  std::string script;        // default: <source>/tools/llamacpp/validate.mjs or $RAZOR_VALIDATE_SCRIPT
  std::string oracle_dir;    // folder holding node_modules/node-llama-cpp; default: $RAZOR_ORACLE_DIR or
                             // <source>/.oracle
};

// KL(ref || file) per predicted position; percentiles interpolated between sorted values (llama-perplexity).
struct kl_stats {
  int64_t positions = 0;
  double mean = 0, mean_err = 0;
  double max = 0, p999 = 0, p99 = 0, p95 = 0, p90 = 0, median = 0, p10 = 0, p5 = 0, p1 = 0, min = 0;
  double same_top1 = 0, same_top1_err = 0;  // share of positions whose most probable token agrees
  double ppl_ref = 0, nll_ref = 0;           // the reference's perplexity on the same predictions
  double ln_ppl_ratio = 0;                   // ln(ppl / ppl_ref)
  double delta_p_mean = 0, delta_p_rms = 0;  // p_file(target) - p_ref(target)
  int64_t clamped = 0;                       // p_file underflowed to 0 where p_ref > 0 (taken as 1.4e-45)
  std::vector<double> window_kl;             // mean KL of each window
};

struct validate_result {
  double ppl = 0, nll = 0;
  int windows = 0, predictions = 0, first_window = 0;
  std::optional<kl_stats> kl;          // with validate_options::ref_path
  double load_ms = 0, eval_ms = 0;
  std::string generated;               // --generate: the text of the generated tokens
  std::vector<int32_t> generated_ids;   // and their ids
  std::string json;  // the script's whole answer
};

// Why validation cannot run here ("" when it can): node missing, oracle missing, script missing.
std::string validate_unavailable_reason(const validate_options& o);
// Runs the check. Errors: external (llama.cpp refused or aborted, or the two files tokenize the text
// differently; the message carries its stderr tail), not_found (node / oracle / script / file missing),
// invalid_argument.
result<validate_result> validate_with_llamacpp(const std::string& gguf_path, const validate_options& o);

// llama.cpp's next-token log-probabilities for `tokens`, fed as one sequence from an empty cache in one batch
// (o.exact, o.threads, o.node/script/oracle_dir are used; text_path is not): float32 [tokens.size()][n_vocab],
// row i = log softmax of llama.cpp's logits after tokens[0..i]. The ids and the rows travel through temporary
// files in `tmp_dir` (default: the system temporary folder).
struct logprobs_result {
  int64_t n_vocab = 0;
  std::vector<float> logprobs;
  std::string json;
};
result<logprobs_result> llamacpp_logprobs(const std::string& gguf_path, const std::vector<int32_t>& tokens,
                                          int64_t n_vocab, const validate_options& o, std::string tmp_dir = "");

}  // namespace razor::gguf
