// razor recover: on-policy distillation (OPD) of a quantized student back toward its BF16 teacher, the seed's
// recovery path (seed-reference.md Appendix A, docs/recovery.md, docs/recovery-cli.md), phase by phase:
//   A  student rollouts on the reference engine        -> <work>/rollouts.jsonl (+ rollouts_meta.json)
//   B  the teacher's top-k log-probs on every position -> <work>/teacher_topk.safetensors
//   C  per-expert output-space LoRA training (PyTorch) -> <work>/adapter.safetensors, <work>/train_log.jsonl
//   D  the adapter merged into the teacher's experts and re-quantized with the student's recipe -> <out>
//   E  mean KL to the teacher and perplexity of the student (baseline) and the recovered model on the held-apart
//      evaluation text (engine/eval.h kl_divergence)
// Each phase reads what the earlier ones wrote in the work folder, so a run can be resumed at any phase
// (phases "D,E" with an adapter already in <work>). The work folder is razor's own: it holds recover.json
// (razor.recover_work/1) and is refused when it exists with other content (util/output_guard.h's rule).
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "engine/model_runner.h"
#include "recover/sampling.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor::recover {

inline constexpr const char* kRecoverPhases = "ABCDE";

struct recover_options {
  std::string teacher, student, recipe, out, work;  // work "" = <out>.opd
  std::string phases = "A,B,C,D,E";
  std::string text, eval_text;                       // "" = the bundled calibration / evaluation text
  // A
  int prompts = 16, k = 4, prompt_len = 32, max_new = 48;
  // off-policy extra sequences: text_pieces pieces of text_piece_len tokens of the calibration text, written as
  // rollouts with finish_reason "text" (prompt = the first token, generation = the rest: teacher-forced)
  int text_pieces = 0, text_piece_len = 128;
  sampling_params sampling;
  uint64_t seed = 0;
  size_t gen_batch = 64;
  // B
  int topk = 20;
  int64_t max_len = 18432;
  // C
  std::string python;  // "" = find_python_with("torch")
  int rank = 16, epochs = 1, accum = 8, nproc = 1, threads = 0;
  double scale = 2.0, lr = 5e-5, tau = 1.0;
  int64_t train_max_len = 8192;
  bool reverse = true, finished_only = true;
  bool qat = true;  // quantization-aware training: the trainer's experts are fakequant(W_teacher + s B A)
  // E
  int eval_windows = 32, eval_ctx = 256, eval_batch = 16;
  // where the engine runs (A, B, E)
  engine::backend device = engine::backend::cpu;
  engine::gpu_precision gpu_weights = engine::gpu_precision::bf16;
  bool allow_gpu_quantize = true;
};

struct recover_callbacks {
  // Phase progress: phase letter, done / total, what. Returning false cancels.
  std::function<bool(char phase, double done, double total, const std::string& what)> progress;
  std::function<void(const std::string& line)> log;           // messages and the trainer's output
  std::function<void(const nlohmann::json& entry)> train_step;  // each train_log.jsonl entry (phase C)
  std::function<bool()> cancelled;
};

// The phases of a "A,B,D" / "ABD" list; errc::invalid_argument naming an unknown letter.
result<std::set<char>> parse_phases(const std::string& s);

// Runs the phases; the result: {"work", "out", "phases", "A": {...}, "B": {...}, ..., "E": {"baseline":
// {"kl_mean", "ppl"}, "recovered": {...}, "teacher_ppl", "kl_reduction"}} (what each phase did and wrote).
result<nlohmann::json> run_recover(const recover_options& o, const recover_callbacks& cb = {});

}  // namespace razor::recover
