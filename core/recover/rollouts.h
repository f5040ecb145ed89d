// Phase A of razor recover (docs/recovery-cli.md): student rollouts on the reference engine, written as
// rollouts.jsonl (recover/rollouts_file.h).
//
// Prompts are pieces of a text (the calibration split): its protocol token stream (engine/eval.h
// protocol_tokens), n pieces of prompt_len tokens at evenly spaced offsets: offset_i = floor(i * (N - len) / n)
// for i < n (N tokens in the stream). The offsets are written down beside the rollouts (rollouts_meta.json).
//
// Generation: the engine keeps no KV cache (model_runner.h runs whole sequences), so each step runs every
// unfinished sequence (prompt + what it generated so far) through forward() in batches and samples the next
// token from its last position's logits (sampling.h; each rollout its own generator). The cost grows with the
// square of the length: right for the fixtures and small runs; generation at real sizes belongs on an inference
// server (vLLM / llama-server).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/model_runner.h"
#include "recover/rollouts_file.h"
#include "recover/sampling.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor::recover {

struct prompt_set {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<size_t> offsets;  // token offset of each prompt in the stream
  size_t stream_tokens = 0;
};
// n prompts of len tokens at evenly spaced offsets (the file comment); errc::invalid_argument when the stream
// is shorter than len.
result<prompt_set> pick_prompts(const std::vector<int32_t>& stream, int n, int len);

// The end-of-sequence ids of a checkpoint: eos_token_id of config.json (top level and text_config) and of
// generation_config.json, an integer or a list; ids outside [0, vocab) are ignored. Empty when none is given.
std::vector<int32_t> eos_ids(const std::string& model_dir, const model_config& cfg);

struct rollout_options {
  int k = 4;               // samples per prompt
  int max_new = 48;        // new tokens at most
  sampling_params sampling;
  uint64_t seed = 0;
  std::vector<int32_t> eos;    // stop tokens (eos_ids)
  size_t batch = 64;           // sequences through one forward()
  engine::run_options run;     // device (the engine's backend choice)
  // Per step: done = step, total = max_new, what = "step S: U unfinished". Returning false cancels.
  progress_fn progress;
};

// Rollouts of every prompt, k each, pid-major (the file's order).
result<std::vector<rollout>> generate_rollouts(engine::weight_provider& wp, const std::vector<std::vector<int32_t>>& prompts,
                                               const rollout_options& opt);

}  // namespace razor::recover
