// The workbench's Recover job (issue 21): the form built from the worker's hello (ParamForm), the job's events
// read by RecoverRun (phases A-E, the `train` events of phase C, phase E's result as two runs), the jobs dock's
// phase column, and File → Recover… end to end: the real `razor worker` runs `recover` on the tiny Qwen3 MoE
// fixture (teacher) and its int3 student with tiny settings (every phase, the PyTorch trainer included); the
// phases end done, the loss / KL chart has a point per step, the baseline and the recovered model land in the Runs
// view. docs/screenshots/recover-job.png is that dialog at the end (scripts/screenshots.sh sets
// RAZOR_SCREENSHOT_DIR; rendered either way).
#include <gtest/gtest.h>

#include <QCheckBox>
#include <QComboBox>
#include <QJsonArray>
#include <QJsonDocument>
#include <QLabel>
#include <QLineEdit>
#include <QLineSeries>
#include <QMenu>
#include <QMenuBar>
#include <QProcess>
#include <QRegularExpression>
#include <QProgressBar>
#include <QSettings>
#include <QSignalSpy>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QToolButton>

#include "JobsDock.h"
#include "JobsModel.h"
#include "MainWindow.h"
#include "ParamForm.h"
#include "RecoverDialog.h"
#include "RecoverRun.h"
#include "RunsView.h"
#include "WorkerPool.h"
#include "worker_test_util.h"

using namespace razor_test;

namespace {

QJsonObject parse(const char* text) { return QJsonDocument::fromJson(QByteArray(text)).object(); }

// A `recover` schema as the hello lists it, with a param the GUI has never heard of (new_knob).
QJsonObject helloWithRecover() {
  return parse(R"({"schema":[{"name":"recover","help":"h","params":[
    {"name":"teacher","type":"path","help":"the teacher","required":true,"positional":true},
    {"name":"student","type":"path","help":"the student"},
    {"name":"phases","type":"string","default":"A,B,C,D,E","help":"phases"},
    {"name":"prompts","type":"int","default":16,"help":"prompts"},
    {"name":"lr","type":"number","default":5e-05,"help":"learning rate"},
    {"name":"kl","type":"string","default":"reverse","choices":["reverse","forward"],"help":"direction"},
    {"name":"all_rollouts","type":"bool","default":false,"help":"unfinished too"},
    {"name":"benchmarks","type":"string_list","values":"benchmarks","help":"lists"},
    {"name":"new_knob","type":"int","default":3,"help":"a param added to the registry later"},
    {"name":"opaque","type":"object","help":"set in code"}]}],
    "enums":{"benchmarks":["gpqa","mmlu_pro"]}})");
}

void clearRememberedValues() {
  QSettings s;
  s.remove(QStringLiteral("recover"));
}

}  // namespace

TEST(ParamForm, BuildsFromTheSchemaAndSendsOnlyWhatDiffersFromTheDefaults) {
  ParamForm f;
  ASSERT_TRUE(f.build(ParamForm::methodSchema(helloWithRecover(), "recover"),
                      helloWithRecover().value("enums").toObject(), {"student", "teacher"}));
  // Primary fields first in the caller's order; object params have no row; a new registry param has one.
  EXPECT_EQ(f.fieldNames().mid(0, 2), (QStringList{"student", "teacher"}));
  EXPECT_FALSE(f.hasField("opaque"));
  ASSERT_TRUE(f.hasField("new_knob"));
  EXPECT_TRUE(qobject_cast<QComboBox*>(f.editor("kl")));
  EXPECT_TRUE(qobject_cast<QCheckBox*>(f.editor("all_rollouts")));
  EXPECT_EQ(f.value("new_knob").toInt(), 3) << "the default is shown";
  // Nothing changed: only the required teacher is missing, and nothing is sent.
  EXPECT_EQ(f.problems(), QStringList{"teacher: required"});
  EXPECT_TRUE(f.params().isEmpty());
  ASSERT_TRUE(f.setValue("teacher", "/m/bf16"));
  ASSERT_TRUE(f.setValue("new_knob", 7));
  ASSERT_TRUE(f.setValue("kl", "forward"));
  ASSERT_TRUE(f.setValue("all_rollouts", true));
  ASSERT_TRUE(f.setValue("lr", 5e-5));  // the default, typed again: not sent
  ASSERT_TRUE(f.setValue("benchmarks", QJsonArray{"gpqa", "mmlu_pro"}));
  EXPECT_FALSE(f.setValue("kl", "sideways")) << "not among the choices";
  EXPECT_FALSE(f.setValue("nope", 1));
  const QJsonObject p = f.params();
  EXPECT_EQ(p, parse(R"({"teacher":"/m/bf16","new_knob":7,"kl":"forward","all_rollouts":true,
                         "benchmarks":["gpqa","mmlu_pro"]})"));
  // Text that is not of the field's type is a problem named after the field.
  qobject_cast<QLineEdit*>(f.editor("prompts"))->setText("many");
  EXPECT_EQ(f.problems(), QStringList{"prompts: an integer"});
  EXPECT_FALSE(f.params().contains("prompts"));
}

TEST(RecoverRun, ReadsPhasesTrainEventsAndTheResult) {
  RecoverRun run(nullptr);
  run.follow("job-1", "A,B,C,D,E");
  QSignalSpy finished(&run, &RecoverRun::runFinished);
  EXPECT_EQ(run.phaseState('A'), RecoverRun::PhaseState::Waiting);
  run.handleProgress(2, 8, "A: step 2: 4 unfinished");
  EXPECT_EQ(run.currentPhase(), QChar('A'));
  EXPECT_DOUBLE_EQ(run.phaseDone('A'), 0.25);
  EXPECT_EQ(run.phaseWhat('A'), "step 2: 4 unfinished");
  run.handleProgress(1, 4, "B: teacher top-k");
  EXPECT_EQ(run.phaseState('A'), RecoverRun::PhaseState::Done);
  EXPECT_EQ(run.phaseState('B'), RecoverRun::PhaseState::Running);
  // Phase C: the trainer's log lines; the closing line is no point; other log lines are ignored.
  run.handleLog("info", "C: trainer started");
  run.handleLog("info", R"(train {"step":1,"loss":0.52,"kl":0.51,"kl_ema":0.51,"lr":5e-05,"tokens":40,"seconds":1.5})");
  run.handleLog("info", R"(train {"step":2,"loss":0.47,"kl":0.46,"kl_ema":0.5,"lr":5e-05,"tokens":80,"seconds":2.9})");
  run.handleLog("info", R"(train {"done":true,"steps":2,"adapter":"adapter.safetensors"})");
  run.handleProgress(2, 0, "C: step 2 loss 0.47 kl 0.46 kl_ema 0.50");
  EXPECT_EQ(run.phaseState('B'), RecoverRun::PhaseState::Done);
  EXPECT_EQ(run.phaseState('C'), RecoverRun::PhaseState::Running);
  EXPECT_LT(run.phaseDone('C'), 0) << "phase C reports steps without a total";
  ASSERT_EQ(run.trainPoints().size(), 2);
  EXPECT_EQ(run.trainPoints()[1].step, 2);
  EXPECT_DOUBLE_EQ(run.trainPoints()[1].kl, 0.46);
  EXPECT_EQ(run.trainPoints()[1].tokens, 80);
  run.handleProgress(3, 10, "E: recovered: windows");
  EXPECT_EQ(run.phaseState('D'), RecoverRun::PhaseState::Done);
  const QJsonObject result = parse(R"({"out":"/w/rec","D":{"recipe":"uniform-int3","totals":{"packed_gb":0.0125,
      "seed_effective_bits":3.25}},"E":{"text":"/r/kernel-docs-eval.txt","windows":2,"ctx":256,"teacher_ppl":22.7,
      "kl_reduction":0.25,"baseline":{"model":"/w/int3","kl_mean":0.4,"kl_p99":2.0,"ppl":27.0,"same_top1":0.8},
      "recovered":{"model":"/w/rec","kl_mean":0.3,"kl_p99":1.5,"ppl":25.0,"same_top1":0.85}}})");
  run.handleFinished(result);
  ASSERT_EQ(finished.count(), 1);
  for (QChar ph : QStringLiteral("ABCDE")) EXPECT_EQ(run.phaseState(ph), RecoverRun::PhaseState::Done) << ph.toLatin1();
  const auto runs = RecoverRun::runsOfResult(result);
  ASSERT_EQ(runs.size(), 2);
  EXPECT_EQ(runs[0].value("name").toString(), "int3 (before recovery)");
  EXPECT_EQ(runs[1].value("name").toString(), "rec (recovered)");
  EXPECT_DOUBLE_EQ(runs[0].value("kl_mean").toDouble(), 0.4);
  EXPECT_DOUBLE_EQ(runs[1].value("ppl").toDouble(), 25.0);
  EXPECT_DOUBLE_EQ(runs[1].value("ref_ppl").toDouble(), 22.7) << "the teacher's perplexity";
  EXPECT_DOUBLE_EQ(runs[0].value("file_bytes").toDouble(), runs[1].value("file_bytes").toDouble()) << "same footprint";
  EXPECT_DOUBLE_EQ(runs[1].value("file_bytes").toDouble(), 12.5e6);
  EXPECT_EQ(runs[1].value("recipe_name").toString(), "uniform-int3");
  EXPECT_TRUE(RecoverRun::runsOfResult(parse(R"({"D":{}})")).isEmpty()) << "no phase E, no runs";

  // Only some phases: the others are not run; a failure marks the running phase.
  RecoverRun part(nullptr);
  part.follow("job-2", "d,e");
  EXPECT_EQ(part.phaseState('A'), RecoverRun::PhaseState::Skipped);
  EXPECT_EQ(part.phaseState('D'), RecoverRun::PhaseState::Waiting);
  QSignalSpy failed(&part, &RecoverRun::runFailed);
  part.handleProgress(1, 3, "D: merging");
  part.handleFailed("not_found", "phase D needs an adapter");
  EXPECT_EQ(part.phaseState('D'), RecoverRun::PhaseState::Failed);
  ASSERT_EQ(failed.count(), 1);
  EXPECT_TRUE(failed[0][0].toString().contains("phase D needs an adapter"));
  EXPECT_EQ(RecoverRun::normalizePhases("C, a"), "AC");
  EXPECT_EQ(RecoverRun::normalizePhases(""), "ABCDE");
}

TEST(RecoverDialog, FeedsTheChartAndThePhaseTableFromTheJobsEvents) {
  clearRememberedValues();
  RecoverDialog d(nullptr, "this machine");
  ASSERT_TRUE(d.setHello(helloWithRecover()));
  EXPECT_TRUE(d.form()->hasField("new_knob")) << "a param the registry gains appears without a GUI change";
  // Not a main knob: under "More settings", shown when expanded.
  d.show();
  EXPECT_FALSE(d.form()->editor("new_knob")->isVisible());
  d.form()->findChild<QToolButton*>("paramFormMore")->click();
  EXPECT_TRUE(d.form()->editor("new_knob")->isVisible());
  EXPECT_TRUE(d.form()->editor("teacher")->isVisible());
  d.run()->follow("job-1", "A,B,C,D,E");
  d.run()->handleProgress(4, 8, "A: step 4: 2 unfinished");
  for (int s = 1; s <= 5; ++s)
    d.run()->handleLog("info", QStringLiteral(R"(train {"step":%1,"loss":%2,"kl":%3})").arg(s).arg(0.6 - 0.05 * s).arg(0.55 - 0.05 * s));
  EXPECT_EQ(d.lossSeries()->count(), 5);
  EXPECT_EQ(d.klSeries()->count(), 5);
  EXPECT_DOUBLE_EQ(d.klSeries()->at(4).y(), 0.30);
  auto* bar = qobject_cast<QProgressBar*>(d.phaseTable()->cellWidget(0, 1));
  ASSERT_TRUE(bar);
  EXPECT_EQ(bar->format(), "done") << "A ended when C started";
  EXPECT_TRUE(qobject_cast<QProgressBar*>(d.phaseTable()->cellWidget(2, 1))->format().startsWith("running"));
  EXPECT_EQ(d.phaseTable()->item(2, 2)->text(), "step 5: loss 0.3500, KL 0.3000 (average 0.0000)");
}

TEST(JobsModel, ShowsWhichPhaseOfARecoverJobRuns) {
  JobsModel m;
  m.addJob("j1", "recover", QJsonObject{{"phases", "A,C,E"}, {"out", "/w/rec"}});
  m.markStarted("j1", 0);
  m.updateProgress("j1", 3, 0, "C: step 3 loss 0.4 kl 0.39 kl_ema 0.41");
  const QString text = m.data(m.index(0, JobsModel::ProgressColumn)).toString();
  EXPECT_TRUE(text.startsWith("phase C (2 of 3)")) << text.toStdString();
  EXPECT_TRUE(text.contains("step 3 loss 0.4")) << text.toStdString();
  m.updateProgress("j1", 1, 2, "E: baseline: windows");
  EXPECT_TRUE(m.data(m.index(0, JobsModel::ProgressColumn)).toString().contains("phase E (3 of 3)"));
  // Other jobs as before.
  m.addJob("j2", "quantize", {});
  m.markStarted("j2", 0);
  m.updateProgress("j2", 1, 4, "A: not a phase");
  EXPECT_EQ(m.data(m.index(1, JobsModel::ProgressColumn)).toString(), "25.0%  A: not a phase");
}

// File → Recover… with the real worker on the fixture: every phase, the real PyTorch trainer.
TEST(RecoverDialog, RunsEveryPhaseOnTheFixtureAndTheRunsLandInTheRunsView) {
  clearRememberedValues();
  QTemporaryDir dir;
  ASSERT_TRUE(dir.isValid());
  const QString teacher = RAZOR_MODELS_DIR "/tiny-qwen3-moe";
  const QString student = dir.filePath("int3");
  QProcess q;
  q.start(razorCli(), {"quantize", teacher, "--recipe", "uniform-int3", "--out", student, "--cpu"});
  ASSERT_TRUE(q.waitForFinished(kJobTimeoutMs));
  ASSERT_EQ(q.exitCode(), 0) << q.readAllStandardError().toStdString();

  MainWindow w;
  w.setRazorProgram(razorCli());
  QStringList fileMenu;  // File → Recover... beside Evaluate...
  for (QAction* a : w.menuBar()->actions())
    if (a->menu() && a->text().remove('&') == QStringLiteral("File"))
      for (QAction* b : a->menu()->actions()) fileMenu << b->text().remove('&');
  EXPECT_TRUE(fileMenu.contains("Recover...")) << fileMenu.join(", ").toStdString();
  auto* d = qobject_cast<RecoverDialog*>(w.openRecoverDialog());
  ASSERT_TRUE(d);
  ASSERT_TRUE(waitUntil([&] { return d->form()->hasField("teacher"); }, kStartTimeoutMs)) << "the hello builds the form";
  d->presetValue("teacher", teacher);
  // Tiny settings: 4 prompts x 2 samples of 8 new tokens, every rollout trained on, a step per rollout.
  const QJsonObject settings{{"student", student},   {"recipe", "uniform-int3"}, {"out", dir.filePath("recovered")},
                             {"prompts", 4},         {"k", 2},                   {"prompt_len", 8},
                             {"max_new", 8},         {"epochs", 2},              {"accum", 1},
                             {"lr", 0.003},          {"all_rollouts", true},     {"eval_windows", 2},
                             {"eval_ctx", 64},       {"device", "cpu"},          {"cpu", true}};
  for (auto it = settings.begin(); it != settings.end(); ++it)
    ASSERT_TRUE(d->form()->setValue(it.key(), it.value())) << it.key().toStdString();
  const QJsonObject p = d->params();
  EXPECT_EQ(p.value("teacher").toString(), teacher);
  EXPECT_FALSE(p.contains("phases")) << "the default: the worker's";
  QSignalSpy runs(d, &RecoverDialog::runsAvailable);
  d->start();
  ASSERT_FALSE(d->run()->jobId().isEmpty());
  // The jobs dock lists the job and, while it runs, which phase.
  auto* dock = w.findChild<JobsDock*>("jobsDock");
  ASSERT_TRUE(dock);
  QStringList phaseTexts;
  QObject::connect(dock->model(), &JobsModel::dataChanged, [&] {
    const int row = dock->model()->rowOf(d->run()->jobId());
    if (row < 0) return;
    const QString t = dock->model()->data(dock->model()->index(row, JobsModel::ProgressColumn)).toString();
    if (t.startsWith("phase ") && (phaseTexts.isEmpty() || phaseTexts.back().left(7) != t.left(7))) phaseTexts << t;
  });
  ASSERT_TRUE(waitUntil([&] { return !d->run()->isRunning(); }, 600000));
  ASSERT_EQ(runs.count(), 1) << d->findChild<QLabel*>("recoverStage")->text().toStdString();
  for (QChar ph : QStringLiteral("ABCDE")) EXPECT_EQ(d->run()->phaseState(ph), RecoverRun::PhaseState::Done) << ph.toLatin1();
  EXPECT_GE(d->run()->trainPoints().size(), 2);
  EXPECT_EQ(d->lossSeries()->count(), d->run()->trainPoints().size()) << "a point per training step";
  EXPECT_EQ(d->klSeries()->count(), d->run()->trainPoints().size());
  EXPECT_EQ(d->klEmaSeries()->count(), d->run()->trainPoints().size());
  // Progress is throttled (ten a second, the last wins): fast phases may never show; each one shown names itself.
  ASSERT_FALSE(phaseTexts.isEmpty());
  static const QRegularExpression kPhaseText(QStringLiteral("^phase ([A-E]) \\(([1-5]) of 5\\)"));
  for (const QString& t : phaseTexts) {
    const auto m = kPhaseText.match(t);
    ASSERT_TRUE(m.hasMatch()) << t.toStdString();
    EXPECT_EQ(QString("ABCDE").indexOf(m.captured(1)) + 1, m.captured(2).toInt()) << t.toStdString();
  }
  // Before and after, side by side in the Runs view, with the teacher's perplexity.
  ASSERT_EQ(w.runsView()->runCount(), 2);
  const QJsonObject before = w.runsView()->model()->run(0), after = w.runsView()->model()->run(1);
  EXPECT_TRUE(before.value("name").toString().contains("before recovery"));
  EXPECT_TRUE(after.value("name").toString().contains("recovered"));
  EXPECT_GT(before.value("kl_mean").toDouble(), 0);
  EXPECT_GT(after.value("kl_mean").toDouble(), 0);
  EXPECT_GT(after.value("ref_ppl").toDouble(), 0);
  EXPECT_EQ(before.value("file_bytes").toDouble(), after.value("file_bytes").toDouble());
  EXPECT_EQ(w.tabs()->currentWidget(), w.runsView());
  EXPECT_TRUE(d->summary()->text().contains("teacher")) << d->summary()->text().toStdString();

  QTemporaryDir scratch;
  d->resize(1180, 760);
  EXPECT_TRUE(d->grab().save(qEnvironmentVariable("RAZOR_SCREENSHOT_DIR", scratch.path()) + "/recover-job.png"));
  w.workerPool()->shutdown();
}
