// The live GPU panel: says plainly when there is no GPU or no NVML, and plots (fake) telemetry samples in the
// worker's {"t":"gpu"} format, keeping only the last historySeconds().
#include <gtest/gtest.h>

#include <QTemporaryDir>
#include <QChart>
#include <QJsonArray>
#include <QLineSeries>
#include <QTableWidget>
#include <memory>

#include "GpuPanel.h"

TEST(GpuPanel, SaysNoGpuPlainly) {
  GpuPanel p;
  p.show();
  EXPECT_FALSE(p.hasGpu());
  EXPECT_TRUE(p.statusText().contains(QLatin1String("No GPU")));
  // The CPU worker's telemetry on a machine without NVML: its log line, then samples with no device.
  p.handleWorkerLog(QStringLiteral("info"),
                    QStringLiteral("GPU telemetry off: libnvidia-ml.so.1: cannot open shared object file: No such file or directory"));
  EXPECT_TRUE(p.statusText().startsWith(QLatin1String("No GPU telemetry: libnvidia-ml.so.1: cannot open")));
  p.addSample(QJsonObject{{"t", "gpu"}, {"time", 1.0}, {"devices", QJsonArray()}});
  EXPECT_FALSE(p.hasGpu());
  EXPECT_TRUE(p.statusText().contains(QLatin1String("No GPU")));
  EXPECT_EQ(p.gpuCount(), 0);
  // Other messages are ignored.
  p.addSample(QJsonObject{{"t", "progress"}});
  EXPECT_EQ(p.gpuCount(), 0);
}

TEST(GpuPanel, PlotsFakeSamplesAndKeepsAWindow) {
  GpuPanel p;
  p.setHistorySeconds(60);
  p.show();
  for (int s = 0; s < 100; ++s) p.addSample(GpuPanel::fakeSample(1000.0 + s, 2));
  ASSERT_TRUE(p.hasGpu());
  ASSERT_EQ(p.gpuCount(), 2);
  EXPECT_EQ(p.historyPoints(0), 61);  // t-60 .. t inclusive
  QChart* c = p.chart(1);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->animationOptions(), QChart::NoAnimation);
  ASSERT_EQ(c->series().size(), 4);  // utilisation, memory, temperature, power
  auto* util = qobject_cast<QLineSeries*>(c->series()[0]);
  ASSERT_NE(util, nullptr);
  EXPECT_EQ(util->count(), 61);
  EXPECT_NEAR(util->at(util->count() - 1).x(), 0.0, 1e-9);   // newest point at "0 s ago"
  EXPECT_NEAR(util->at(0).x(), -60.0, 1e-9);
  const QJsonObject last = GpuPanel::fakeSample(1099.0, 2)["devices"].toArray()[1].toObject();
  EXPECT_NEAR(util->at(util->count() - 1).y(), last["util_gpu"].toDouble(), 1e-9);
  // Per-process memory.
  QTableWidget* procs = p.processTable(0);
  ASSERT_NE(procs, nullptr);
  EXPECT_EQ(procs->rowCount(), 2);
  EXPECT_EQ(procs->item(0, 0)->text(), QStringLiteral("41200"));
  EXPECT_TRUE(procs->item(0, 1)->text().endsWith(QLatin1String("MiB")));
  EXPECT_TRUE(p.summaryText(0).contains(QLatin1String("GiB")));
  EXPECT_TRUE(p.summaryText(0).contains(QStringLiteral("°C")));
}

TEST(GpuPanel, NullFieldsShowAsNotAvailable) {
  GpuPanel p;
  QJsonObject dev{{"index", 0}, {"name", "Tesla T4"}, {"util_gpu", QJsonValue()}, {"util_mem", QJsonValue()},
                  {"mem_used", 1073741824.0}, {"mem_total", 16.0 * 1073741824.0}, {"temp_c", QJsonValue()},
                  {"power_w", QJsonValue()}, {"procs", QJsonArray()}};
  p.addSample(QJsonObject{{"t", "gpu"}, {"time", 5.0}, {"devices", QJsonArray{dev}}});
  ASSERT_EQ(p.gpuCount(), 1);
  EXPECT_TRUE(p.summaryText(0).contains(QLatin1String("n/a")));
  EXPECT_TRUE(p.summaryText(0).contains(QLatin1String("1.0 / 16.0 GiB")));
  auto* util = qobject_cast<QLineSeries*>(p.chart(0)->series()[0]);
  auto* mem = qobject_cast<QLineSeries*>(p.chart(0)->series()[1]);
  EXPECT_EQ(util->count(), 0);  // nothing plotted for a refused field
  EXPECT_EQ(mem->count(), 1);
}

TEST(GpuPanel, DemoFactory) {
  std::unique_ptr<GpuPanel> p(GpuPanel::createDemo());
  EXPECT_EQ(p->gpuCount(), 2);
  EXPECT_GT(p->historyPoints(0), 200);
}

// docs/screenshots/: written when RAZOR_SCREENSHOT_DIR is set (otherwise into a scratch folder).
TEST(GpuPanel, Screenshot) {
  QTemporaryDir scratch;  // the pictures are rendered and saved either way; kept only under RAZOR_SCREENSHOT_DIR
  const QString dir = qEnvironmentVariable("RAZOR_SCREENSHOT_DIR", scratch.path());
  std::unique_ptr<GpuPanel> p(GpuPanel::createDemo());
  p->resize(1000, 760);
  p->show();
  EXPECT_TRUE(p->grab().save(dir + QStringLiteral("/gpu-panel.png")));
  GpuPanel none;
  none.resize(700, 160);
  none.handleWorkerLog(QStringLiteral("info"), QStringLiteral("GPU telemetry off: libnvidia-ml.so.1: cannot open shared object file: No such file or directory"));
  none.show();
  EXPECT_TRUE(none.grab().save(dir + QStringLiteral("/gpu-panel-no-gpu.png")));
}
