// The GGUF export wizard driven page by page: source -> recipe (presets from recipes/gguf) -> imatrix (the
// warning for i-quants) -> review (the real `razor pack --dry-run`) -> run (the real worker writes a GGUF of
// the bundled tiny model) -> validate -> done.
#include <gtest/gtest.h>

#include <QAbstractButton>
#include <QComboBox>
#include <QFile>
#include <QJsonObject>
#include <QLabel>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTableWidget>
#include <QTemporaryDir>
#include <memory>

#include "ExportWizard.h"

namespace {
const QString kTiny = QStringLiteral(RAZOR_MODELS_DIR "/tiny-qwen3-5-moe");
const QString kRecipes = QStringLiteral(RAZOR_SOURCE_DIR_T "/recipes/gguf");
// The tiny model packs in well under a second; the limit only guards against a hung worker on a loaded machine.
constexpr int kJobTimeoutMs = 120000;

bool nextEnabled(QWizard& w) {
  QAbstractButton* b = w.button(w.currentPage()->isCommitPage() ? QWizard::CommitButton : QWizard::NextButton);
  return b && b->isEnabled() && b->isVisible();
}
}  // namespace

TEST(ExportWizard, SourceAndRecipeAndImatrixPages) {
  ExportWizard w;
  w.setRazorProgram(QStringLiteral(RAZOR_CLI_EXE));
  w.setRecipesDir(kRecipes);
  w.show();
  ASSERT_EQ(w.currentId(), ExportWizard::SourcePage);
  EXPECT_FALSE(nextEnabled(w));
  w.setModelDir(QStringLiteral("/nonexistent"));
  EXPECT_FALSE(nextEnabled(w));
  w.setModelDir(kTiny);
  EXPECT_TRUE(nextEnabled(w));
  w.next();
  ASSERT_EQ(w.currentId(), ExportWizard::RecipePage);
  const QStringList presets = w.presetNames();
  EXPECT_TRUE(presets.contains(QStringLiteral("instinct-iq3.txt")));
  EXPECT_TRUE(presets.contains(QStringLiteral("instinct-q3.txt")));

  // IQ3_XXS needs an imatrix: the next page warns and will not go on without one.
  w.selectPreset(QStringLiteral("instinct-iq3.txt"));
  EXPECT_TRUE(w.recipePath().endsWith(QLatin1String("instinct-iq3.txt")));
  EXPECT_EQ(w.defaultType(), QStringLiteral("iq3_xxs"));  // from the recipe's "#@ default=" line
  EXPECT_EQ(w.typesNeedingImatrix(), QStringList{QStringLiteral("iq3_xxs")});
  auto* rules = w.findChild<QTableWidget*>(QStringLiteral("rulesTable"));
  ASSERT_NE(rules, nullptr);
  EXPECT_EQ(rules->rowCount(), 16);
  w.next();
  ASSERT_EQ(w.currentId(), ExportWizard::ImatrixPage);
  auto* warning = w.findChild<QLabel*>(QStringLiteral("imatrixWarning"));
  ASSERT_NE(warning, nullptr);
  EXPECT_TRUE(warning->isVisible());
  EXPECT_TRUE(warning->text().contains(QLatin1String("iq3_xxs")));
  EXPECT_FALSE(nextEnabled(w));
  QTemporaryDir dir;
  ASSERT_TRUE(dir.isValid());
  QFile im(dir.filePath(QStringLiteral("tiny.imatrix.gguf")));
  ASSERT_TRUE(im.open(QIODevice::WriteOnly));
  im.close();
  w.setImatrixPath(im.fileName());
  EXPECT_TRUE(nextEnabled(w));
  EXPECT_TRUE(w.imatrixWarning().isEmpty());
  EXPECT_TRUE(w.packArguments(false).contains(QStringLiteral("--imatrix")));

  // Back: a uniform q4_K needs none.
  w.setImatrixPath(QString());
  w.back();
  w.selectPreset(QStringLiteral("uniform"));
  EXPECT_TRUE(w.recipePath().isEmpty());
  EXPECT_FALSE(nextEnabled(w));  // no type chosen yet
  w.setDefaultType(QStringLiteral("Q4_K"));
  EXPECT_EQ(w.defaultType(), QStringLiteral("q4_K"));
  EXPECT_TRUE(nextEnabled(w));
  EXPECT_TRUE(w.typesNeedingImatrix().isEmpty());
  w.next();
  EXPECT_TRUE(nextEnabled(w));
  const QStringList args = w.packArguments(true);
  EXPECT_EQ(args.mid(0, 2), (QStringList{QStringLiteral("pack"), kTiny}));
  EXPECT_TRUE(args.contains(QStringLiteral("--dry-run")));
  EXPECT_EQ(args[args.indexOf(QStringLiteral("--type")) + 1], QStringLiteral("q4_K"));
}

TEST(ExportWizard, ReviewRunValidateDoneOnTheTinyModel) {
  ExportWizard w;
  w.setRazorProgram(QStringLiteral(RAZOR_CLI_EXE));
  w.setRecipesDir(kRecipes);
  w.show();
  QTemporaryDir dir;
  ASSERT_TRUE(dir.isValid());
  const QString out = dir.filePath(QStringLiteral("tiny-q3.gguf"));
  w.setModelDir(kTiny);
  w.next();
  w.selectPreset(QStringLiteral("instinct-q3.txt"));
  EXPECT_TRUE(w.typesNeedingImatrix().isEmpty());
  w.next();
  ASSERT_EQ(w.currentId(), ExportWizard::ImatrixPage);
  EXPECT_FALSE(w.findChild<QLabel*>(QStringLiteral("imatrixWarning"))->isVisible());
  w.setOutputPath(out);
  QSignalSpy reviewed(&w, &ExportWizard::reviewFinished);
  w.next();
  ASSERT_EQ(w.currentId(), ExportWizard::ReviewPage);
  EXPECT_FALSE(nextEnabled(w));  // until the dry run answers
  ASSERT_TRUE(reviewed.wait(kJobTimeoutMs));
  ASSERT_TRUE(reviewed[0][0].toBool()) << w.findChild<QLabel*>(QStringLiteral("reviewStatus"))->text().toStdString();
  EXPECT_TRUE(w.reviewOk());
  EXPECT_GT(w.reviewBytes(), 0.0);
  EXPECT_GT(w.reviewBpw(), 3.0);
  EXPECT_LT(w.reviewBpw(), 8.0);
  auto* table = w.findChild<QTableWidget*>(QStringLiteral("reviewTable"));
  ASSERT_NE(table, nullptr);
  EXPECT_GE(table->rowCount(), 3);  // q3_K, q8_0, iq4_nl, f16, f32 ...
  EXPECT_FALSE(w.findChild<QLabel*>(QStringLiteral("reviewByRole"))->text().isEmpty());
  EXPECT_FALSE(QFile::exists(out));  // a dry run writes nothing
  EXPECT_TRUE(nextEnabled(w));

  w.next();
  ASSERT_EQ(w.currentId(), ExportWizard::RunPage);
  EXPECT_FALSE(nextEnabled(w));
  QSignalSpy ran(&w, &ExportWizard::runFinished);
  auto* start = w.currentPage()->findChild<QAbstractButton*>();
  for (QAbstractButton* b : w.currentPage()->findChildren<QAbstractButton*>())
    if (b->text() == QStringLiteral("Start")) start = b;
  ASSERT_NE(start, nullptr);
  start->click();
  ASSERT_TRUE(ran.wait(kJobTimeoutMs));
  ASSERT_TRUE(ran[0][0].toBool()) << w.report().toStdString();
  QFile gguf(out);
  ASSERT_TRUE(gguf.open(QIODevice::ReadOnly));
  EXPECT_EQ(gguf.read(4), QByteArray("GGUF"));
  EXPECT_TRUE(nextEnabled(w));

  QSignalSpy validated(&w, &ExportWizard::validationFinished);
  w.next();
  ASSERT_EQ(w.currentId(), ExportWizard::ValidatePage);
  ASSERT_TRUE(validated.wait(kJobTimeoutMs));
  EXPECT_TRUE(w.validationDone());
  EXPECT_FALSE(w.findChild<QLabel*>(QStringLiteral("validateStatus"))->text().isEmpty());
  w.next();
  ASSERT_EQ(w.currentId(), ExportWizard::DonePage);
  const QString report = w.report();
  EXPECT_TRUE(report.contains(out));
  EXPECT_TRUE(report.contains(QLatin1String("instinct-q3.txt")));
  EXPECT_TRUE(report.contains(QLatin1String("validation:")));
}

// "Fit a file size": the whole-file allocation runs as a worker job (allocate with mode gguf), its recipe becomes the
// recipe, and the dry run plans exactly the file size the allocation reported.
TEST(ExportWizard, FitAFileSizeAllocatesTheRecipe) {
  ExportWizard w;
  w.setRazorProgram(QStringLiteral(RAZOR_CLI_EXE));
  w.setRecipesDir(kRecipes);
  w.show();
  w.setModelDir(kTiny);
  w.next();
  w.selectPreset(QStringLiteral("fit"));
  EXPECT_FALSE(nextEnabled(w));  // nothing allocated yet
  EXPECT_TRUE(w.findChild<QWidget*>(QStringLiteral("allocBox"))->isVisible());
  w.setAllocationTarget(QStringLiteral("5bits"));
  for (const QString& role : ExportWizard::allocationRoles()) w.setRoleTypes(role, QStringLiteral("q4_K,q6_K"));
  w.setRoleTypes(QStringLiteral("routed_expert"), QStringLiteral("q3_K, q5_K"));
  w.findChild<QComboBox*>(QStringLiteral("allocSensitivityCombo"))->setCurrentIndex(1);  // fit
  w.findChild<QSpinBox*>(QStringLiteral("allocWindowsSpin"))->setValue(1);
  const QJsonObject params = w.allocationParams();
  EXPECT_EQ(params.value(QLatin1String("role_types")).toObject().value(QLatin1String("routed_expert")).toString(),
            QStringLiteral("q3_K,q5_K"));
  QSignalSpy allocated(&w, &ExportWizard::allocationFinished);
  w.findChild<QAbstractButton*>(QStringLiteral("allocateButton"))->click();
  ASSERT_TRUE(allocated.wait(kJobTimeoutMs * 3));
  ASSERT_TRUE(allocated[0][0].toBool()) << w.findChild<QLabel*>(QStringLiteral("allocResult"))->text().toStdString();
  const QJsonObject rep = w.allocationReport();
  const double bytes = rep.value(QLatin1String("size")).toObject().value(QLatin1String("file_bytes")).toDouble();
  EXPECT_GT(bytes, 0.0);
  EXPECT_LE(rep.value(QLatin1String("size")).toObject().value(QLatin1String("bpw")).toDouble(), 5.0);
  EXPECT_TRUE(QFile::exists(w.recipePath()));
  const QString result = w.findChild<QLabel*>(QStringLiteral("allocResult"))->text();
  EXPECT_TRUE(result.contains(QLatin1String("predicted KL"))) << result.toStdString();
  EXPECT_TRUE(result.contains(QLatin1String("measured KL"))) << result.toStdString();
  EXPECT_GT(w.findChild<QTableWidget*>(QStringLiteral("rulesTable"))->rowCount(), 20);  // one line per tensor
  EXPECT_TRUE(nextEnabled(w));
  w.next();
  ASSERT_EQ(w.currentId(), ExportWizard::ImatrixPage);
  QTemporaryDir dir;
  w.setOutputPath(dir.filePath(QStringLiteral("fit.gguf")));
  QSignalSpy reviewed(&w, &ExportWizard::reviewFinished);
  w.next();
  ASSERT_TRUE(reviewed.wait(kJobTimeoutMs));
  ASSERT_TRUE(w.reviewOk()) << w.reviewText().toStdString();
  EXPECT_EQ(w.reviewFileBytes(), bytes);  // the allocation's size is the planned file's, to the byte
  const QString shots = qEnvironmentVariable("RAZOR_SCREENSHOT_DIR");
  if (!shots.isEmpty()) {
    w.back();
    w.back();
    EXPECT_TRUE(w.grab().save(shots + QStringLiteral("/export-wizard-fit.png")));
  }
}

TEST(ExportWizard, MissingRazorIsReportedOnTheReviewPage) {
  ExportWizard w;
  w.setRazorProgram(QStringLiteral("/nonexistent/razor"));
  w.setRecipesDir(kRecipes);
  w.setModelDir(kTiny);
  w.show();
  w.next();
  w.selectPreset(QStringLiteral("instinct-q3.txt"));
  w.next();
  QTemporaryDir dir;
  w.setOutputPath(dir.filePath(QStringLiteral("x.gguf")));
  QSignalSpy reviewed(&w, &ExportWizard::reviewFinished);
  w.next();
  ASSERT_TRUE(reviewed.wait(10000));
  EXPECT_FALSE(reviewed[0][0].toBool());
  EXPECT_TRUE(w.findChild<QLabel*>(QStringLiteral("reviewStatus"))->text().contains(QLatin1String("could not be started")));
  EXPECT_FALSE(w.reviewOk());
}

// docs/screenshots/ (recipe page and the review of the tiny model): written when RAZOR_SCREENSHOT_DIR is set,
// otherwise into a scratch folder.
TEST(ExportWizard, Screenshot) {
  QTemporaryDir scratch;  // the pictures are rendered and saved either way; kept only under RAZOR_SCREENSHOT_DIR
  const QString dir = qEnvironmentVariable("RAZOR_SCREENSHOT_DIR", scratch.path());
  std::unique_ptr<ExportWizard> w(ExportWizard::createDemo());
  w->setRazorProgram(QStringLiteral(RAZOR_CLI_EXE));
  w->show();
  w->next();
  w->selectPreset(QStringLiteral("instinct-iq3.txt"));
  EXPECT_TRUE(w->grab().save(dir + QStringLiteral("/export-wizard-recipe.png")));
  w->next();
  EXPECT_TRUE(w->grab().save(dir + QStringLiteral("/export-wizard-imatrix.png")));
  w->back();
  w->selectPreset(QStringLiteral("instinct-q3.txt"));
  w->next();
  QTemporaryDir tmp;
  w->setOutputPath(tmp.filePath(QStringLiteral("tiny-q3.gguf")));
  QSignalSpy reviewed(w.get(), &ExportWizard::reviewFinished);
  w->next();
  ASSERT_TRUE(reviewed.wait(kJobTimeoutMs));
  EXPECT_TRUE(w->grab().save(dir + QStringLiteral("/export-wizard-review.png")));
}
