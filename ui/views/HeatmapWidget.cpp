#include "HeatmapWidget.h"

#include <QHelpEvent>
#include <QKeyEvent>
#include <QPainter>
#include <QToolTip>

HeatmapWidget::HeatmapWidget(QWidget* parent) : QWidget(parent), m_canvas(new HeatmapCanvas(this)) {
  setMouseTracking(true);
  setFocusPolicy(Qt::StrongFocus);
  setAttribute(Qt::WA_OpaquePaintEvent);
  connect(m_canvas, &HeatmapCanvas::changed, this, qOverload<>(&QWidget::update));
}

bool HeatmapWidget::event(QEvent* e) {
  if (e->type() == QEvent::ToolTip) {
    auto* he = static_cast<QHelpEvent*>(e);
    const QString t = m_canvas->toolTipAt(he->pos());
    if (t.isEmpty())
      QToolTip::hideText();
    else
      QToolTip::showText(he->globalPos(), t, this);
    return true;
  }
  return QWidget::event(e);
}

void HeatmapWidget::paintEvent(QPaintEvent*) {
  QPainter p(this);
  m_canvas->setSize(size());
  m_canvas->paint(p);
}

void HeatmapWidget::resizeEvent(QResizeEvent*) { m_canvas->setSize(size()); }

void HeatmapWidget::mousePressEvent(QMouseEvent* e) {
  if (!m_canvas->mousePress(e)) QWidget::mousePressEvent(e);
}
void HeatmapWidget::mouseMoveEvent(QMouseEvent* e) {
  if (!m_canvas->mouseMove(e)) QWidget::mouseMoveEvent(e);
}
void HeatmapWidget::mouseReleaseEvent(QMouseEvent* e) {
  if (!m_canvas->mouseRelease(e)) QWidget::mouseReleaseEvent(e);
}
void HeatmapWidget::mouseDoubleClickEvent(QMouseEvent* e) {
  if (!m_canvas->mouseDoubleClick(e)) QWidget::mouseDoubleClickEvent(e);
}
void HeatmapWidget::wheelEvent(QWheelEvent* e) {
  if (!m_canvas->wheel(e)) QWidget::wheelEvent(e);
}
void HeatmapWidget::keyPressEvent(QKeyEvent* e) {
  if (!heatmapKeyZoom(m_canvas, e)) QWidget::keyPressEvent(e);
}

bool heatmapKeyZoom(HeatmapCanvas* canvas, QKeyEvent* e) {
  const QPointF centre = QRectF(canvas->plotRect()).center();
  switch (e->key()) {
    case Qt::Key_Plus:
    case Qt::Key_Equal: canvas->zoomAt(centre, 1.5, 1.5); return true;
    case Qt::Key_Minus: canvas->zoomAt(centre, 1 / 1.5, 1 / 1.5); return true;
    case Qt::Key_0:
    case Qt::Key_Home: canvas->resetView(); return true;
    default: return false;
  }
}
