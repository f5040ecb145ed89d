#include "HeatmapGLWidget.h"

#include <QGuiApplication>
#include <QHelpEvent>
#include <QMouseEvent>
#include <QOffscreenSurface>
#include <QOpenGLContext>
#include <QPainter>
#include <QToolTip>

#include "HeatmapWidget.h"
#include "imgui.h"

HeatmapGLWidget::HeatmapGLWidget(QWidget* parent) : QOpenGLWidget(parent), m_canvas(new HeatmapCanvas(this)) {
  setMouseTracking(true);
  setFocusPolicy(Qt::StrongFocus);
  connect(m_canvas, &HeatmapCanvas::changed, this, qOverload<>(&QWidget::update));
  m_gpu.note = QStringLiteral("CPU worker");
}

HeatmapGLWidget::~HeatmapGLWidget() {
  if (m_overlay.isInitialized()) {
    makeCurrent();
    m_overlay.shutdown();
    doneCurrent();
  }
}

bool HeatmapGLWidget::openGLUsable() {
  const QString platform = QGuiApplication::platformName();
  if (platform == QLatin1String("offscreen") || platform == QLatin1String("minimal")) return false;
  if (qEnvironmentVariableIsSet("RAZOR_NO_GL")) return false;
  QOpenGLContext ctx;
  if (!ctx.create()) return false;
  QOffscreenSurface surface;
  surface.setFormat(ctx.format());
  surface.create();
  if (!surface.isValid() || !ctx.makeCurrent(&surface)) return false;
  ctx.doneCurrent();
  return true;
}

void HeatmapGLWidget::setGpuFigures(const GpuFigures& g) {
  m_gpu = g;
  update();
}

void HeatmapGLWidget::setHudVisible(bool on) {
  m_hud = on;
  update();
}

void HeatmapGLWidget::initializeGL() {
  initializeOpenGLFunctions();
  m_overlay.initialize();  // a context below GL 3.0 draws without the HUD
}

void HeatmapGLWidget::resizeGL(int w, int h) { m_canvas->setSize(QSize(w, h)); }

void HeatmapGLWidget::paintGL() {
  QElapsedTimer t;
  t.start();
  m_canvas->setSize(size());
  {
    QPainter p(this);
    m_canvas->paint(p);
  }
  if (m_hud && m_overlay.isInitialized()) {
    const QRectF v = m_canvas->viewRect();
    const QString line = QStringLiteral("view %1x%2 cells").arg(v.width(), 0, 'f', 0).arg(v.height(), 0, 'f', 0);
    const GpuFigures gpu = m_gpu;
    const double ms = m_frameMs;
    m_overlay.render(size(), devicePixelRatioF(), m_mouse, m_mouseDown,
                     [&] { ImGuiOverlay::drawGpuHud(gpu, ms, line); });
  }
  m_frameMs = double(t.nsecsElapsed()) / 1e6;
}

bool HeatmapGLWidget::event(QEvent* e) {
  if (e->type() == QEvent::ToolTip) {
    auto* he = static_cast<QHelpEvent*>(e);
    const QString tip = m_canvas->toolTipAt(he->pos());
    if (tip.isEmpty())
      QToolTip::hideText();
    else
      QToolTip::showText(he->globalPos(), tip, this);
    return true;
  }
  return QOpenGLWidget::event(e);
}

void HeatmapGLWidget::mousePressEvent(QMouseEvent* e) {
  m_mouseDown = e->buttons() & Qt::LeftButton;
  if (!m_canvas->mousePress(e)) QOpenGLWidget::mousePressEvent(e);
  update();
}
void HeatmapGLWidget::mouseMoveEvent(QMouseEvent* e) {
  m_mouse = e->position();
  if (!m_canvas->mouseMove(e)) QOpenGLWidget::mouseMoveEvent(e);
  if (m_hud) update();
}
void HeatmapGLWidget::mouseReleaseEvent(QMouseEvent* e) {
  m_mouseDown = e->buttons() & Qt::LeftButton;
  if (!m_canvas->mouseRelease(e)) QOpenGLWidget::mouseReleaseEvent(e);
  update();
}
void HeatmapGLWidget::mouseDoubleClickEvent(QMouseEvent* e) {
  if (!m_canvas->mouseDoubleClick(e)) QOpenGLWidget::mouseDoubleClickEvent(e);
}
void HeatmapGLWidget::wheelEvent(QWheelEvent* e) {
  if (!m_canvas->wheel(e)) QOpenGLWidget::wheelEvent(e);
}
void HeatmapGLWidget::keyPressEvent(QKeyEvent* e) {
  if (!heatmapKeyZoom(m_canvas, e)) QOpenGLWidget::keyPressEvent(e);
}
