// The Slurm array scripts of core/jobs/slurm.h: array range, layer ranges covering every layer once, quoting of
// hostile paths (the scripts are run by bash with a stub razor that prints its arguments), the dependency of the
// merge job (a stub sbatch records its argv). The real Slurm run is tests/slurm_test.sh.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "jobs/slurm.h"
#include "util/shell.h"
#include "model/layer_selection.h"

namespace fs = std::filesystem;
using namespace razor;
using namespace razor::jobs;

namespace {

std::string run_sh(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  pclose(p);
  return out;
}

void write_exe(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), 0755);
}

struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/razor-slurm-unit.XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Every awkward byte a path may hold on Linux: spaces, both quotes, $ expansions, backquotes, backslash, glob
// and Slurm's % patterns.
const std::string kHostile = "we ird 'q\" $HOME $(echo no) `echo no` \\x *?[a] %A%a";

slurm_options base_options(const std::string& root, int n_layers, int tasks) {
  slurm_options o;
  o.razor = root + "/bin/razor";
  o.model = root + "/model";
  o.out = root + "/out";
  o.work_dir = root + "/work";
  o.n_layers = n_layers;
  o.tasks = tasks;
  o.job_args = {"--recipe", root + "/recipe.json"};
  o.task_args = {"--cpu"};
  return o;
}

// task id -> "layers" from the case table of array.sh
std::map<int, std::string> case_table(const std::string& script) {
  std::map<int, std::string> m;
  std::regex re(R"(^  (\d+)\) layers='([^']*)' ;;$)");
  std::istringstream is(script);
  std::string line;
  while (std::getline(is, line)) {
    std::smatch sm;
    if (std::regex_match(line, sm, re)) m[std::stoi(sm[1])] = sm[2];
  }
  return m;
}

}  // namespace

TEST(Slurm, ShellQuoteSurvivesBash) {
  for (std::string s : {std::string(""), std::string("plain"), kHostile, std::string("it's"), std::string("'''"),
                        std::string("a\nb"), std::string("-n")}) {
    std::string out = run_sh("printf '%s' " + shell_quote(s));
    EXPECT_EQ(out, s) << shell_quote(s);
  }
}

TEST(Slurm, LayerSelectionParsesAndRefuses) {
  auto s = parse_layer_selection("0:2,rest", 4);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->contains(0) && s->contains(1) && s->contains(-1));
  EXPECT_FALSE(s->contains(2));
  EXPECT_EQ(s->to_string(), "0:2,rest");
  s = parse_layer_selection("rest");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->contains(-1));
  EXPECT_FALSE(s->contains(0));
  EXPECT_TRUE(parse_layer_selection("all")->contains(7));
  for (const char* badsel : {"2:2", "3:1", "0:5", "x", "1:2,3:4", "rest,rest", "-1:2", "1:", ""})
    EXPECT_FALSE(parse_layer_selection(badsel, 4).ok()) << badsel;
}

TEST(Slurm, RangesCoverEveryLayerExactlyOnce) {
  for (int n : {1, 4, 7, 48, 94})
    for (int tasks : {1, 2, 3, 5, 16, 94}) {
      if (tasks > n) continue;
      auto r = split_layers(n, tasks);
      ASSERT_EQ(int(r.size()), tasks);
      EXPECT_TRUE(check_cover(r, n).ok()) << n << " layers, " << tasks << " tasks";
      int lo = n, hi = 0;
      for (auto& s : r) lo = std::min(lo, s.last - s.first), hi = std::max(hi, s.last - s.first);
      EXPECT_LE(hi - lo, 1);  // balanced
    }
  auto r = split_layers(4, 2);
  r[1].first = 3;  // layer 2 in no task
  EXPECT_NE(check_cover(r, 4).message().find("layer 2 is in no task"), std::string::npos);
  r[1].first = 1;  // layer 1 twice
  EXPECT_NE(check_cover(r, 4).message().find("layer 1 is in tasks 0 and 1"), std::string::npos);
  r = split_layers(4, 2);
  r[0].rest = false;
  EXPECT_NE(check_cover(r, 4).message().find("rest"), std::string::npos);
}

TEST(Slurm, ArrayScriptRangesAndResources) {
  temp_dir t;
  auto o = base_options(t.path, 10, 0);
  o.layers_per_task = 3;
  o.partition = "gpu";
  o.gres = "gpu:1";
  o.time = "01:00:00";
  o.mem = "64G";
  o.cpus_per_task = 8;
  o.account = "proj-1";
  auto p = make_slurm_plan(o);
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  const std::string& a = p->array_script;
  EXPECT_NE(a.find("#SBATCH --array=0-3\n"), std::string::npos) << a;
  EXPECT_NE(a.find("#SBATCH --output=" + t.path + "/work/logs/task-%A_%a.out\n"), std::string::npos) << a;
  EXPECT_NE(p->merge_script.find("#SBATCH --output=" + t.path + "/work/logs/merge-%j.out\n"), std::string::npos);
  for (const char* line : {"#SBATCH --partition=gpu\n", "#SBATCH --gres=gpu:1\n", "#SBATCH --time=01:00:00\n",
                           "#SBATCH --mem=64G\n", "#SBATCH --cpus-per-task=8\n", "#SBATCH --account=proj-1\n"})
    EXPECT_NE(a.find(line), std::string::npos) << line;
  EXPECT_EQ(p->merge_script.find("--gres"), std::string::npos);  // the merge needs no GPU
  EXPECT_EQ(p->merge_script.find("--array"), std::string::npos);
  EXPECT_NE(p->merge_script.find("#SBATCH --kill-on-invalid-dep=yes\n"), std::string::npos);
  auto table = case_table(a);
  ASSERT_EQ(table.size(), 4u);
  EXPECT_EQ(table[0], "0:3,rest");
  EXPECT_EQ(table[1], "3:6");
  EXPECT_EQ(table[3], "9:10");
  std::vector<layer_selection> sels;
  for (auto& [i, s] : table) sels.push_back(*parse_layer_selection(s, 10));
  EXPECT_TRUE(check_cover(sels, 10).ok());
  // The merge names every part.
  for (int i = 0; i < 4; ++i)
    EXPECT_NE(p->merge_script.find("--part \"$PARTS/task-" + std::to_string(i) + "\""), std::string::npos);
}

TEST(Slurm, RefusesWhatCannotRunOnComputeNodes) {
  temp_dir t;
  auto o = base_options(t.path, 4, 2);
  o.razor = "build/razor";
  EXPECT_EQ(make_slurm_plan(o).error().code(), errc::invalid_argument);
  o = base_options(t.path, 4, 5);  // more tasks than layers
  EXPECT_FALSE(make_slurm_plan(o).ok());
  o = base_options(t.path, 4, 2);
  o.partition = "gpu --wrap=evil";
  EXPECT_NE(make_slurm_plan(o).error().message().find("--partition"), std::string::npos);
  o = base_options(t.path, 4, 0);
  EXPECT_FALSE(make_slurm_plan(o).ok());  // neither --tasks nor --layers-per-task
}

// Runs array.sh as bash would on a compute node, for every task id, with a stub razor that prints its argv one per
// line: every hostile path must arrive as one intact argument.
TEST(Slurm, HostilePathsArriveIntact) {
  temp_dir t;
  const std::string root = t.path + "/" + kHostile;
  fs::create_directories(root + "/bin");
  auto o = base_options(root, 4, 2);
  auto p = make_slurm_plan(o);
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  ASSERT_TRUE(write_slurm_scripts(*p).ok());
  write_exe(o.razor, "#!/bin/bash\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n");
  EXPECT_EQ(p->array_script.find("#SBATCH --output"), std::string::npos);  // the path cannot stand in a directive
  for (int task = 0; task < 2; ++task) {
    std::string out = run_sh("SLURM_ARRAY_TASK_ID=" + std::to_string(task) + " bash " + shell_quote(p->array_path) +
                             " 2>&1");
    std::string layers = task == 0 ? "0:2,rest" : "2:4";
    std::string want = "razor: task " + std::to_string(task);
    EXPECT_NE(out.find(want), std::string::npos) << out;
    std::string args = out.substr(out.find('\n') + 1);
    EXPECT_EQ(args, "quantize\n" + o.model + "\n--recipe\n" + root + "/recipe.json\n--cpu\n--layers\n" + layers +
                        "\n--out\n" + root + "/work/parts/task-" + std::to_string(task) + "\n");
  }
  std::string out = run_sh("SLURM_ARRAY_TASK_ID=2 bash " + shell_quote(p->array_path) + " 2>&1; echo rc=$?");
  EXPECT_NE(out.find("outside the plan"), std::string::npos) << out;
  EXPECT_NE(out.find("rc=2"), std::string::npos) << out;
  out = run_sh("bash " + shell_quote(p->merge_path) + " 2>&1");
  std::string args = out.substr(out.find('\n') + 1);
  EXPECT_EQ(args, "merge\n" + o.model + "\n--recipe\n" + root + "/recipe.json\n--out\n" + o.out + "\n--part\n" +
                      root + "/work/parts/task-0\n--part\n" + root + "/work/parts/task-1\n");
}

// submit runs sbatch twice: the array, then the merge with --dependency=afterok:<array id>.
TEST(Slurm, SubmitChainsTheMergeAfterTheArray) {
  temp_dir t;
  auto o = base_options(t.path, 4, 2);
  auto p = make_slurm_plan(o);
  ASSERT_TRUE(p.ok());
  const std::string stub = t.path + "/sbatch";
  const std::string log = t.path + "/sbatch.log";
  write_exe(stub, "#!/bin/bash\nprintf '%s|' \"$@\" >> " + shell_quote(log) +
                      "\necho >> " + shell_quote(log) +
                      "\nn=$(wc -l < " + shell_quote(log) + ")\necho \"sbatch: warning: stub\" >&2\necho \"$((41 + n));razortest\"\n");
  auto s = submit_slurm_plan(*p, stub);
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ(s->array_job_id, "42");
  EXPECT_EQ(s->merge_job_id, "43");
  std::ifstream f(log);
  std::string l1, l2;
  std::getline(f, l1);
  std::getline(f, l2);
  EXPECT_EQ(l1, "--parsable|--output=" + t.path + "/work/logs/task-%A_%a.out|" + t.path + "/work/array.sh|");
  EXPECT_EQ(l2, "--parsable|--dependency=afterok:42|--output=" + t.path + "/work/logs/merge-%j.out|" + t.path +
                    "/work/merge.sh|");
  EXPECT_TRUE(fs::exists(p->submit_path));
  // A failing sbatch is an error that carries its message.
  write_exe(stub, "#!/bin/bash\necho 'sbatch: error: invalid partition specified: nope' >&2\nexit 1\n");
  auto bad = submit_slurm_plan(*p, stub);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), errc::external);
  EXPECT_NE(bad.error().message().find("invalid partition"), std::string::npos);
  EXPECT_FALSE(submit_slurm_plan(*p, t.path + "/no-such-sbatch").ok());
  EXPECT_EQ(*parse_sbatch_job_id("1234\n"), "1234");
  EXPECT_EQ(*parse_sbatch_job_id("1234;cluster\n"), "1234");
  EXPECT_FALSE(parse_sbatch_job_id("Submitted batch job").ok());
}

// ---- following the jobs: scontrol parsing on canned output (Slurm 22.05's, trimmed), the follow loop against a stub
// scontrol that replays a sequence of outputs per job id, and a stub scancel that records its argv.

namespace {

// `scontrol show job 42` (multi-line form) while the whole array is pending: one record, the task range.
const char* kArrayPendingMultiLine =
    "JobId=42 ArrayJobId=42 ArrayTaskId=0-2 JobName=razor-quantize\n"
    "   UserId=root(0) GroupId=root(0) MCS_label=N/A\n"
    "   Priority=4294901759 Nice=0 Account=(null) QOS=(null)\n"
    "   JobState=PENDING Reason=None Dependency=(null)\n"
    "   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0\n"
    "   Command=/shared fs/it's/array.sh\n"
    "   StdOut=/shared fs/it's/logs/task-42_4294967294.out\n"
    "   Power=\n\n";

std::string one_line(const std::string& id, const std::string& task, const std::string& state,
                     const std::string& reason = "None", const std::string& exit = "0:0") {
  return "JobId=" + id + " ArrayJobId=42 ArrayTaskId=" + task +
         " JobName=razor-quantize UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901759 Nice=0 "
         "Account=(null) QOS=(null) JobState=" + state + " Reason=" + reason + " Dependency=(null) Requeue=1 "
         "Restarts=0 BatchFlag=1 Reboot=0 ExitCode=" + exit + " RunTime=00:00:01 Command=/shared fs/it's/array.sh "
         "WorkDir=/shared fs StdOut=/shared fs/it's/logs/task-42_" + task + ".out Power= \n";
}

std::string merge_record(const std::string& state, const std::string& reason, const std::string& dep) {
  return "JobId=43 JobName=razor-quantize-merge UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901758 "
         "Nice=0 Account=(null) QOS=(null) JobState=" + state + " Reason=" + reason + " Dependency=" + dep +
         " Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 Power= \n";
}

// A stub scontrol: `scontrol -o show job ID` prints DIR/ID.<k> on its k-th call for that id (the last file once
// they run out); a file "INVALID" / "DOWN" answers as Slurm does for a purged job / an unreachable controller.
struct stub_slurm {
  temp_dir t;
  std::string scontrol = t.path + "/scontrol", scancel = t.path + "/scancel", scancel_log = t.path + "/scancel.log";
  stub_slurm() {
    write_exe(scontrol,
              "#!/bin/bash\n"
              "[ \"$1 $2 $3\" = '-o show job' ] || { echo \"bad argv: $*\" >&2; exit 9; }\n"
              "d=" + shell_quote(t.path) + "; id=$4; c=\"$d/$id.count\"\n"
              "k=$(( $(cat \"$c\" 2>/dev/null || echo 0) + 1 )); echo $k > \"$c\"\n"
              "while [ ! -f \"$d/$id.$k\" ] && [ $k -gt 1 ]; do k=$((k - 1)); done\n"
              "f=\"$d/$id.$k\"\n"
              "if [ \"$(cat \"$f\")\" = INVALID ]; then echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1; fi\n"
              "if [ \"$(cat \"$f\")\" = DOWN ]; then echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1; fi\n"
              "cat \"$f\"\n");
    write_exe(scancel, "#!/bin/bash\nprintf '%s|' \"$@\" >> " + shell_quote(scancel_log) + "\necho >> " +
                           shell_quote(scancel_log) + "\n");
  }
  void round(const std::string& id, int k, const std::string& text) {
    std::ofstream(t.path + "/" + id + "." + std::to_string(k)) << text;
  }
  std::string scancels() {
    std::ifstream f(scancel_log);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  slurm_follow_options options() {
    slurm_follow_options o;
    o.scontrol = scontrol;
    o.scancel = scancel;
    o.poll_s = 0;
    return o;
  }
};

struct progress_rec {
  double done, total;
  std::string what;
};

}  // namespace

TEST(Slurm, ParsesScontrolRecordsInBothForms) {
  auto r = parse_scontrol_jobs(kArrayPendingMultiLine);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].job_id, "42");
  EXPECT_EQ(r[0].array_job_id, "42");
  EXPECT_EQ(r[0].array_task_id, "0-2");
  EXPECT_EQ(r[0].state, "PENDING");
  EXPECT_EQ(r[0].exit_code, "0:0");
  // One-line form, several records: the array's own id ends up on its last task (Slurm 22.05 does so).
  r = parse_scontrol_jobs(one_line("42", "2", "PENDING", "Resources") + one_line("45", "1", "FAILED", "NonZeroExitCode", "3:0") +
                          one_line("44", "0", "COMPLETED"));
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].array_task_id, "2");
  EXPECT_EQ(r[0].reason, "Resources");
  EXPECT_EQ(r[1].job_id, "45");
  EXPECT_EQ(r[1].state, "FAILED");
  EXPECT_EQ(r[1].exit_code, "3:0");
  EXPECT_EQ(r[2].state, "COMPLETED");
  r = parse_scontrol_jobs(merge_record("PENDING", "Dependency", "afterok:42_*(unfulfilled)"));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].array_job_id, "");
  EXPECT_EQ(r[0].reason, "Dependency");
  EXPECT_EQ(r[0].dependency, "afterok:42_*(unfulfilled)");
  EXPECT_TRUE(parse_scontrol_jobs("slurm_load_jobs error: Invalid job id specified\n").empty());

  EXPECT_EQ(*parse_array_task_ids("3"), (std::vector<int>{3}));
  EXPECT_EQ(*parse_array_task_ids("0-3,5,7-9%2"), (std::vector<int>{0, 1, 2, 3, 5, 7, 8, 9}));
  EXPECT_EQ(*parse_array_task_ids("0-6:3"), (std::vector<int>{0, 3, 6}));
  for (const char* bad : {"", "x", "3-1", "1-", ",", "4294967294-", "0-460036003", "0-4000000,0-4000000"})
    EXPECT_FALSE(parse_array_task_ids(bad).ok()) << bad;  // the last two: beyond Slurm's limit (found by fuzzing)
  EXPECT_EQ(parse_array_task_ids("3999999-4000000")->size(), 2u);
  EXPECT_TRUE(slurm_state_is_final("COMPLETED") && slurm_state_is_final("OUT_OF_MEMORY"));
  EXPECT_FALSE(slurm_state_is_final("COMPLETING") || slurm_state_is_final("PENDING"));
}

TEST(Slurm, FollowReportsTasksUntilTheMergeCompletes) {
  temp_dir w;
  auto p = make_slurm_plan(base_options(w.path, 4, 3));
  ASSERT_TRUE(p.ok());
  stub_slurm s;
  s.round("42", 1, kArrayPendingMultiLine);
  s.round("42", 2, one_line("42", "1-2", "PENDING", "Resources") + one_line("44", "0", "RUNNING"));
  s.round("42", 3, one_line("42", "2", "PENDING", "Resources") + one_line("45", "1", "RUNNING") +
                       one_line("44", "0", "COMPLETED"));
  s.round("42", 4, one_line("42", "2", "COMPLETED") + one_line("45", "1", "COMPLETED") + one_line("44", "0", "COMPLETED"));
  s.round("42", 6, "INVALID");  // purged: the last states stand
  const std::string waiting = merge_record("PENDING", "Dependency", "afterok:42_*(unfulfilled)");
  for (int k = 1; k <= 4; ++k) s.round("43", k, waiting);
  s.round("43", 5, merge_record("RUNNING", "None", "(null)"));
  s.round("43", 7, merge_record("COMPLETED", "None", "(null)"));
  std::vector<progress_rec> prog;
  std::vector<std::string> logs;
  auto o = s.options();
  o.log = [&](const std::string& l) { logs.push_back(l); };
  auto r = follow_slurm_jobs({"42", "43"}, *p, o, [&](double d, double t, const char* what) {
    prog.push_back({d, t, what});
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->task_states, (std::vector<std::string>{"COMPLETED", "COMPLETED", "COMPLETED"}));
  EXPECT_EQ(r->merge_state, "COMPLETED");
  ASSERT_EQ(prog.size(), 7u);
  EXPECT_EQ(prog[0].what, "array 42: 0/3 completed, 0 running, 3 pending");
  EXPECT_EQ(prog[1].what, "array 42: 0/3 completed, 1 running, 2 pending");
  EXPECT_EQ(prog[2].what, "array 42: 1/3 completed, 1 running, 1 pending");
  EXPECT_EQ(prog[2].done, 1.0);
  EXPECT_EQ(prog[2].total, 3.0);
  EXPECT_EQ(prog[3].what, "merge 43 PENDING (3/3 tasks completed)");
  EXPECT_EQ(prog[4].what, "merge 43 RUNNING (3/3 tasks completed)");
  EXPECT_EQ(prog[6].what, "merge 43 COMPLETED (3/3 tasks completed)");
  EXPECT_EQ(prog[6].done, 3.0);
  auto has = [&](const std::string& l) { return std::find(logs.begin(), logs.end(), l) != logs.end(); };
  EXPECT_TRUE(has("task 0 (42_0): RUNNING"));
  EXPECT_TRUE(has("task 2 (42_2): COMPLETED"));
  EXPECT_TRUE(has("merge job 43: COMPLETED"));
  EXPECT_EQ(s.scancels(), "");
}

TEST(Slurm, FollowNamesFailedTasksWithTheTailOfTheirLogs) {
  temp_dir w;
  auto p = make_slurm_plan(base_options(w.path, 4, 2));
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(write_slurm_scripts(*p).ok());
  {
    std::ofstream log(p->logs_dir + "/task-42_1.out");
    for (int i = 1; i <= 30; ++i) log << "noise line " << i << "\n";
    log << "razor: error: model.layers.2.mlp.experts: out of memory\n";
  }
  stub_slurm s;
  // Every task has ended, one failed, and the merge is still waiting: it is scancelled, the error names task 1.
  s.round("42", 1, one_line("42", "1", "FAILED", "NonZeroExitCode", "3:0") + one_line("44", "0", "COMPLETED"));
  s.round("43", 1, merge_record("PENDING", "Dependency", "afterok:42_*(unfulfilled)"));
  auto r = follow_slurm_jobs({"42", "43"}, *p, s.options(), nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), errc::external);
  const std::string m = r.error().message();
  EXPECT_NE(m.find("task 1 FAILED (exit 3:0, NonZeroExitCode)"), std::string::npos) << m;
  EXPECT_NE(m.find(p->logs_dir + "/task-42_1.out"), std::string::npos) << m;
  EXPECT_NE(m.find("out of memory"), std::string::npos) << m;
  EXPECT_EQ(m.find("noise line 5\n"), std::string::npos) << m;  // only the tail
  EXPECT_EQ(m.find("task 0"), std::string::npos) << m;
  EXPECT_EQ(s.scancels(), "43|\n");

  // The merge cancelled by Slurm (--kill-on-invalid-dep) while a task is still listed as running: reported at once.
  stub_slurm s2;
  s2.round("42", 1, one_line("42", "1", "CANCELLED", "None", "0:15") + one_line("44", "0", "RUNNING"));
  s2.round("43", 1, merge_record("CANCELLED", "DependencyNeverSatisfied", "afterok:42_*(failed)"));
  r = follow_slurm_jobs({"42", "43"}, *p, s2.options(), nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("task 1 CANCELLED (exit 0:15)"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("merge job 43 CANCELLED (DependencyNeverSatisfied)"), std::string::npos);
  EXPECT_NE(r.error().message().find("no log file " + p->logs_dir + "/merge-43.out"), std::string::npos);
  EXPECT_EQ(s2.scancels(), "");
}

TEST(Slurm, FollowCancelRunsScancelAndUnreachableControllerGivesUp) {
  temp_dir w;
  auto p = make_slurm_plan(base_options(w.path, 4, 2));
  ASSERT_TRUE(p.ok());
  stub_slurm s;
  s.round("42", 1, one_line("42", "0-1", "PENDING", "Priority"));
  s.round("43", 1, merge_record("PENDING", "Dependency", "afterok:42_*(unfulfilled)"));
  int calls = 0;
  auto r = follow_slurm_jobs({"42", "43"}, *p, s.options(), [&](double, double, const char*) { return ++calls < 3; });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), errc::cancelled);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(s.scancels(), "42|43|\n");
  // The job's own cancel flag, seen while it sleeps between polls.
  stub_slurm s2;
  s2.round("42", 1, one_line("42", "0-1", "PENDING", "Priority"));
  s2.round("43", 1, merge_record("PENDING", "Dependency", "afterok:42_*(unfulfilled)"));
  auto o = s2.options();
  o.poll_s = 3600;
  std::atomic<int> polls{0};
  o.cancelled = [&] { return polls.load() >= 1; };
  r = follow_slurm_jobs({"42", "43"}, *p, o, [&](double, double, const char*) { return ++polls, true; });
  EXPECT_EQ(r.error().code(), errc::cancelled);
  EXPECT_EQ(s2.scancels(), "42|43|\n");
  // An unreachable controller is retried, then given up.
  stub_slurm s3;
  s3.round("42", 1, "DOWN");
  s3.round("43", 1, "DOWN");
  o = s3.options();
  o.max_poll_failures = 3;
  r = follow_slurm_jobs({"42", "43"}, *p, o, nullptr);
  EXPECT_EQ(r.error().code(), errc::external);
  EXPECT_NE(r.error().message().find("3 times in a row"), std::string::npos) << r.error().message();
}
