// The Slurm array scripts of core/jobs/slurm.h: array range, layer ranges covering every layer once, quoting of
// hostile paths (the scripts are run by bash with a stub razor that prints its arguments), the dependency of the
// merge job (a stub sbatch records its argv). The real Slurm run is tests/slurm_test.sh.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "jobs/slurm.h"
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
