// Slurm array jobs for razor quantize / razor pack: one layer range per array task, then one merge job that
// runs after every task succeeded (--dependency=afterok). Slurm does the scheduling; this only writes the
// sbatch scripts and, for `razor slurm submit`, runs the real sbatch. docs/slurm.md describes the scripts.
//
// Work directory layout (it must be on a filesystem every compute node sees):
//   <work>/array.sh       the array job: task i runs `razor quantize|pack ... --layers <range i> --out parts/task-i`
//   <work>/merge.sh       the merge job: `razor merge ...` / `razor pack ... --from-part ...` into the final output
//   <work>/submit.sh      the two sbatch calls for submitting by hand (what `razor slurm submit` does)
//   <work>/parts/task-i   the parts (atomic directories)
//   <work>/logs/          task-<array job id>_<i>.out, merge-<job id>.out
// Task 0 also holds the tensors outside the decoder layers ("rest": embeddings, final norm, lm_head).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "model/layer_selection.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor::jobs {

enum class slurm_job_kind { quantize, pack };

struct slurm_options {
  slurm_job_kind kind = slurm_job_kind::quantize;
  std::string razor;     // absolute path of the razor binary as the compute nodes see it
  std::string model;     // absolute path of the source checkpoint
  std::string out;       // final output: a checkpoint directory (quantize) or a .gguf file (pack)
  std::string work_dir;  // absolute; scripts, parts and logs
  int n_layers = 0;      // the model's decoder layers
  int tasks = 0;         // number of array tasks; or
  int layers_per_task = 0;
  // Passed unchanged (each one quoted) to every task and to the merge: --recipe R, --cpu, --type q4_K, ...
  std::vector<std::string> job_args;
  std::vector<std::string> task_args;  // only for the tasks (quantize --cpu)
  // Resources (#SBATCH lines; empty / 0 = not written). gres only on the array job: the merge needs no GPU.
  std::string partition, gres, time, mem, account;
  int cpus_per_task = 0;
  std::string job_name = "razor";
};

struct slurm_plan {
  slurm_options opt;
  std::vector<layer_selection> ranges;  // task i -> its selection
  std::string array_script, merge_script, submit_script;
  std::string array_path, merge_path, submit_path, parts_dir, logs_dir;
  std::vector<std::string> part_dirs;    // parts_dir/task-i
  std::string array_log, merge_log;      // Slurm --output patterns (%A, %a, %j)
};

// Checks the options (absolute paths, layer count, resource values without whitespace or quotes) and writes the
// scripts' text. No file is touched.
result<slurm_plan> make_slurm_plan(const slurm_options& o);

// Creates work_dir, parts/ and logs/ and writes the three scripts (atomically, executable).
status write_slurm_scripts(const slurm_plan& p);

struct slurm_submission {
  std::string array_job_id, merge_job_id;
};

// Writes the scripts, then runs `sbatch --parsable --output=... array.sh` and
// `sbatch --parsable --dependency=afterok:<array id> --output=... merge.sh` (argv, no shell). `sbatch` is looked
// up on PATH unless a path is given. errc::external with sbatch's message when it fails.
result<slurm_submission> submit_slurm_plan(const slurm_plan& p, const std::string& sbatch = "sbatch");

// The job id of `sbatch --parsable` output ("1234" or "1234;cluster"); errc::external when there is none.
result<std::string> parse_sbatch_job_id(const std::string& output);


// ---- following the submitted jobs (the worker method `slurm`; docs/slurm.md) ----

// One job record of `scontrol show job` (one-line `-o` or the multi-line form; records start at `JobId=`).
// array_task_id is "" for a plain job, "3" for one array task, or the pending rest of an array that Slurm has not
// split yet: "0-7", "2,4-7", "0-15%4".
struct slurm_job_record {
  std::string job_id, array_job_id, array_task_id, state, reason, exit_code, dependency;
};
std::vector<slurm_job_record> parse_scontrol_jobs(const std::string& text);

// "0-3,5,7-9%2" -> 0 1 2 3 5 7 8 9 (the %limit is dropped); errc::bad_format on anything else, and on ids
// above Slurm's limit (4000000) or more ids than that in all.
result<std::vector<int>> parse_array_task_ids(const std::string& spec);

// A state after which the job does not run again: COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL,
// OUT_OF_MEMORY, BOOT_FAIL, DEADLINE, PREEMPTED.
bool slurm_state_is_final(const std::string& state);

struct slurm_follow_options {
  std::string scontrol = "scontrol", scancel = "scancel";  // PATH look-up unless a path is given
  double poll_s = 10;             // between two `scontrol show job` rounds
  int max_poll_failures = 60;     // consecutive failures (controller unreachable) before giving up
  std::function<bool()> cancelled;                      // checked every 100 ms between polls (optional)
  std::function<void(const std::string&)> log;          // state changes, one line each (optional)
};

struct slurm_outcome {
  std::vector<std::string> task_states;  // per array task, its last state
  std::string merge_state;
};

// Follows the array job and its merge job with `scontrol -o show job <id>` (no slurmdbd needed) until the merge
// ends. progress(finished tasks, tasks, "array 12: 2/8 completed, 3 running, 3 pending") after every poll.
// COMPLETED merge: the outcome. A failed / cancelled task (as soon as every task has ended) or a merge that did not
// complete: errc::external naming them, with the last lines of their logs (logs/task-<array>_<i>.out,
// logs/merge-<id>.out). Cancelled (progress returned false or opt.cancelled()): runs `scancel <array> <merge>` and
// returns errc::cancelled.
result<slurm_outcome> follow_slurm_jobs(const slurm_submission& s, const slurm_plan& p,
                                        const slurm_follow_options& opt, const progress_fn& progress);

}  // namespace razor::jobs
