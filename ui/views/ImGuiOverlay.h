// A Dear ImGui (1.86, Debian's prebuilt libimgui.a with the OpenGL 3 backend) heads-up display drawn on top of
// a QOpenGLWidget's frame. There is no platform backend: the widget hands over size, device pixel ratio, mouse
// position and buttons each frame (ImGui 1.86 has no input-event queue, so io.MousePos / io.MouseDown are set
// directly). Every method must run with the widget's GL context current (initializeGL / paintGL).
#pragma once
#include <QElapsedTimer>
#include <QPointF>
#include <QSize>
#include <QString>
#include <functional>

struct ImGuiContext;

// Figures the HUD shows for one GPU (from the worker's `gpu` telemetry; invalid when no sample arrived).
struct GpuFigures {
  bool valid = false;
  QString name;
  double utilPercent = 0;
  double memUsedMiB = 0, memTotalMiB = 0;
  double temperatureC = 0;
  QString note;  // shown when !valid: why there are no figures
  QString jobLine;  // the running job's own GPU memory ("probe (job-3): 812 MiB"), "" when none
};

class ImGuiOverlay {
 public:
  ImGuiOverlay() = default;
  ~ImGuiOverlay();
  ImGuiOverlay(const ImGuiOverlay&) = delete;
  ImGuiOverlay& operator=(const ImGuiOverlay&) = delete;

  bool initialize();  // false when the GL context is below 3.0 or the backend fails
  bool isInitialized() const { return m_ctx != nullptr; }
  // Draws one frame of the HUD; `content` issues ImGui calls between NewFrame and Render.
  void render(const QSize& logicalSize, double devicePixelRatio, const QPointF& mouse, bool mouseDown,
              const std::function<void()>& content);
  void shutdown();

  // The standard HUD: GPU figures, frame time and a line of view information.
  static void drawGpuHud(const GpuFigures& gpu, double frameMs, const QString& viewLine);

 private:
  ImGuiContext* m_ctx = nullptr;
  QElapsedTimer m_clock;
};
