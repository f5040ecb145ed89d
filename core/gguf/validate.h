// Validation of a GGUF file in the real llama.cpp: tools/llamacpp/validate.mjs (node-llama-cpp, prebuilt
// CPU binaries) runs in a child process, so that a llama.cpp abort() on a bad file fails only the child.
// The script loads the file, tokenizes the text with the file's own tokenizer and measures perplexity
// with the protocol of resources/models/README.md (windows of 256 tokens, empty cache per window; exact mode:
// flash attention off, F32 KV cache).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace razor::gguf {

struct validate_options {
  std::string text_path;     // evaluation text
  int windows = 200;         // first N windows
  int window = 256;          // tokens per window
  int batch = 256;           // llama.cpp batch size (fixed: sub-batching changes the last digits)
  bool exact = true;         // flash attention off, F32 KV cache
  int generate = 0;          // > 0: also greedily generate this many tokens after the first 16 of the stream
  int threads = 0;           // 0: llama.cpp's default
  std::string node = "node"; // the node executable
  std::string script;        // default: <source>/tools/llamacpp/validate.mjs or $RAZOR_VALIDATE_SCRIPT
  std::string oracle_dir;    // folder holding node_modules/node-llama-cpp; default: $RAZOR_ORACLE_DIR or
                             // <source>/.oracle
};

struct validate_result {
  double ppl = 0, nll = 0;
  int windows = 0, predictions = 0;
  double load_ms = 0, eval_ms = 0;
  std::string generated;               // --generate: the text of the generated tokens
  std::vector<int32_t> generated_ids;   // and their ids
  std::string json;  // the script's whole answer
};

// Why validation cannot run here ("" when it can): node missing, oracle missing, script missing.
std::string validate_unavailable_reason(const validate_options& o);
// Runs the check. Errors: external (llama.cpp refused or aborted; the message carries its stderr tail),
// not_found (node / oracle / script missing), invalid_argument.
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
