// GpuPanel: live GPU / VRAM telemetry. Per GPU: utilisation, memory used / total, temperature, power, the
// processes holding memory, and history charts (Qt Charts line series over the last historySeconds()).
//
// Fed by the worker's unsolicited telemetry (core/jobs/gpu_telemetry.h, WorkerPool::gpuSampleAvailable):
//   {"t":"gpu","time":<unix s>,"devices":[{"index","name","util_gpu","util_mem","mem_used","mem_total" (bytes),
//    "temp_c","power_w","procs":[{"pid","mem_used"}]}]}        a field NVML refused is null
// With no sample yet, a sample with no device, or setUnavailable() (the worker's "GPU telemetry off: ..." log),
// the panel says plainly that there is no GPU and why.
#pragma once
#include <functional>
#include <QJsonObject>
#include <QMap>
#include <QWidget>
#include <deque>

class QChart;
class QChartView;
class QGroupBox;
class QLabel;
class QLineSeries;
class QTableWidget;
class QValueAxis;
class QVBoxLayout;

class GpuPanel : public QWidget {
  Q_OBJECT
 public:
  explicit GpuPanel(QWidget* parent = nullptr);
  ~GpuPanel() override;

  // A panel fed with a few minutes of synthetic samples of two GPUs (screenshots, demos).
  static GpuPanel* createDemo(QWidget* parent = nullptr);
  // A synthetic sample at `time` with `gpus` devices (deterministic in time).
  static QJsonObject fakeSample(double time, int gpus);

  void setHistorySeconds(int seconds);
  int historySeconds() const { return m_historySeconds; }
  // The machine the GPUs are on when it is not this one (a remote pool's server; the samples are the same);
  // "" for local. Card titles then read "GPU 0: NVIDIA H100 80GB HBM3 — on gpu-box".
  void setHostLabel(const QString& host);
  QString hostLabel() const { return m_host; }
  QString gpuTitle(int gpuIndex) const;               // the card's title ("" if unknown)

  // ---- for tests and the main window ----------------------------------------------------------------------
  int gpuCount() const { return int(m_gpus.size()); }
  bool hasGpu() const { return !m_gpus.isEmpty() && !m_noGpu; }
  QString statusText() const;
  QChart* chart(int gpuIndex) const;                  // nullptr if unknown
  int historyPoints(int gpuIndex) const;              // samples kept for that GPU
  QTableWidget* processTable(int gpuIndex) const;
  QString summaryText(int gpuIndex) const;            // "util 42% · 12.3 / 79.6 GiB · 61 °C · 312 W"

 public slots:
  void addSample(const QJsonObject& sample);
  // Names the job a GPU process runs (WorkerPool::runningJobOfPid): the process table then says whose memory it is.
  void setProcessLabeler(std::function<QString(qint64 pid)> labeler) { m_labeler = std::move(labeler); }
  void setUnavailable(const QString& reason);
  // A worker log line not about a job: "GPU telemetry off: <why>" makes the panel say so.
  void handleWorkerLog(const QString& level, const QString& message);
  void clear();

 private:
  struct Point {
    double t, util, mem, temp, power;
  };
  struct Gpu {
    QGroupBox* box = nullptr;
    QLabel* summary = nullptr;
    QChart* chart = nullptr;
    QChartView* view = nullptr;
    QLineSeries* util = nullptr;
    QLineSeries* mem = nullptr;
    QLineSeries* temp = nullptr;
    QLineSeries* power = nullptr;
    QValueAxis* x = nullptr;
    QValueAxis* y = nullptr;
    QValueAxis* yPower = nullptr;
    QTableWidget* procs = nullptr;
    std::deque<Point> history;
  };
  Gpu& gpuFor(int index, const QString& name);
  void showNoGpu(const QString& text);
  void replot(Gpu& g, double now);
  QString titleFor(int index, const QString& name) const;

  QLabel* m_status = nullptr;
  QWidget* m_cards = nullptr;
  QVBoxLayout* m_cardLayout = nullptr;
  QMap<int, Gpu> m_gpus;
  bool m_noGpu = true;
  int m_historySeconds = 300;
  QString m_host;
  std::function<QString(qint64)> m_labeler;
};
