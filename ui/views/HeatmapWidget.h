// Raster heatmap widget: a HeatmapCanvas in a plain QWidget (works under every QPA platform, offscreen
// included). Zoom/pan/tooltip/painting behaviour is the canvas's; see HeatmapCanvas.h.
#pragma once
#include <QWidget>

#include "HeatmapCanvas.h"

class HeatmapWidget : public QWidget {
  Q_OBJECT
 public:
  explicit HeatmapWidget(QWidget* parent = nullptr);
  HeatmapCanvas* canvas() const { return m_canvas; }
  QSize sizeHint() const override { return {900, 520}; }
  QSize minimumSizeHint() const override { return {240, 160}; }

 protected:
  bool event(QEvent* e) override;
  void paintEvent(QPaintEvent*) override;
  void resizeEvent(QResizeEvent*) override;
  void mousePressEvent(QMouseEvent* e) override;
  void mouseMoveEvent(QMouseEvent* e) override;
  void mouseReleaseEvent(QMouseEvent* e) override;
  void mouseDoubleClickEvent(QMouseEvent* e) override;
  void wheelEvent(QWheelEvent* e) override;
  void keyPressEvent(QKeyEvent* e) override;

 private:
  HeatmapCanvas* m_canvas;
};

// Keyboard zoom shared by both heatmap widgets: + / - zoom around the centre, 0 resets. True when used.
bool heatmapKeyZoom(HeatmapCanvas* canvas, QKeyEvent* e);
