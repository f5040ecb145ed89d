// razor recover TEACHER --student DIR --recipe R --out OUT [--work DIR] [--phases A,B,C,D,E] [--prompts 16 --k 4
//   --prompt-len 32 --max-new 48 --rank 16 --epochs 1 ...] [--device cpu|cuda|auto] [--text T --eval-text E]
// On-policy distillation of a quantized student toward its BF16 teacher (docs/recovery-cli.md): A student
// rollouts, B the teacher's top-k log-probs, C per-expert LoRA training (tools/opd/train.py in PyTorch), D the
// adapter merged into the teacher's experts and re-quantized with the student's recipe, E KL to the teacher and
// perplexity of the baseline and the recovered model. Phase messages and the trainer's lines go to stderr; the
// result is one JSON object on stdout (with --json on one line). The options and the work are the registry's
// `recover` job (core/jobs/job_recover.cpp), as the worker runs it.
#include <cstdio>

#include "cli/commands.h"
#include "cli/job_command.h"
#include "util/json_limits.h"

namespace {

razor::status run_recover(nlohmann::json& p, bool json_out) {
  using namespace razor;
  RAZOR_ASSIGN_OR_RETURN(const nlohmann::json j, cli::run_job("recover", p));
  std::printf("%s\n", dump_json(j, json_out ? -1 : 1).c_str());
  return {};
}

RAZOR_COMMAND("recover", "Recover a quantized model by on-policy distillation from its BF16 teacher (phases A-E)", 335,
              razor::cli::job_command_with_json("recover", "print the result JSON on one line", run_recover));

}  // namespace
