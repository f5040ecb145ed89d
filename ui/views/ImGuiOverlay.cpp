#include "ImGuiOverlay.h"

#include <QOpenGLContext>
#include <algorithm>

#include "backends/imgui_impl_opengl3.h"
#include "imgui.h"

ImGuiOverlay::~ImGuiOverlay() { shutdown(); }

bool ImGuiOverlay::initialize() {
  if (m_ctx) return true;
  auto* gl = QOpenGLContext::currentContext();
  if (!gl) return false;
  const auto fmt = gl->format();
  if (gl->isOpenGLES() || fmt.majorVersion() < 3) return false;
  IMGUI_CHECKVERSION();
  ImGuiContext* previous = ImGui::GetCurrentContext();
  m_ctx = ImGui::CreateContext();
  ImGui::SetCurrentContext(m_ctx);
  ImGuiIO& io = ImGui::GetIO();
  io.IniFilename = nullptr;  // no imgui.ini next to the user's files
  io.LogFilename = nullptr;
  ImGui::StyleColorsDark();
  ImGui::GetStyle().WindowRounding = 4.0f;
  ImGui::GetStyle().Alpha = 0.92f;
  const bool glsl330 = fmt.majorVersion() > 3 || (fmt.majorVersion() == 3 && fmt.minorVersion() >= 3);
  const bool ok = ImGui_ImplOpenGL3_Init(glsl330 ? "#version 330 core" : "#version 130");
  if (!ok) {
    ImGui::DestroyContext(m_ctx);
    m_ctx = nullptr;
  }
  if (previous) ImGui::SetCurrentContext(previous);
  m_clock.start();
  return ok;
}

void ImGuiOverlay::render(const QSize& logicalSize, double dpr, const QPointF& mouse, bool mouseDown,
                          const std::function<void()>& content) {
  if (!m_ctx) return;
  ImGuiContext* previous = ImGui::GetCurrentContext();
  ImGui::SetCurrentContext(m_ctx);
  ImGuiIO& io = ImGui::GetIO();
  io.DisplaySize = ImVec2(float(logicalSize.width()), float(logicalSize.height()));
  io.DisplayFramebufferScale = ImVec2(float(dpr), float(dpr));
  const qint64 ns = m_clock.nsecsElapsed();
  m_clock.restart();
  io.DeltaTime = std::max(1e-4f, float(double(ns) * 1e-9));
  io.MousePos = ImVec2(float(mouse.x()), float(mouse.y()));
  io.MouseDown[0] = mouseDown;
  ImGui_ImplOpenGL3_NewFrame();
  ImGui::NewFrame();
  if (content) content();
  ImGui::Render();
  ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
  if (previous && previous != m_ctx) ImGui::SetCurrentContext(previous);
}


void ImGuiOverlay::shutdown() {
  if (!m_ctx) return;
  // The backend deletes GL objects: only meaningful with the context current; the widget calls shutdown()
  // from its destructor after makeCurrent().
  ImGuiContext* previous = ImGui::GetCurrentContext();
  ImGuiContext* ctx = m_ctx;
  m_ctx = nullptr;
  ImGui::SetCurrentContext(ctx);
  if (QOpenGLContext::currentContext()) ImGui_ImplOpenGL3_Shutdown();
  ImGui::DestroyContext(ctx);
  ImGui::SetCurrentContext(previous == ctx ? nullptr : previous);
}

void ImGuiOverlay::drawGpuHud(const GpuFigures& gpu, double frameMs, const QString& viewLine) {
  // Top right of the plot, left of the legend (HeatmapCanvas keeps 88 px on the right for it).
  ImGui::SetNextWindowPos(ImVec2(ImGui::GetIO().DisplaySize.x - 100.0f, 28.0f), ImGuiCond_Always, ImVec2(1.0f, 0.0f));
  ImGui::SetNextWindowBgAlpha(0.75f);
  const ImGuiWindowFlags flags = ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove |
                                 ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_NoFocusOnAppearing |
                                 ImGuiWindowFlags_NoNav | ImGuiWindowFlags_AlwaysAutoResize;
  ImGui::SetNextWindowSize(ImVec2(0, 0));
  if (ImGui::Begin("GPU", nullptr, flags)) {
    if (gpu.valid) {
      ImGui::Text("%s", gpu.name.toUtf8().constData());
      ImGui::ProgressBar(float(gpu.utilPercent / 100.0), ImVec2(200, 0),
                         QStringLiteral("util %1%").arg(gpu.utilPercent, 0, 'f', 0).toUtf8().constData());
      const float mem = gpu.memTotalMiB > 0 ? float(gpu.memUsedMiB / gpu.memTotalMiB) : 0.0f;
      ImGui::ProgressBar(mem, ImVec2(200, 0),
                         QStringLiteral("%1 / %2 GiB")
                             .arg(gpu.memUsedMiB / 1024.0, 0, 'f', 1)
                             .arg(gpu.memTotalMiB / 1024.0, 0, 'f', 1)
                             .toUtf8()
                             .constData());
      ImGui::Text("%.0f C", gpu.temperatureC);
      if (!gpu.jobLine.isEmpty()) ImGui::TextUnformatted(gpu.jobLine.toUtf8().constData());
    } else {
      ImGui::TextUnformatted("GPU: no telemetry");
      if (!gpu.note.isEmpty()) ImGui::TextUnformatted(gpu.note.toUtf8().constData());
    }
    ImGui::Separator();
    ImGui::Text("frame %.2f ms", frameMs);
    if (!viewLine.isEmpty()) ImGui::TextUnformatted(viewLine.toUtf8().constData());
  }
  ImGui::End();
}
