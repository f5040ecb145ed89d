// Phase B of razor recover: the BF16 teacher's top-k log-probabilities on every generated position of the
// rollouts (prefill only: one forward over prompt + gen_ids per batch of rollouts), written as
// teacher_topk.safetensors (docs/recovery.md, "the files"):
//   "r<i>.idx" I32 [T_i, K]  the teacher's top-K token ids at generated position t (best first, ties: lower id)
//   "r<i>.lp"  F32 [T_i, K]  their log-probabilities, log-softmax over the whole vocabulary at temperature 1
//                            (engine/eval.h log_softmax)
// for the i-th line of rollouts.jsonl, T_i = len(gen_ids); position t is the distribution of gen_ids[t] given
// prompt_ids + gen_ids[:t], i.e. the logits of sequence position len(prompt_ids) - 1 + t. Rollouts longer than
// max_len (prompt + gen) or without generated tokens get no tensors. "__metadata__": {"format":
// "razor-opd-teacher-1", "k": "<K>", "rows": "<N lines>", "model": "<teacher dir>"}.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/model_runner.h"
#include "recover/rollouts.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor::recover {

inline constexpr const char* kTeacherFormat = "razor-opd-teacher-1";

struct teacher_options {
  int topk = 20;                 // the seed's score --k
  size_t max_len = 18432;        // the seed's SCORE_MAX_LEN: longer rollouts are dropped
  size_t batch_tokens = 8192;    // tokens through one forward() (at least one whole rollout)
  std::string model;             // the teacher's folder, for the metadata
  engine::run_options run;
  progress_fn progress;          // done / total in rollouts
};

struct teacher_report {
  size_t rows = 0, scored = 0, dropped = 0, positions = 0;
};

// Scores `rs` with `teacher` and writes `out_path` atomically.
result<teacher_report> score_teacher(engine::weight_provider& teacher, const std::vector<rollout>& rs,
                                     const std::string& out_path, const teacher_options& opt);

}  // namespace razor::recover
