// SlurmDialog (Remote → Submit to Slurm…): the `slurm` params it builds for quantize and pack, when Submit is
// possible, and that Submit hands exactly those params to the pool as a `slurm` job (the pool is not started: no
// worker, no Slurm here; the real method against a real Slurm is tests/slurm_test.sh); the Remote menu entry.
#include <gtest/gtest.h>

#include <QAction>
#include <QComboBox>
#include <QJsonArray>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMenuBar>
#include <QPushButton>
#include <QSettings>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTemporaryDir>

#include "MainWindow.h"
#include "SlurmDialog.h"
#include "WorkerPool.h"

namespace {

class SlurmDialogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(m_tmp.isValid());
    QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope, m_tmp.filePath(QStringLiteral("settings")));
    QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, m_tmp.filePath(QStringLiteral("settings")));
  }
  // The form's fields in the dialog's order: model, out, work folder, recipe, type, partition, gres, time.
  static QLineEdit* edit(SlurmDialog& d, int i) {
    static const char* const order[] = {"slurmModel",  "slurmOut",       "slurmWorkDir", "slurmRecipe",
                                        "slurmType",   "slurmPartition", "slurmGres",    "slurmTime"};
    return d.findChild<QLineEdit*>(QLatin1String(order[i]));
  }
  static QPushButton* submitButton(SlurmDialog& d) { return d.findChild<QPushButton*>(QStringLiteral("slurmSubmit")); }
  QTemporaryDir m_tmp;
};

TEST_F(SlurmDialogTest, BuildsTheParamsAndSubmitsThemAsASlurmJob) {
  WorkerPool pool;
  SlurmDialog d(&pool, QStringLiteral("login1"));
  QPushButton* submit = submitButton(d);
  ASSERT_NE(submit, nullptr);
  EXPECT_FALSE(submit->isEnabled());  // nothing filled in
  d.setModel(QStringLiteral("/shared/models/q122"));
  edit(d, 1)->setText(QStringLiteral("/shared/out/q122-fq"));
  EXPECT_FALSE(submit->isEnabled());  // no work folder
  edit(d, 2)->setText(QStringLiteral(" /shared/jobs/q122 "));
  EXPECT_TRUE(submit->isEnabled());
  d.findChild<QSpinBox*>(QStringLiteral("slurmTasks"))->setValue(16);
  edit(d, 3)->setText(QStringLiteral("seed-default"));
  edit(d, 4)->setText(QStringLiteral("q4_K"));  // a type: pack only, not passed to quantize
  edit(d, 5)->setText(QStringLiteral("gpu"));
  edit(d, 6)->setText(QStringLiteral("gpu:1"));
  edit(d, 7)->setText(QStringLiteral("04:00:00"));
  const QJsonObject want{{"kind", "quantize"},
                         {"model", "/shared/models/q122"},
                         {"out", "/shared/out/q122-fq"},
                         {"work_dir", "/shared/jobs/q122"},
                         {"tasks", 16},
                         {"job_args", QJsonArray{"--recipe", "seed-default"}},
                         {"partition", "gpu"},
                         {"gres", "gpu:1"},
                         {"time", "04:00:00"}};
  EXPECT_EQ(d.params(), want);

  QSignalSpy submitted(&pool, &WorkerPool::jobSubmitted);
  const QString id = d.submit();
  EXPECT_FALSE(id.isEmpty());
  EXPECT_EQ(d.jobId(), id);
  ASSERT_EQ(submitted.count(), 1);
  EXPECT_EQ(submitted[0][0].toString(), id);
  EXPECT_EQ(submitted[0][1].toString(), QStringLiteral("slurm"));
  EXPECT_EQ(submitted[0][2].toJsonObject(), want);
  EXPECT_TRUE(d.findChild<QLabel*>(QStringLiteral("slurmStatus"))->text().contains(id));

  // A second dialog remembers the resources and the task count.
  SlurmDialog again(&pool, QStringLiteral("login1"));
  EXPECT_EQ(again.params().value("tasks").toInt(), 16);
  EXPECT_EQ(again.params().value("partition").toString(), QStringLiteral("gpu"));
  EXPECT_EQ(again.params().value("time").toString(), QStringLiteral("04:00:00"));
}

TEST_F(SlurmDialogTest, PackNeedsATypeOrARecipe) {
  WorkerPool pool;
  SlurmDialog d(&pool, QStringLiteral("this machine"));
  d.findChild<QComboBox*>(QStringLiteral("slurmKind"))->setCurrentIndex(1);  // Pack (GGUF)
  d.setModel(QStringLiteral("/m"));
  edit(d, 1)->setText(QStringLiteral("/o/q.gguf"));
  edit(d, 2)->setText(QStringLiteral("/w"));
  QPushButton* submit = submitButton(d);
  EXPECT_FALSE(submit->isEnabled());
  EXPECT_TRUE(d.submit().isEmpty());  // refused while incomplete
  edit(d, 4)->setText(QStringLiteral("q4_K"));
  EXPECT_TRUE(submit->isEnabled());
  const QJsonObject p = d.params();
  EXPECT_EQ(p.value("kind").toString(), QStringLiteral("pack"));
  EXPECT_EQ(p.value("job_args").toArray(), (QJsonArray{"--type", "q4_K"}));
  EXPECT_FALSE(p.contains("partition"));  // empty resources are left out
  edit(d, 3)->setText(QStringLiteral("/r/instinct-q3.txt"));
  EXPECT_EQ(d.params().value("job_args").toArray(), (QJsonArray{"--recipe", "/r/instinct-q3.txt", "--type", "q4_K"}));
}

TEST_F(SlurmDialogTest, RemoteMenuHasTheEntry) {
  MainWindow w;
  QMenu* remote = nullptr;
  for (QAction* a : w.menuBar()->actions())
    if (a->menu() && a->text().remove('&') == QStringLiteral("Remote")) remote = a->menu();
  ASSERT_NE(remote, nullptr);
  QStringList texts;
  for (QAction* a : remote->actions()) texts << a->text().remove('&');
  EXPECT_TRUE(texts.contains(QStringLiteral("Submit to Slurm..."))) << texts.join(", ").toStdString();
}

}  // namespace
