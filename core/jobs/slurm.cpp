#include "jobs/slurm.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "gguf/output_check.h"
#include "util/atomic_file.h"
#include "util/output_guard.h"
#include "util/child_process.h"
#include "util/shell.h"

namespace fs = std::filesystem;

namespace razor::jobs {

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
  // The merge at the end may replace only razor's own earlier output (util/output_guard.h): say so now, not
  // after the array ran.
  if (o.kind == slurm_job_kind::quantize) RAZOR_TRY(check_output_dir(o.out, {o.model}));
  else RAZOR_TRY(gguf::check_gguf_output(o.out, {o.model}).error());

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

struct run_output {
  int exit_code = -1;  // -1: killed by a signal
  std::string out;     // stdout: what is parsed
  std::string text;    // stdout then stderr: for messages
};

// Runs argv (no shell) to its end (util/child_process.h). errc::external only when it cannot start.
result<run_output> run_program(const std::vector<std::string>& argv) {
  auto c = run_child(argv);
  if (!c.ok())
    return make_error(errc::external, argv[0] + ": cannot run (" + c.error().message() + "; is Slurm's client on PATH?)");
  return run_output{c->term_signal != 0 ? -1 : c->exit_code, c->out, c->out + c->err};
}

// Runs argv (no shell), returns its stdout; errc::external with the command and its output when it fails.
result<std::string> run_capture(const std::vector<std::string>& argv) {
  RAZOR_ASSIGN_OR_RETURN(run_output r, run_program(argv));
  if (r.exit_code != 0)
    return make_error(errc::external, shell_join(argv) + " failed (exit " + std::to_string(r.exit_code) + "): " + r.text);
  return r.out;
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

// ---- following the jobs ----

std::vector<slurm_job_record> parse_scontrol_jobs(const std::string& text) {
  std::vector<slurm_job_record> v;
  std::istringstream is(text);
  std::string tok;
  while (is >> tok) {  // whitespace-separated KEY=VALUE tokens; a record starts at JobId=
    size_t eq = tok.find('=');
    if (eq == std::string::npos) continue;
    std::string key = tok.substr(0, eq), val = tok.substr(eq + 1);
    if (key == "JobId") {
      v.emplace_back();
      v.back().job_id = val;
      continue;
    }
    if (v.empty()) continue;
    auto& r = v.back();
    if (key == "ArrayJobId") r.array_job_id = val;
    else if (key == "ArrayTaskId") r.array_task_id = val;
    else if (key == "JobState") r.state = val;
    else if (key == "Reason") r.reason = val;
    else if (key == "ExitCode") r.exit_code = val;
    else if (key == "Dependency") r.dependency = val;
  }
  return v;
}

namespace {
constexpr int kMaxArrayTaskId = 4000000;
}  // namespace

result<std::vector<int>> parse_array_task_ids(const std::string& spec_in) {
  auto bad = [&] { return make_error(errc::bad_format, "array task ids '" + spec_in + "'"); };
  std::string spec = spec_in.substr(0, spec_in.find('%'));  // "0-15%4": at most 4 at a time
  std::vector<int> ids;
  std::istringstream is(spec);
  std::string part;
  auto num = [](const std::string& s, int* out) {
    if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos) return false;
    *out = std::stoi(s);
    return true;
  };
  while (std::getline(is, part, ',')) {
    std::string range = part.substr(0, part.find(':'));  // "0-15:2" (step)
    int step = 1;
    if (range.size() != part.size() && (!num(part.substr(range.size() + 1), &step) || step <= 0)) return bad();
    size_t dash = range.find('-');
    int a = 0, b = 0;
    if (dash == std::string::npos) {
      if (!num(range, &a)) return bad();
      b = a;
    } else if (!num(range.substr(0, dash), &a) || !num(range.substr(dash + 1), &b) || b < a) {
      return bad();
    }
    // Slurm's MaxArraySize is at most 4000001: no task id exceeds 4000000. A larger one is not Slurm's (and
    // expanding it would take gigabytes: found by tests/fuzz/fuzz_protocol).
    if (b > kMaxArrayTaskId || ids.size() + size_t((b - a) / step) + 1 > size_t(kMaxArrayTaskId) + 1) return bad();
    for (int i = a; i <= b; i += step) ids.push_back(i);
  }
  if (ids.empty()) return bad();
  return ids;
}

bool slurm_state_is_final(const std::string& st) {
  static const char* const final_states[] = {"COMPLETED", "FAILED",   "CANCELLED", "TIMEOUT",  "NODE_FAIL",
                                             "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED"};
  for (const char* f : final_states)
    if (st == f) return true;
  return false;
}

namespace {

// The last lines (at most 4 KiB) of a log file, indented; a note when there is none.
std::string log_tail(const std::string& path, int max_lines = 12) {
  if (!std::ifstream(path)) return "  (no log file " + path + ")\n";
  std::vector<std::string> lines;
  std::istringstream is(file_tail(path, max_lines, 4096));
  for (std::string l; std::getline(is, l);) lines.push_back(l);
  std::string out = "--- " + path + " (last " + std::to_string(lines.size()) + " lines):\n";
  for (auto& l : lines) out += "  " + l + "\n";
  return out;
}

struct job_view {
  std::string state, reason, exit_code;
};

}  // namespace

result<slurm_outcome> follow_slurm_jobs(const slurm_submission& s, const slurm_plan& p,
                                        const slurm_follow_options& opt, const progress_fn& progress) {
  const int n = int(p.ranges.size());
  const std::string& A = s.array_job_id;
  const std::string& M = s.merge_job_id;
  std::vector<job_view> task(size_t(n), job_view{"PENDING", "", ""});
  job_view merge{"PENDING", "", ""};
  auto log = [&](const std::string& line) {
    if (opt.log) opt.log(line);
  };
  auto is_cancelled = [&] { return opt.cancelled && opt.cancelled(); };
  auto cancel_jobs = [&]() -> status {
    auto r = run_program({opt.scancel, A, M});
    std::string msg = "cancelled: scancel " + A + " " + M;
    if (!r.ok()) msg += " could not run: " + r.error().message();
    else if (r->exit_code != 0) msg += " failed (exit " + std::to_string(r->exit_code) + "): " + r->text;
    return make_error(errc::cancelled, msg);
  };
  auto task_log = [&](int i) { return p.logs_dir + "/task-" + A + "_" + std::to_string(i) + ".out"; };
  auto merge_log = [&] { return p.logs_dir + "/merge-" + M + ".out"; };
  auto describe = [](const job_view& j) {
    std::string d = j.state;
    std::vector<std::string> bits;
    if (!j.exit_code.empty() && j.exit_code != "0:0") bits.push_back("exit " + j.exit_code);
    if (!j.reason.empty() && j.reason != "None") bits.push_back(j.reason);
    for (size_t i = 0; i < bits.size(); ++i) d += (i ? ", " : " (") + bits[i];
    return bits.empty() ? d : d + ")";
  };
  // errc::external naming every task that ended otherwise than COMPLETED and the merge, with their logs' tails.
  auto failure = [&](bool merge_failed) -> status {
    std::string msg = "Slurm array job " + A + ":";
    std::vector<int> bad;
    for (int i = 0; i < n; ++i)
      if (slurm_state_is_final(task[size_t(i)].state) && task[size_t(i)].state != "COMPLETED") bad.push_back(i);
    for (size_t k = 0; k < bad.size(); ++k)
      msg += (k ? ", task " : " task ") + std::to_string(bad[k]) + " " + describe(task[size_t(bad[k])]);
    if (bad.empty()) msg += " no task failed";
    msg += "; merge job " + M + " " + describe(merge) + "\n";
    for (size_t k = 0; k < bad.size() && k < 4; ++k) msg += log_tail(task_log(bad[k]));
    if (bad.size() > 4) {
      msg += "(";
      msg += std::to_string(bad.size() - 4);
      msg += " more failed tasks: see " + p.logs_dir + ")\n";
    }
    if (merge_failed) msg += log_tail(merge_log());
    return make_error(errc::external, msg);
  };

  int failures = 0;
  for (;;) {
    if (is_cancelled()) return cancel_jobs();
    // One round: the array (every task's record: split tasks one each, the unsplit pending rest as a range), then
    // the merge. "Invalid job id" = no longer known (purged MinJobAge after it ended): the last states stand.
    bool round_ok = true;
    bool merge_gone = false;
    for (int which = 0; which < 2; ++which) {
      const std::string& id = which == 0 ? A : M;
      auto r = run_program({opt.scontrol, "-o", "show", "job", id});
      if (!r.ok()) return r.error();  // scontrol cannot run at all
      if (r->exit_code != 0) {
        if (r->text.find("Invalid job id") != std::string::npos) {
          if (which == 1) merge_gone = true;
          continue;
        }
        round_ok = false;
        log("scontrol show job " + id + " failed (exit " + std::to_string(r->exit_code) + "): " + r->text);
        continue;
      }
      for (const slurm_job_record& rec : parse_scontrol_jobs(r->out)) {
        job_view v{rec.state, rec.reason, rec.exit_code};
        if (which == 1) {
          if (rec.job_id != M) continue;
          if (v.state != merge.state) log("merge job " + M + ": " + describe(v));
          merge = v;
          continue;
        }
        if (rec.array_job_id != A || rec.array_task_id.empty()) continue;
        auto ids = parse_array_task_ids(rec.array_task_id);
        if (!ids.ok()) continue;
        for (int i : *ids) {
          if (i < 0 || i >= n) continue;
          if (v.state != task[size_t(i)].state && (ids->size() == 1 || v.state != "PENDING"))
            log("task " + std::to_string(i) + " (" + A + "_" + std::to_string(i) + "): " + describe(v));
          task[size_t(i)] = v;
        }
      }
    }
    if (!round_ok) {
      if (++failures >= opt.max_poll_failures)
        return make_error(errc::external, "scontrol failed " + std::to_string(failures) +
                                              " times in a row; the jobs " + A + " and " + M +
                                              " may still run (see the log above)");
    } else {
      failures = 0;
    }

    int completed = 0, running = 0, pending = 0, ended = 0, failed = 0;
    for (auto& t : task) {
      if (t.state == "COMPLETED") ++completed;
      else if (slurm_state_is_final(t.state)) ++failed;
      else if (t.state == "PENDING") ++pending;
      else ++running;  // RUNNING, COMPLETING, CONFIGURING, SUSPENDED, ...
      if (slurm_state_is_final(t.state)) ++ended;
    }
    std::string what;
    if (completed == n) {
      what = "merge " + M + " " + merge.state + " (" + std::to_string(n) + "/" + std::to_string(n) + " tasks completed)";
    } else {
      what = "array " + A + ": " + std::to_string(completed) + "/" + std::to_string(n) + " completed, " +
             std::to_string(running) + " running, " + std::to_string(pending) + " pending";
      if (failed) what += ", " + std::to_string(failed) + " failed";
    }
    if (progress && !progress(double(ended), double(n), what.c_str())) return cancel_jobs();

    slurm_outcome out;
    if (merge.state == "COMPLETED") {  // afterok: every task completed (even one whose record was purged)
      out.task_states.assign(size_t(n), "COMPLETED");
      out.merge_state = merge.state;
      return out;
    }
    if (ended == n && failed > 0) {  // the merge can never run: make sure Slurm drops it, then report
      if (!slurm_state_is_final(merge.state)) (void)run_program({opt.scancel, M});
      return failure(false);
    }
    if (slurm_state_is_final(merge.state) || merge.reason == "DependencyNeverSatisfied") return failure(true);
    if (merge_gone)
      return make_error(errc::external, "merge job " + M + " is no longer known to scontrol (it ended more than "
                                        "MinJobAge ago or was removed); look at " + merge_log() + " and " + p.opt.out);

    // Sleep poll_s in slices, so that a cancel is seen at once.
    using clock = std::chrono::steady_clock;
    const clock::time_point until =
        clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(std::max(0.0, opt.poll_s)));
    while (clock::now() < until) {
      if (is_cancelled()) return cancel_jobs();
      clock::duration slice = std::min<clock::duration>(until - clock::now(), std::chrono::milliseconds(100));
      std::this_thread::sleep_for(slice);
    }
  }
}

}  // namespace razor::jobs
