// OpenGL heatmap: the same HeatmapCanvas drawn through Qt's OpenGL paint engine (the cell image becomes a
// texture, scaling happens on the GPU), with a Dear ImGui HUD on top (GPU figures, frame time, view).
//
// Never construct this widget under the offscreen or minimal QPA platforms (Qt crashes in rhiFlush): create it
// only when HeatmapGLWidget::openGLUsable() is true, otherwise use HeatmapWidget.
#pragma once
#include <QElapsedTimer>
#include <QOpenGLFunctions>
#include <QOpenGLWidget>

#include "HeatmapCanvas.h"
#include "ImGuiOverlay.h"

class HeatmapGLWidget : public QOpenGLWidget, protected QOpenGLFunctions {
  Q_OBJECT
 public:
  explicit HeatmapGLWidget(QWidget* parent = nullptr);
  ~HeatmapGLWidget() override;
  HeatmapCanvas* canvas() const { return m_canvas; }
  void setGpuFigures(const GpuFigures& g);
  void setHudVisible(bool on);
  bool hudActive() const { return m_overlay.isInitialized(); }
  QSize sizeHint() const override { return {900, 520}; }

  // The platform is not offscreen/minimal and a GL context can be made current on an offscreen surface.
  static bool openGLUsable();

 protected:
  void initializeGL() override;
  void paintGL() override;
  void resizeGL(int w, int h) override;
  bool event(QEvent* e) override;
  void mousePressEvent(QMouseEvent* e) override;
  void mouseMoveEvent(QMouseEvent* e) override;
  void mouseReleaseEvent(QMouseEvent* e) override;
  void mouseDoubleClickEvent(QMouseEvent* e) override;
  void wheelEvent(QWheelEvent* e) override;
  void keyPressEvent(QKeyEvent* e) override;

 private:
  HeatmapCanvas* m_canvas;
  ImGuiOverlay m_overlay;
  GpuFigures m_gpu;
  bool m_hud = true;
  QPointF m_mouse{-1, -1};
  bool m_mouseDown = false;
  double m_frameMs = 0;
};
