// Speed of what we deploy: prefill and decode tokens/s of a served model at several prompt lengths, and the GPU
// memory in use while it serves (seed-reference §7: 115.9 tok/s decode, 2541 tok/s prefill, 53.7 GB on one H100;
// 45.7 tok/s with the experts offloaded to the CPU by llama-server's --n-cpu-moe). `razor eval --speed-contexts`
// records it in the result file ("speed"), beside the benchmarks; the server's flags (the offload included) are in
// the result's provenance.
//
// First a warm-up request, whose prompt_tokens also say how many filler pieces make a token with this server's
// tokenizer (so the prompts come out near the asked lengths). Then per prompt length C, two requests on one
// connection, each prompt new to the server (a nonce first, so no prompt cache helps the first request):
//   1. the prompt (about C tokens of filler text), max_tokens 1, temperature 0: prefill;
//   2. the same prompt, max_tokens = gen_tokens, ignore_eos: decode (its prompt is in the cache on servers that
//      keep one).
// Where the server reports llama-server's `timings`, they are the figures (prompt_n / prompt_ms of request 1,
// predicted_n / predicted_ms of request 2: the server's own clock, no HTTP); otherwise the client's wall clock:
// prefill = prompt tokens / time of request 1, decode = (tokens of request 2 − 1) / (time of request 2 − time of
// request 1), which assumes request 2 re-reads the prompt as fast as request 1 did ("method" says which).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/client.h"
#include "util/status.h"

namespace razor::eval {

struct speed_options {
  std::vector<int> contexts;  // prompt lengths in tokens (approximate: the server's count is recorded)
  int gen_tokens = 128;
};

struct speed_point {
  int context = 0;               // asked for
  int prompt_tokens = 0;         // the server's count
  int generated = 0;             // tokens of request 2
  double prefill_tok_s = 0, decode_tok_s = 0;
  std::string method;            // "server timings" or "client wall clock"
  std::optional<uint64_t> gpu_memory_used;  // NVML, all GPUs of this machine, after the point
};

// Filler text of `pieces` words and numbers (about a token each with a large vocabulary), starting with `nonce`.
std::string speed_prompt(int pieces, const std::string& nonce);

// Measures every context of `o` against `model` on `c` (a failed request fails the whole measurement, naming
// the context).
result<std::vector<speed_point>> measure_speed(client& c, const std::string& model, const speed_options& o);

// {"gen_tokens", "points": [{context, prompt_tokens, generated, prefill_tok_s, decode_tok_s, method,
//  gpu_memory_used_bytes?}], "peak_gpu_memory_used_bytes"?, "gpu_memory_note"}
nlohmann::json speed_json(const speed_options& o, const std::vector<speed_point>& points);

}  // namespace razor::eval
