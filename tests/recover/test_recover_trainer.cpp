// Phase C's plumbing (core/recover/trainer.h) with a stand-in trainer (a shell script: the PyTorch trainer itself is
// tested with tools/opd): the argv the trainer gets, its output relayed line by line, each new train_log.jsonl
// entry handed over as it is written, a failure reported with its exit status and last lines, and cancelling.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>
#include <chrono>

#include "common/test_util.h"
#include "recover/trainer.h"
#include "util/atomic_file.h"

using namespace razor;
using namespace razor::recover;

namespace {
// Takes --out and --log like train.py; writes two log entries, prints a line for each, copies $1-given bytes as
// the adapter, and exits with $FAKE_EXIT.
const char* kFakeTrainer = R"(#!/bin/sh
out= log=
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift ;;
    --log) log=$2; shift ;;
    --sleep) sleep 30 ;;
  esac
  shift
done
echo "loading the student"
echo '{"step": 0, "loss": 0.9, "kl": 0.8, "kl_ema": 0.8, "lr": 5e-05, "tokens": 10, "seconds": 0.1}' >> "$log"
echo "step 0 done" >&2
echo '{"step": 1, "loss": 0.7, "kl": 0.6, "kl_ema": 0.75, "lr": 5e-05, "tokens": 20, "seconds": 0.2}' >> "$log"
printf 'adapter' > "$out"
echo '{"done": true, "steps": 2, "adapter": "adapter.safetensors"}' >> "$log"
echo "last line without newline"
exit ${FAKE_EXIT:-0}
)";
}  // namespace

TEST(RecoverTrainer, ArgvCarriesTheSeedsFlags) {
  trainer_options o;
  o.python = "py";
  o.script = "train.py";
  o.student = "S", o.rollouts = "R", o.teacher_topk = "T", o.adapter_out = "A", o.log = "L";
  auto a = trainer_argv(o);
  auto after = [&](const std::string& flag) {
    for (size_t i = 0; i + 1 < a.size(); ++i)
      if (a[i] == flag) return a[i + 1];
    return std::string("<absent>");
  };
  EXPECT_EQ(a[0], "py");
  EXPECT_EQ(a[1], "train.py");
  EXPECT_EQ(after("--teacher-topk"), "T");
  EXPECT_EQ(after("--rank"), "16");
  EXPECT_EQ(after("--scale"), "2");
  EXPECT_EQ(after("--lr"), "5e-05");
  EXPECT_EQ(after("--accum"), "8");
  EXPECT_EQ(after("--reverse"), "1");
  EXPECT_EQ(after("--finished-only"), "1");
  EXPECT_EQ(after("--threads"), "<absent>");  // 0: torch's default
}

TEST(RecoverTrainer, RelaysOutputAndLogEntriesAndReportsFailure) {
  test::scratch_dir d("recover-trainer");
  const std::string script = d / "train.sh";
  ASSERT_TRUE(write_file_atomic(script, kFakeTrainer).ok());
  trainer_options o;
  o.python = "/bin/sh";
  o.script = script;
  o.adapter_out = d / "adapter.safetensors";
  o.log = d / "train_log.jsonl";
  std::vector<std::string> lines;
  std::vector<nlohmann::json> steps;
  trainer_callbacks cb;
  cb.on_output = [&](const std::string& l) { lines.push_back(l); };
  cb.on_step = [&](const nlohmann::json& e) { steps.push_back(e); };
  auto st = run_trainer(trainer_argv(o), o.log, cb);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(lines, (std::vector<std::string>{"loading the student", "step 0 done", "last line without newline"}));
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[1]["kl"], 0.6);
  EXPECT_EQ(steps[2]["done"], true);
  EXPECT_EQ(test::slurp(o.adapter_out), "adapter");

  ::setenv("FAKE_EXIT", "3", 1);
  lines.clear();
  std::remove(o.log.c_str());
  st = run_trainer(trainer_argv(o), o.log, cb);
  ::unsetenv("FAKE_EXIT");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), errc::external);
  EXPECT_NE(st.to_string().find("exited with status 3"), std::string::npos) << st.to_string();
  EXPECT_NE(st.to_string().find("last line without newline"), std::string::npos) << st.to_string();

  auto missing = run_trainer({d / "no-such-python"}, o.log, cb);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.to_string().find("no-such-python"), std::string::npos);
}

TEST(RecoverTrainer, CancelStopsTheTrainer) {
  test::scratch_dir d("recover-trainer");
  const std::string script = d / "train.sh";
  ASSERT_TRUE(write_file_atomic(script, kFakeTrainer).ok());
  trainer_options o;
  o.python = "/bin/sh";
  o.script = script;
  o.adapter_out = d / "adapter.safetensors";
  o.log = d / "train_log.jsonl";
  o.extra_args = {"--sleep"};  // the stand-in sleeps 30 s before writing anything
  std::atomic<int> polls{0};
  trainer_callbacks cb;
  cb.cancelled = [&] { return ++polls > 3; };
  auto st = run_trainer(trainer_argv(o), o.log, cb);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), errc::cancelled);
  EXPECT_FALSE(std::filesystem::exists(o.adapter_out));
}

TEST(RecoverTrainer, ScriptLookupNamesWhereItLooked) {
  ::setenv("RAZOR_OPD_TRAIN", "/nonexistent/train.py", 1);
  auto r = find_trainer_script();
  ::unsetenv("RAZOR_OPD_TRAIN");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("RAZOR_OPD_TRAIN=/nonexistent/train.py"), std::string::npos);
}
