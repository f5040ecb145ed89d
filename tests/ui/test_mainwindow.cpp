// The main window: opening a model through `razor inspect --json` without blocking, statistics, and the
// workspace save / reopen round trip.
#include <gtest/gtest.h>

#include <QJsonArray>
#include <QProcess>
#include <QSignalSpy>
#include <QTabWidget>
#include <QTableView>
#include <QTemporaryDir>
#include <QUndoStack>

#include "AllocationEditor.h"
#include "HeatmapCanvas.h"
#include "HeatmapView.h"
#include "MainWindow.h"
#include "ModelView.h"
#include "TensorTableModel.h"
#include "Workspace.h"
#include "worker_test_util.h"

namespace {
const QString kModel = QStringLiteral(RAZOR_MODELS_DIR "/tiny-qwen3-5-moe");

bool waitReady(MainWindow& w) {
  return razor_test::waitUntil([&] { return !w.isBusy(); }, razor_test::kJobTimeoutMs);
}
}  // namespace

TEST(Workspace, JsonRoundTrip) {
  QTemporaryDir tmp;
  Workspace w;
  w.modelPath = tmp.filePath(QStringLiteral("models/m"));  // below the workspace: stored relative
  w.recipes = {QStringLiteral("/abs/recipe.json")};
  w.activeRecipe = QJsonObject{{"format", "razor.recipe/1"}, {"name", "x"}};
  w.statistics = {tmp.filePath(QStringLiteral("probe.h5"))};
  w.jobsFolder = tmp.filePath(QStringLiteral("jobs"));
  w.resultFiles = {tmp.filePath(QStringLiteral("eval.json"))};
  w.openViews = {QStringLiteral("model"), QStringLiteral("salience")};
  w.currentView = QStringLiteral("salience");
  w.viewState = QJsonObject{{"model", QJsonObject{{"filter", "experts"}}}};
  w.windowGeometry = QByteArray("\x01\x02geometry", 10);
  const QString path = tmp.filePath(QStringLiteral("w.razorproj"));
  QString err;
  ASSERT_TRUE(w.save(path, &err)) << err.toStdString();
  Workspace back;
  ASSERT_TRUE(Workspace::load(path, &back, &err)) << err.toStdString();
  EXPECT_TRUE(back == w);
  // Relative inside the folder, so the folder can move.
  const QJsonObject stored = w.toJson(QDir(tmp.path()));
  EXPECT_EQ(stored.value("model").toString(), QStringLiteral("models/m"));
  EXPECT_EQ(stored.value("recipes").toArray().at(0).toString(), QStringLiteral("/abs/recipe.json"));
  Workspace bad;
  EXPECT_FALSE(Workspace::load(tmp.filePath(QStringLiteral("missing.razorproj")), &bad, &err));
}

TEST(MainWindow, OpensModelWithoutBlocking) {
  MainWindow w;
  w.setRazorProgram(razor_test::razorCli());
  QSignalSpy ready(&w, &MainWindow::modelAvailable);
  w.openModel(kModel);
  EXPECT_TRUE(w.isBusy());  // returned at once; the inspect runs in the background
  EXPECT_EQ(w.modelView()->tensorModel()->rowCount(), 0);
  ASSERT_TRUE(waitReady(w));
  ASSERT_EQ(ready.count(), 1);
  EXPECT_EQ(w.inventory().layers, 4);
  EXPECT_EQ(w.modelView()->tensorModel()->rowCount(), w.inventory().tensors.size());
  EXPECT_TRUE(w.allocationEditor()->hasModel());
  EXPECT_GE(w.viewIds().size(), 3);
  EXPECT_TRUE(w.showView(QStringLiteral("allocation")));

  // A failing model is a message, not a crash.
  QSignalSpy failed(&w, &MainWindow::modelFailed);
  w.openModel(QStringLiteral("/nonexistent/model"));
  ASSERT_TRUE(waitReady(w));
  EXPECT_EQ(failed.count(), 1);
}

TEST(MainWindow, WorkspaceSaveAndReopen) {
  QTemporaryDir tmp;
  // A small probe file for the statistics part.
  const QString text = tmp.filePath(QStringLiteral("calib.txt"));
  {
    QFile f(text);
    ASSERT_TRUE(f.open(QIODevice::WriteOnly));
    for (int i = 0; i < 100; ++i) f.write("Kernels copy pages while the scheduler wakes the worker threads. ");
  }
  const QString probe = tmp.filePath(QStringLiteral("probe.h5"));
  QProcess p;
  p.start(razor_test::razorCli(), {QStringLiteral("probe"), kModel, QStringLiteral("--text"), text, QStringLiteral("--tokens"),
                                   QStringLiteral("128"), QStringLiteral("--out"), probe});
  ASSERT_TRUE(p.waitForFinished(razor_test::kJobTimeoutMs));
  ASSERT_EQ(p.exitCode(), 0);

  const QString ws = tmp.filePath(QStringLiteral("session.razorproj"));
  Workspace saved;
  double packed = 0;
  {
    MainWindow w;
    w.setRazorProgram(razor_test::razorCli());
    w.openModel(kModel);
    w.openStatistics(probe);
    ASSERT_TRUE(waitReady(w));
    ASSERT_EQ(w.heatmapView()->sources().size(), 1);
    w.allocationEditor()->paintCells({QPoint(3, 1), QPoint(4, 1)}, 2);
    w.allocationEditor()->setLayerBits(0, 4);
    w.allocationEditor()->setTarget(0.02, true);
    w.modelView()->setFilter(QStringLiteral("experts\\.1\\d\\."), true, QStringLiteral("routed_expert"));
    w.heatmapView()->setLogScale(true);
    w.heatmapView()->setCurrent(probe, QStringLiteral("gate mass"));
    w.heatmapView()->canvas()->setViewRect(QRectF(2, 1, 8, 2));
    w.showView(QStringLiteral("salience"));
    packed = w.allocationEditor()->footprint().result().packed_bytes();
    QString err;
    ASSERT_TRUE(w.saveWorkspace(ws, &err)) << err.toStdString();
    saved = w.currentWorkspace();
  }
  MainWindow w2;
  w2.setRazorProgram(razor_test::razorCli());
  QSignalSpy ready(&w2, &MainWindow::workspaceReady);
  QString err;
  ASSERT_TRUE(w2.openWorkspace(ws, &err)) << err.toStdString();
  ASSERT_TRUE(razor_test::waitUntil([&] { return ready.count() > 0 && !w2.isBusy(); }));
  const Workspace back = w2.currentWorkspace();
  EXPECT_EQ(back.modelPath, saved.modelPath);
  EXPECT_EQ(back.statistics, saved.statistics);
  EXPECT_EQ(back.activeRecipe, saved.activeRecipe);
  EXPECT_EQ(back.currentView, QStringLiteral("salience"));
  EXPECT_EQ(back.viewState.value("model"), saved.viewState.value("model"));
  EXPECT_EQ(back.viewState.value("salience"), saved.viewState.value("salience"));
  EXPECT_EQ(back.viewState.value("allocation"), saved.viewState.value("allocation"));
  EXPECT_DOUBLE_EQ(w2.allocationEditor()->footprint().result().packed_bytes(), packed);
  EXPECT_EQ(w2.allocationEditor()->footprint().expertBits(1, 3), 2.0);
  EXPECT_GT(w2.modelView()->proxy()->rowCount(), 0);
  EXPECT_LT(w2.modelView()->proxy()->rowCount(), w2.modelView()->tensorModel()->rowCount());
  EXPECT_EQ(w2.heatmapView()->canvas()->grid().name, QStringLiteral("gate mass"));
  EXPECT_EQ(w2.heatmapView()->canvas()->scale(), HeatmapCanvas::Scale::Log);
}
