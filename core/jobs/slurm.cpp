#include "jobs/slurm.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "util/atomic_file.h"

extern char** environ;

namespace fs = std::filesystem;

namespace razor::jobs {

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q += "'\\''";
    else q += c;
  }
  return q + "'";
}

namespace {

// What may stand unquoted in an #SBATCH line: sbatch splits those lines on whitespace and has its own,
// incomplete, quote handling, so anything else is refused (resources) or moved to the command line (paths).
bool directive_safe(const std::string& s, bool allow_percent = false) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!(std::isalnum(c) || std::strchr("_.,:=/+@-", c) || (allow_percent && c == '%'))) return false;
  return true;
}

// Slurm expands %A, %a, %j, ... in --output; a literal '%' is written "%%".
std::string escape_percent(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '%') o += "%%";
    else o += c;
  }
  return o;
}

const char* kind_name(slurm_job_kind k) { return k == slurm_job_kind::quantize ? "quantize" : "pack"; }

std::string join_quoted(const std::vector<std::string>& args) {
  std::string s;
  for (auto& a : args) {
    s += ' ';
    s += shell_quote(a);
  }
  return s;
}

void sbatch_line(std::ostringstream& os, const char* opt, const std::string& v) {
  if (!v.empty()) os << "#SBATCH --" << opt << "=" << v << "\n";
}

std::string header(const slurm_plan& p, bool array) {
  const slurm_options& o = p.opt;
  std::ostringstream os;
  os << "#!/bin/bash\n";
  os << "#SBATCH --job-name=" << o.job_name << "-" << kind_name(o.kind) << (array ? "" : "-merge") << "\n";
  if (array) os << "#SBATCH --array=0-" << p.ranges.size() - 1 << "\n";
  sbatch_line(os, "partition", o.partition);
  sbatch_line(os, "account", o.account);
  sbatch_line(os, "time", o.time);
  sbatch_line(os, "mem", o.mem);
  if (o.cpus_per_task > 0) sbatch_line(os, "cpus-per-task", std::to_string(o.cpus_per_task));
  if (array) sbatch_line(os, "gres", o.gres);
  // A failed task makes the merge's afterok dependency unsatisfiable: cancel the merge instead of leaving it
  // pending forever.
  if (!array) os << "#SBATCH --kill-on-invalid-dep=yes\n";
  const std::string& log = array ? p.array_log : p.merge_log;
  if (directive_safe(log, true)) {  // '%' only in the patterns this file made (a literal one is "%%")
    os << "#SBATCH --output=" << log << "\n";
  } else {
    os << "# The log path cannot stand in an #SBATCH line; `razor slurm submit` and submit.sh pass it to sbatch:\n"
       << "#   --output=" << shell_quote(log) << "\n";
  }
  os << "# Written by razor slurm (docs/slurm.md). Model: " << shell_quote(o.model) << "\n";
  os << "set -euo pipefail\n";
  os << "RAZOR=" << shell_quote(o.razor) << "\n";
  os << "MODEL=" << shell_quote(o.model) << "\n";
  os << "PARTS=" << shell_quote(p.parts_dir) << "\n";
  return os.str();
}

}  // namespace

result<std::string> parse_sbatch_job_id(const std::string& all_output) {
  // The id is on the last non-empty line (warnings, when sbatch prints any, come first).
  std::string output = all_output;
  while (!output.empty() && std::isspace(static_cast<unsigned char>(output.back()))) output.pop_back();
  if (size_t nl = output.rfind('\n'); nl != std::string::npos) output = output.substr(nl + 1);
  size_t i = 0;
  while (i < output.size() && std::isspace(static_cast<unsigned char>(output[i]))) ++i;
  size_t j = i;
  while (j < output.size() && std::isdigit(static_cast<unsigned char>(output[j]))) ++j;
  if (j == i) return make_error(errc::external, "sbatch --parsable printed no job id: '" + all_output + "'");
  if (j < output.size() && output[j] != ';' && !std::isspace(static_cast<unsigned char>(output[j])))
    return make_error(errc::external, "sbatch --parsable printed no job id: '" + all_output + "'");
  return output.substr(i, j - i);
}

result<slurm_plan> make_slurm_plan(const slurm_options& o) {
  auto bad = [](const std::string& m) { return make_error(errc::invalid_argument, "slurm: " + m); };
  for (auto [what, path] : {std::pair{"--razor", &o.razor}, {"model", &o.model}, {"--out", &o.out},
                            {"--work-dir", &o.work_dir}}) {
    if (path->empty() || (*path)[0] != '/')
      return bad(std::string(what) + " must be an absolute path (compute nodes run the script): '" + *path + "'");
    if (path->find('\n') != std::string::npos || path->find('\0') != std::string::npos)
      return bad(std::string(what) + " contains a newline");
  }
  if (o.n_layers <= 0) return bad("the model has no decoder layers to split");
  if (o.tasks > 0 && o.layers_per_task > 0) return bad("give --tasks or --layers-per-task, not both");
  int tasks = o.tasks;
  if (o.layers_per_task > 0) tasks = (o.n_layers + o.layers_per_task - 1) / o.layers_per_task;
  if (tasks <= 0) return bad("give --tasks N or --layers-per-task K");
  if (tasks > o.n_layers)
    return bad(std::to_string(tasks) + " tasks for " + std::to_string(o.n_layers) + " layers (at most one task per layer)");
  for (auto [what, v] : {std::pair{"--partition", &o.partition}, {"--gres", &o.gres}, {"--time", &o.time},
                         {"--mem", &o.mem}, {"--account", &o.account}, {"--job-name", &o.job_name}})
    if (!v->empty() && !directive_safe(*v))
      return bad(std::string(what) + " '" + *v + "': only letters, digits and _.,:=/+@- may stand in an #SBATCH line");
  if (o.job_name.empty()) return bad("empty --job-name");
  for (auto& a : o.task_args)
    if (a.find('\0') != std::string::npos) return bad("an argument contains a NUL byte");
  for (auto& a : o.job_args)
    if (a.find('\0') != std::string::npos) return bad("an argument contains a NUL byte");

  slurm_plan p;
  p.opt = o;
  p.opt.tasks = tasks;
  if (o.layers_per_task > 0) {
    for (int i = 0, at = 0; i < tasks; ++i, at += o.layers_per_task) {
      layer_selection s;
      s.all = false;
      s.first = at;
      s.last = std::min(at + o.layers_per_task, o.n_layers);
      s.rest = i == 0;
      p.ranges.push_back(s);
    }
  } else {
    p.ranges = split_layers(o.n_layers, tasks);
  }
  RAZOR_TRY(check_cover(p.ranges, o.n_layers));
  std::string work = fs::path(o.work_dir).lexically_normal().string();
  if (work.size() > 1 && work.back() == '/') work.pop_back();
  p.array_path = work + "/array.sh";
  p.merge_path = work + "/merge.sh";
  p.submit_path = work + "/submit.sh";
  p.parts_dir = work + "/parts";
  p.logs_dir = work + "/logs";
  p.array_log = escape_percent(p.logs_dir) + "/task-%A_%a.out";
  p.merge_log = escape_percent(p.logs_dir) + "/merge-%j.out";
  for (size_t i = 0; i < p.ranges.size(); ++i) p.part_dirs.push_back(p.parts_dir + "/task-" + std::to_string(i));

  const std::string args = join_quoted(o.job_args);
  {
    std::ostringstream os;
    os << header(p, true);
    os << "task=\"${SLURM_ARRAY_TASK_ID:?not running as a Slurm array task}\"\n";
    os << "# task -> layers (half-open; 'rest' = embeddings, final norm, lm_head)\n";
    os << "case \"$task\" in\n";
    for (size_t i = 0; i < p.ranges.size(); ++i) os << "  " << i << ") layers='" << p.ranges[i].to_string() << "' ;;\n";
    os << "  *) echo \"razor: array task $task is outside the plan (0-" << p.ranges.size() - 1 << ")\" >&2; exit 2 ;;\n";
    os << "esac\n";
    os << "echo \"razor: task $task of job ${SLURM_ARRAY_JOB_ID:-?}: layers $layers on $(hostname)\"\n";
    os << "exec \"$RAZOR\" " << kind_name(o.kind) << " \"$MODEL\"" << args << join_quoted(o.task_args)
       << " --layers \"$layers\" --out \"$PARTS/task-$task\"\n";
    p.array_script = os.str();
  }
  {
    std::ostringstream os;
    os << header(p, false);
    os << "OUT=" << shell_quote(o.out) << "\n";
    os << "echo \"razor: merging " << p.ranges.size() << " parts into $OUT on $(hostname)\"\n";
    const char* part_opt = o.kind == slurm_job_kind::quantize ? "--part" : "--from-part";
    os << "exec \"$RAZOR\" " << (o.kind == slurm_job_kind::quantize ? "merge" : "pack") << " \"$MODEL\"" << args
       << " --out \"$OUT\"";
    for (size_t i = 0; i < p.ranges.size(); ++i) os << " \\\n  " << part_opt << " \"$PARTS/task-" << i << "\"";
    os << "\n";
    p.merge_script = os.str();
  }
  {
    std::ostringstream os;
    os << "#!/bin/bash\n";
    os << "# Submits the array job, then the merge job to run after every task succeeded (razor slurm submit does\n"
       << "# the same). Prints the two job ids as JSON.\n";
    os << "set -euo pipefail\n";
    os << "array_id=$(sbatch --parsable --output=" << shell_quote(p.array_log) << " " << shell_quote(p.array_path)
       << ")\n";
    os << "array_id=${array_id%%;*}\n";
    os << "merge_id=$(sbatch --parsable --dependency=afterok:\"$array_id\" --output=" << shell_quote(p.merge_log)
       << " " << shell_quote(p.merge_path) << ")\n";
    os << "merge_id=${merge_id%%;*}\n";
    os << "printf '{\"array_job_id\": \"%s\", \"merge_job_id\": \"%s\"}\\n' \"$array_id\" \"$merge_id\"\n";
    p.submit_script = os.str();
  }
  return p;
}

status write_slurm_scripts(const slurm_plan& p) {
  std::error_code ec;
  for (auto& d : {p.opt.work_dir, p.parts_dir, p.logs_dir}) {
    fs::create_directories(d, ec);
    if (ec) return make_error(errc::io, d + ": " + ec.message());
  }
  for (auto [path, text] : {std::pair{&p.array_path, &p.array_script}, {&p.merge_path, &p.merge_script},
                            {&p.submit_path, &p.submit_script}}) {
    RAZOR_TRY(write_file_atomic(*path, *text));
    if (::chmod(path->c_str(), 0755) != 0) return make_error(errc::io, *path + ": chmod failed");
  }
  return {};
}

namespace {

// Runs argv (no shell), returns its stdout; stderr goes to a pipe too and is reported on failure.
result<std::string> run_capture(const std::vector<std::string>& argv) {
  int out[2];
  if (::pipe(out) != 0) return make_error(errc::external, "pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, out[1], 2);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, argv[0].c_str(), &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    return make_error(errc::external, argv[0] + ": cannot run (" + std::strerror(rc) + "; is Slurm's client on PATH?)");
  }
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) text.append(buf, size_t(n));
  ::close(out[0]);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    std::string cmd;
    for (auto& a : argv) {
      if (!cmd.empty()) cmd += ' ';
      cmd += shell_quote(a);
    }
    return make_error(errc::external, cmd + " failed (exit " + std::to_string(WIFEXITED(st) ? WEXITSTATUS(st) : -1) +
                                          "): " + text);
  }
  return text;
}

}  // namespace

result<slurm_submission> submit_slurm_plan(const slurm_plan& p, const std::string& sbatch) {
  RAZOR_TRY(write_slurm_scripts(p));
  slurm_submission s;
  RAZOR_ASSIGN_OR_RETURN(std::string a, run_capture({sbatch, "--parsable", "--output=" + p.array_log, p.array_path}));
  RAZOR_ASSIGN_OR_RETURN(s.array_job_id, parse_sbatch_job_id(a));
  RAZOR_ASSIGN_OR_RETURN(std::string m, run_capture({sbatch, "--parsable", "--dependency=afterok:" + s.array_job_id,
                                                     "--output=" + p.merge_log, p.merge_path}));
  RAZOR_ASSIGN_OR_RETURN(s.merge_job_id, parse_sbatch_job_id(m));
  return s;
}

}  // namespace razor::jobs
