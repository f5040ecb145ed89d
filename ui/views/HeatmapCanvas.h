// The layer x expert heatmap's drawing and interaction, shared by the raster widget (HeatmapWidget) and the
// OpenGL one (HeatmapGLWidget).
//
// Rendering: the grid becomes a QImage of one pixel per cell once per change of data, scale, mode or bits
// (colour lookup through a 256-entry table); every repaint draws that image scaled with nearest-neighbour
// sampling into the plot area, so zoom and pan cost a single drawImage whatever the grid size. Around it: the
// layer axis, the per-layer entropy strip, the expert axis, the colour legend (linear or log) and the cold /
// unused expert markers.
//
// View: a rectangle in cell coordinates (x = expert, y = layer). Wheel zooms around the cursor (Shift: experts
// only, Ctrl: layers only), dragging pans (left button when painting is off, middle or right button always),
// double-click resets. With painting on, a left press/drag emits the cells under the cursor as one stroke.
#pragma once
#include <QImage>
#include <QObject>
#include <QPointF>
#include <QRectF>
#include <QSet>
#include <QVector>

#include "HeatmapData.h"

class QPainter;
class QMouseEvent;
class QWheelEvent;

class HeatmapCanvas : public QObject {
  Q_OBJECT
 public:
  enum class Scale { Linear, Log };
  enum class Mode { Statistic, Bits };

  explicit HeatmapCanvas(QObject* parent = nullptr);

  void setGrid(const HeatmapGrid& grid);
  const HeatmapGrid& grid() const { return m_grid; }
  void setCounts(const QVector<double>& counts);   // routing counts for the cold flags (may be empty)
  void setEntropy(const QVector<double>& entropy); // per layer, 0..1 (may be empty)
  void setBits(const QVector<double>& bits);       // rows x cols bit allocation (may be empty)
  void setCellBits(int layer, int expert, double bits);  // one cell: patches the image, no rebuild
  const QVector<double>& bits() const { return m_bits; }
  void setScale(Scale s);
  Scale scale() const { return m_scale; }
  void setMode(Mode m);
  Mode mode() const { return m_mode; }
  void setShowFlags(bool on);
  bool showFlags() const { return m_showFlags; }
  void setPaintEnabled(bool on) { m_paintEnabled = on; }
  bool paintEnabled() const { return m_paintEnabled; }
  void setTitle(const QString& t);
  // A colour range shared by several canvases (side-by-side comparisons); lo > hi (the default): the grid's own.
  void setFixedRange(double lo, double hi);

  // View (cell coordinates).
  QRectF viewRect() const { return m_view; }
  void setViewRect(const QRectF& r);
  void resetView();
  void zoomAt(const QPointF& pos, double factorX, double factorY);
  void panBy(const QPointF& pixelDelta);

  void setSize(const QSize& s);
  QSize size() const { return m_size; }
  QRect plotRect() const;
  // Cell under a widget position, or (-1, -1).
  QPoint cellAt(const QPointF& pos) const;
  QString toolTipAt(const QPointF& pos) const;

  const QImage& image();           // the one-pixel-per-cell image (rebuilt when stale)
  void paint(QPainter& p);         // everything, into a widget of size()
  double minValue() const { return m_min; }
  double maxValue() const { return m_max; }
  const ColdFlags& coldFlags() const { return m_flags; }

  // Event handling; true when the event was used.
  bool mousePress(QMouseEvent* e);
  bool mouseMove(QMouseEvent* e);
  bool mouseRelease(QMouseEvent* e);
  bool mouseDoubleClick(QMouseEvent* e);
  bool wheel(QWheelEvent* e);

  static QRgb bitsColor(double bits);
  static QRgb colormap(double t);  // t in [0, 1], perceptually ordered (viridis-like)

 signals:
  void changed();                                   // repaint needed
  void strokeStarted();
  void cellsPainted(const QVector<QPoint>& cells);  // x = expert, y = layer
  void strokeFinished();
  void viewChanged(const QRectF& view);

 private:
  void rebuildImage();
  void computeRange();
  double normalised(double v) const;
  void clampView();
  QPointF toCell(const QPointF& pos) const;
  void paintStroke(const QPointF& pos);

  HeatmapGrid m_grid;
  QVector<double> m_counts, m_entropy, m_bits;
  ColdFlags m_flags;
  QString m_title;
  Scale m_scale = Scale::Linear;
  Mode m_mode = Mode::Statistic;
  bool m_showFlags = true;
  bool m_paintEnabled = false;
  bool m_dirty = true;
  QImage m_image;
  double m_min = 0, m_max = 1;
  double m_fixedLo = 1, m_fixedHi = 0;
  QRectF m_view;
  QSize m_size{640, 400};
  // drag state
  enum class Drag { None, Pan, Paint } m_drag = Drag::None;
  QPointF m_lastPos;
  QSet<qint64> m_strokeCells;
};
