// Phase C of razor recover: the PyTorch trainer (tools/opd/train.py, docs/recovery.md) as a child process. The
// interpreter is the one util/python.h's find_python_with("torch") picks ($RAZOR_PYTHON, else /usr/bin/python3
// when it imports torch, else python3); the script is train.py of util/python.h's opd_tool_dir() ($RAZOR_DATA/tools/opd,
// the installed share/razor/tools/opd of the Debian package and the portable bundle, the source tree's tools/opd);
// $RAZOR_OPD_TRAIN overrides. Its output lines are
// relayed as they come, and every new line of the training log (train_log.jsonl: {"step", "loss", "kl",
// "kl_ema", "lr", "tokens", "seconds"}, the last {"done": true, ...}) is handed to on_step as it is written.
// Cancelling sends SIGTERM (SIGKILL after 5 s) to the trainer's process group.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/status.h"

namespace razor::recover {

struct trainer_options {
  std::string python;   // "" = find_python_with("torch")
  std::string script;   // "" = find_trainer_script()
  std::string student, rollouts, teacher_topk, adapter_out, log;
  std::string qat_base;  // non-empty: --qat-base (quantization-aware training against this unquantized checkpoint)
  int rank = 16;
  double scale = 2.0, tau = 1.0, lr = 5e-5;
  int epochs = 1, accum = 8, nproc = 1, threads = 0, seed = 0;
  int64_t max_len = 8192;
  bool reverse = true, finished_only = true;
  std::vector<std::string> extra_args;  // passed through last
};

// train.py: $RAZOR_OPD_TRAIN, then opd_tool_dir()'s (util/python.h; until it is in the tree, the same folders from
// util/paths.h data_dirs("tools/opd")); errc::not_found naming where it looked.
result<std::string> find_trainer_script();

// The interpreter that imports `module` (util/python.h when present in the tree).
result<std::string> trainer_python();

// The trainer's argv (python, script, flags) for `o`.
std::vector<std::string> trainer_argv(const trainer_options& o);

struct trainer_callbacks {
  std::function<void(const std::string& line)> on_output;       // each output line (stdout and stderr)
  std::function<void(const nlohmann::json& entry)> on_step;     // each new train_log.jsonl entry
  std::function<bool()> cancelled;                              // polled; true stops the trainer
};

// Runs argv (a child in its own process group, stdin /dev/null) relaying as above; errc::external naming the
// exit status and the last output lines when it fails, errc::cancelled when cancelled.
status run_trainer(const std::vector<std::string>& argv, const std::string& log_path, const trainer_callbacks& cb);

}  // namespace razor::recover
