// razor slurm plan|script|submit quantize|pack MODEL --out OUT --work-dir DIR (--tasks N | --layers-per-task K)
// The sbatch array job (one layer range per task) and its merge job (afterok), core/jobs/slurm.h; docs/slurm.md.
//   plan    prints the layer ranges and both scripts; writes nothing
//   script  writes array.sh, merge.sh and submit.sh into the work directory
//   submit  writes them and runs the real sbatch (PATH or --sbatch) for both; prints the job ids as JSON
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "jobs/slurm.h"
#include "model/checkpoint.h"

namespace {

namespace fs = std::filesystem;

struct slurm_args {
  std::string action, kind, model, out, work_dir, razor, sbatch = "sbatch";
  std::string recipe, type, ftype, imatrix;
  bool cpu = false;
  std::vector<std::string> job_args;
  razor::jobs::slurm_options o;
};

std::string absolute(const std::string& p) {
  std::error_code ec;
  auto a = fs::absolute(p, ec);
  return ec ? p : a.lexically_normal().string();
}

// A recipe / imatrix argument that names an existing file becomes absolute (the tasks do not run in this
// directory); a bare recipe name (seed-default) is left for razor to look up in recipes/.
std::string file_arg(const std::string& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) ? absolute(p) : p;
}

// The command's work; errors are values (reported once, by the caller).
razor::status run_slurm(const slurm_args& a) {
  using namespace razor;
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(a.model));
  jobs::slurm_options o = a.o;
  o.kind = a.kind == "pack" ? jobs::slurm_job_kind::pack : jobs::slurm_job_kind::quantize;
  o.n_layers = int(ck.config().num_layers);
  o.model = absolute(a.model);
  o.out = absolute(a.out);
  o.work_dir = absolute(a.work_dir);
  if (!a.razor.empty()) {
    o.razor = absolute(a.razor);
  } else {
    std::error_code ec;
    auto self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return make_error(errc::io, "cannot find this program's path; give --razor");
    o.razor = self.string();
  }
  if (!a.recipe.empty()) o.job_args.insert(o.job_args.end(), {"--recipe", file_arg(a.recipe)});
  if (!a.type.empty()) o.job_args.insert(o.job_args.end(), {"--type", a.type});
  if (!a.ftype.empty()) o.job_args.insert(o.job_args.end(), {"--ftype", a.ftype});
  if (!a.imatrix.empty()) o.job_args.insert(o.job_args.end(), {"--imatrix", file_arg(a.imatrix)});
  if (a.cpu) o.task_args.push_back("--cpu");
  for (auto& j : a.job_args) o.job_args.push_back(j);
  if (o.kind == jobs::slurm_job_kind::pack && a.recipe.empty() && a.type.empty() && a.ftype.empty())
    return make_error(errc::invalid_argument, "slurm pack: give --type, --ftype or --recipe");
  RAZOR_ASSIGN_OR_RETURN(const jobs::slurm_plan plan, jobs::make_slurm_plan(o));
  if (a.action == "plan") {
    std::printf("# %d layers in %zu array tasks\n", o.n_layers, plan.ranges.size());
    for (size_t i = 0; i < plan.ranges.size(); ++i)
      std::printf("#   task %zu: layers %s -> %s\n", i, plan.ranges[i].to_string().c_str(), plan.part_dirs[i].c_str());
    std::printf("# ---- %s\n%s", plan.array_path.c_str(), plan.array_script.c_str());
    std::printf("# ---- %s\n%s", plan.merge_path.c_str(), plan.merge_script.c_str());
    std::printf("# ---- %s\n%s", plan.submit_path.c_str(), plan.submit_script.c_str());
    return {};
  }
  if (a.action == "script") {
    RAZOR_TRY(jobs::write_slurm_scripts(plan));
    std::printf("wrote %s\nwrote %s\nwrote %s\n", plan.array_path.c_str(), plan.merge_path.c_str(),
                plan.submit_path.c_str());
    return {};
  }
  RAZOR_ASSIGN_OR_RETURN(const jobs::slurm_submission sub, jobs::submit_slurm_plan(plan, a.sbatch));
  nlohmann::json j = {{"array_job_id", sub.array_job_id},
                      {"merge_job_id", sub.merge_job_id},
                      {"tasks", plan.ranges.size()},
                      {"work_dir", o.work_dir},
                      {"out", o.out}};
  std::printf("%s\n", j.dump().c_str());
  return {};
}

RAZOR_COMMAND("slurm", "Split quantize / pack over a Slurm array job (one layer range per task) plus a merge job",
              45, [](CLI::App& sub) {
  auto a = std::make_shared<slurm_args>();
  sub.add_option("ACTION", a->action, "plan (print), script (write the scripts) or submit (write and sbatch)")
      ->required()
      ->check(CLI::IsMember({"plan", "script", "submit"}));
  sub.add_option("KIND", a->kind, "quantize or pack")->required()->check(CLI::IsMember({"quantize", "pack"}));
  sub.add_option("MODEL", a->model, "checkpoint directory (on the shared filesystem)")->required();
  sub.add_option("--out", a->out, "final output: checkpoint directory (quantize) or .gguf (pack)")->required();
  sub.add_option("--work-dir", a->work_dir, "scripts, parts and logs (on the shared filesystem)")->required();
  sub.add_option("--tasks", a->o.tasks, "number of array tasks (layer ranges)");
  sub.add_option("--layers-per-task", a->o.layers_per_task, "layers per array task");
  sub.add_option("--recipe", a->recipe, "recipe passed to every task and the merge");
  sub.add_option("--type", a->type, "pack: default ggml type");
  sub.add_option("--ftype", a->ftype, "pack: llama-quantize file type (its per-tensor mix, docs/gguf.md)");
  sub.add_option("--imatrix", a->imatrix, "pack: importance matrix");
  sub.add_flag("--cpu", a->cpu, "quantize: never use the GPU");
  sub.add_option("--job-arg", a->job_args, "one more argument for every task and the merge (repeat)");
  sub.add_option("--partition", a->o.partition, "#SBATCH --partition");
  sub.add_option("--gres", a->o.gres, "#SBATCH --gres of the array tasks (gpu:1)");
  sub.add_option("--time", a->o.time, "#SBATCH --time");
  sub.add_option("--mem", a->o.mem, "#SBATCH --mem");
  sub.add_option("--cpus-per-task", a->o.cpus_per_task, "#SBATCH --cpus-per-task");
  sub.add_option("--account", a->o.account, "#SBATCH --account");
  sub.add_option("--job-name", a->o.job_name, "job name prefix (default razor)");
  sub.add_option("--razor", a->razor, "the razor binary the compute nodes run (default: this one)");
  sub.add_option("--sbatch", a->sbatch, "submit: the sbatch program (default: sbatch from PATH)");
  return [a]() -> int { return razor::cli::report(run_slurm(*a)); };
});

}  // namespace
