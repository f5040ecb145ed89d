#include "HeatmapCanvas.h"

#include <QFontMetrics>
#include <QMouseEvent>
#include <QPainter>
#include <QWheelEvent>
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace {

// Layout of the widget around the plot, in pixels.
constexpr int kTitleH = 22;
constexpr int kLayerLabelW = 34;
constexpr int kStripW = 12;
constexpr int kStripGap = 4;
constexpr int kLegendW = 88;
constexpr int kAxisH = 18;
constexpr int kFlagLegendH = 18;
constexpr int kMarkerMinCellPx = 6;  // markers and bit labels only where a cell is at least this big
constexpr double kLogFloorDecades = 6.0;  // log scale spans at most this many decades below the maximum

constexpr QRgb kNoValue = 0xff404040;
constexpr QRgb kHoleColor = 0xffff00ff;

std::array<QRgb, 256> makeLut() {
  // Viridis control points (matplotlib), linearly interpolated.
  static const double k[9][3] = {{0.267, 0.005, 0.329}, {0.283, 0.141, 0.458}, {0.254, 0.265, 0.530},
                                 {0.207, 0.372, 0.553}, {0.164, 0.471, 0.558}, {0.128, 0.567, 0.551},
                                 {0.135, 0.659, 0.518}, {0.478, 0.821, 0.318}, {0.993, 0.906, 0.144}};
  std::array<QRgb, 256> lut{};
  for (int i = 0; i < 256; ++i) {
    const double t = i / 255.0 * 8.0;
    const int a = std::min(7, int(t));
    const double f = t - a;
    int rgb[3];
    for (int c = 0; c < 3; ++c) rgb[c] = int(std::lround(255.0 * (k[a][c] * (1 - f) + k[a + 1][c] * f)));
    lut[size_t(i)] = qRgb(rgb[0], rgb[1], rgb[2]);
  }
  return lut;
}

const std::array<QRgb, 256>& lut() {
  static const auto l = makeLut();
  return l;
}

QString fmtValue(double v) {
  if (std::isnan(v)) return QStringLiteral("n/a");
  if (v != 0 && (std::fabs(v) >= 1e6 || std::fabs(v) < 1e-3)) return QString::number(v, 'e', 3);
  if (v == std::floor(v) && std::fabs(v) < 1e15) return QString::number(qint64(v));
  return QString::number(v, 'g', 6);
}

// Tick step giving at least minPx pixels between labels.
int tickStep(double cellsVisible, double pixels, double minPx) {
  static const int steps[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  for (int s : steps)
    if (pixels / cellsVisible * s >= minPx) return s;
  return 2048;
}

}  // namespace

HeatmapCanvas::HeatmapCanvas(QObject* parent) : QObject(parent) {}

QRgb HeatmapCanvas::colormap(double t) {
  if (std::isnan(t)) return kNoValue;
  const int i = std::clamp(int(t * 255.0 + 0.5), 0, 255);
  return lut()[size_t(i)];
}

QRgb HeatmapCanvas::bitsColor(double bits) {
  if (bits <= 0 || std::isnan(bits)) return kNoValue;
  if (bits < 2) return 0xff7b1fa2;   // ternary
  if (bits < 3) return 0xffd7301f;   // 2
  if (bits < 4) return 0xfffc8d59;   // 3
  if (bits < 8) return 0xfffdd49e;   // 4
  if (bits < 16) return 0xff74a9cf;  // 8
  return 0xff9e9e9e;                 // kept
}

void HeatmapCanvas::setGrid(const HeatmapGrid& grid) {
  const bool shapeChanged = grid.rows != m_grid.rows || grid.cols != m_grid.cols;
  m_grid = grid;
  if (m_counts.size() != qsizetype(m_grid.rows) * m_grid.cols) m_counts.clear();
  m_flags = ColdFlags::fromCounts(m_counts, m_grid.rows, m_grid.cols);
  computeRange();
  m_dirty = true;
  if (shapeChanged || m_view.isEmpty()) resetView();
  emit changed();
}

void HeatmapCanvas::setCounts(const QVector<double>& counts) {
  m_counts = counts;
  m_flags = ColdFlags::fromCounts(m_counts, m_grid.rows, m_grid.cols);
  m_dirty = true;
  emit changed();
}

void HeatmapCanvas::setEntropy(const QVector<double>& entropy) {
  m_entropy = entropy;
  emit changed();
}

void HeatmapCanvas::setBits(const QVector<double>& bits) {
  m_bits = bits;
  if (m_mode == Mode::Bits) m_dirty = true;
  emit changed();
}

void HeatmapCanvas::setCellBits(int layer, int expert, double bits) {
  const qsizetype i = qsizetype(layer) * m_grid.cols + expert;
  if (layer < 0 || expert < 0 || layer >= m_grid.rows || expert >= m_grid.cols || i >= m_bits.size()) return;
  m_bits[i] = bits;
  if (m_mode == Mode::Bits && !m_dirty && !m_image.isNull()) {
    QRgb c = bitsColor(bits);
    if (m_showFlags && i < m_flags.flags.size() && (m_flags.flags[i] & ColdFlags::Hole)) c = kHoleColor;
    m_image.setPixel(expert, layer, c);
  }
  emit changed();
}

void HeatmapCanvas::setScale(Scale s) {
  if (s == m_scale) return;
  m_scale = s;
  computeRange();
  m_dirty = true;
  emit changed();
}

void HeatmapCanvas::setMode(Mode m) {
  if (m == m_mode) return;
  m_mode = m;
  m_dirty = true;
  emit changed();
}

void HeatmapCanvas::setShowFlags(bool on) {
  if (on == m_showFlags) return;
  m_showFlags = on;
  m_dirty = true;
  emit changed();
}

void HeatmapCanvas::setTitle(const QString& t) {
  m_title = t;
  emit changed();
}

void HeatmapCanvas::setFixedRange(double lo, double hi) {
  m_fixedLo = lo;
  m_fixedHi = hi;
  computeRange();
  m_dirty = true;
  emit changed();
}

void HeatmapCanvas::computeRange() {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  if (m_fixedLo <= m_fixedHi) {
    lo = m_fixedLo;
    hi = m_fixedHi;
    if (m_scale == Scale::Log && lo <= 0) lo = hi * std::pow(10.0, -kLogFloorDecades);
  }
  for (double v : m_grid.values) {
    if (m_fixedLo <= m_fixedHi) break;
    if (std::isnan(v) || (m_scale == Scale::Log && v <= 0)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (!std::isfinite(lo)) {
    lo = m_scale == Scale::Log ? 1.0 : 0.0;
    hi = lo + 1.0;
  }
  if (m_scale == Scale::Log) lo = std::max(lo, hi * std::pow(10.0, -kLogFloorDecades));
  if (hi <= lo) hi = lo + (m_scale == Scale::Log ? lo : 1.0);
  m_min = lo;
  m_max = hi;
}

double HeatmapCanvas::normalised(double v) const {
  if (std::isnan(v)) return v;
  if (m_scale == Scale::Log) {
    if (v <= 0) return 0.0;
    return std::clamp((std::log10(v) - std::log10(m_min)) / (std::log10(m_max) - std::log10(m_min)), 0.0, 1.0);
  }
  return std::clamp((v - m_min) / (m_max - m_min), 0.0, 1.0);
}

void HeatmapCanvas::rebuildImage() {
  m_dirty = false;
  if (m_grid.isEmpty()) {
    m_image = QImage();
    return;
  }
  if (m_image.width() != m_grid.cols || m_image.height() != m_grid.rows)
    m_image = QImage(m_grid.cols, m_grid.rows, QImage::Format_RGB32);
  const bool bitsMode = m_mode == Mode::Bits && m_bits.size() == m_grid.values.size();
  const bool flags = m_showFlags && m_flags.flags.size() == m_grid.values.size();
  // Log scale: one log10 per cell, mapped through the table.
  const double l0 = std::log10(m_min), inv = 1.0 / (std::log10(m_max) - l0), linv = 1.0 / (m_max - m_min);
  const auto& table = lut();
  for (int r = 0; r < m_grid.rows; ++r) {
    auto* line = reinterpret_cast<QRgb*>(m_image.scanLine(r));
    const double* v = m_grid.values.constData() + qsizetype(r) * m_grid.cols;
    for (int c = 0; c < m_grid.cols; ++c) {
      const qsizetype i = qsizetype(r) * m_grid.cols + c;
      QRgb px;
      if (bitsMode) {
        px = bitsColor(m_bits[i]);
      } else if (std::isnan(v[c])) {
        px = kNoValue;
      } else {
        double t = m_scale == Scale::Log ? (v[c] > 0 ? (std::log10(v[c]) - l0) * inv : 0.0) : (v[c] - m_min) * linv;
        px = table[size_t(std::clamp(int(t * 255.0 + 0.5), 0, 255))];
      }
      if (flags && (m_flags.flags[i] & ColdFlags::Hole)) px = kHoleColor;
      line[c] = px;
    }
  }
}

const QImage& HeatmapCanvas::image() {
  if (m_dirty) rebuildImage();
  return m_image;
}

// ---- view -------------------------------------------------------------------------------------------------

void HeatmapCanvas::resetView() {
  m_view = QRectF(0, 0, std::max(1, m_grid.cols), std::max(1, m_grid.rows));
  emit viewChanged(m_view);
  emit changed();
}

void HeatmapCanvas::setViewRect(const QRectF& r) {
  m_view = r;
  clampView();
  emit viewChanged(m_view);
  emit changed();
}

void HeatmapCanvas::clampView() {
  const double W = std::max(1, m_grid.cols), H = std::max(1, m_grid.rows);
  const double minW = std::min(W, 4.0), minH = std::min(H, 2.0);
  double w = std::clamp(m_view.width(), minW, W), h = std::clamp(m_view.height(), minH, H);
  double x = std::clamp(m_view.x(), 0.0, W - w), y = std::clamp(m_view.y(), 0.0, H - h);
  m_view = QRectF(x, y, w, h);
}

void HeatmapCanvas::setSize(const QSize& s) {
  m_size = s;
}

QRect HeatmapCanvas::plotRect() const {
  const int x0 = kLayerLabelW + kStripW + kStripGap;
  return QRect(x0, kTitleH, std::max(10, m_size.width() - x0 - kLegendW),
               std::max(10, m_size.height() - kTitleH - kAxisH - kFlagLegendH));
}

QPointF HeatmapCanvas::toCell(const QPointF& pos) const {
  const QRect pr = plotRect();
  return QPointF(m_view.x() + (pos.x() - pr.x()) / pr.width() * m_view.width(),
                 m_view.y() + (pos.y() - pr.y()) / pr.height() * m_view.height());
}

QPoint HeatmapCanvas::cellAt(const QPointF& pos) const {
  if (m_grid.isEmpty() || !plotRect().contains(pos.toPoint())) return {-1, -1};
  const QPointF c = toCell(pos);
  const int x = int(std::floor(c.x())), y = int(std::floor(c.y()));
  if (x < 0 || y < 0 || x >= m_grid.cols || y >= m_grid.rows) return {-1, -1};
  return {x, y};
}

void HeatmapCanvas::zoomAt(const QPointF& pos, double fx, double fy) {
  const QPointF anchor = toCell(pos);
  const double w = m_view.width() / fx, h = m_view.height() / fy;
  const double ax = (anchor.x() - m_view.x()) / m_view.width(), ay = (anchor.y() - m_view.y()) / m_view.height();
  m_view = QRectF(anchor.x() - ax * w, anchor.y() - ay * h, w, h);
  clampView();
  emit viewChanged(m_view);
  emit changed();
}

void HeatmapCanvas::panBy(const QPointF& d) {
  const QRect pr = plotRect();
  m_view.translate(-d.x() / pr.width() * m_view.width(), -d.y() / pr.height() * m_view.height());
  clampView();
  emit viewChanged(m_view);
  emit changed();
}

QString HeatmapCanvas::toolTipAt(const QPointF& pos) const {
  if (m_grid.isEmpty()) return {};
  const QRect pr = plotRect();
  // Entropy strip
  const QRect strip(kLayerLabelW, pr.y(), kStripW, pr.height());
  if (strip.contains(pos.toPoint())) {
    const int layer = int(std::floor(toCell(pos).y()));
    if (layer < 0 || layer >= m_grid.rows) return {};
    QString s = QStringLiteral("layer %1").arg(layer);
    if (layer < m_entropy.size()) s += QStringLiteral("\nrouting entropy H/log E = %1").arg(m_entropy[layer], 0, 'f', 4);
    if (layer < m_flags.coldPerLayer.size())
      s += QStringLiteral("\ncold experts: %1, zero-count: %2")
               .arg(m_flags.coldPerLayer[layer])
               .arg(m_flags.holesPerLayer[layer]);
    return s;
  }
  const QPoint c = cellAt(pos);
  if (c.x() < 0) return {};
  const qsizetype i = qsizetype(c.y()) * m_grid.cols + c.x();
  QString s = QStringLiteral("layer %1, expert %2\n%3 = %4")
                  .arg(c.y())
                  .arg(c.x())
                  .arg(m_grid.name, fmtValue(m_grid.values[i]));
  if (i < m_counts.size() && m_grid.name != QLatin1String("routing count"))
    s += QStringLiteral("\nrouting count = %1").arg(fmtValue(m_counts[i]));
  if (i < m_bits.size()) s += QStringLiteral("\nbits = %1").arg(m_bits[i]);
  if (i < m_flags.flags.size()) {
    if (m_flags.flags[i] & ColdFlags::Hole)
      s += QStringLiteral("\nzero count: never routed (imatrix coverage hole)");
    else if (m_flags.flags[i] & ColdFlags::Cold)
      s += QStringLiteral("\ncold: count < 10% of the layer mean");
  }
  return s;
}

// ---- painting ---------------------------------------------------------------------------------------------

void HeatmapCanvas::paint(QPainter& p) {
  const QRect full(QPoint(0, 0), m_size);
  p.fillRect(full, QColor(0x20, 0x22, 0x26));
  p.setPen(QColor(0xe0, 0xe0, 0xe0));
  QFont f = p.font();
  f.setPixelSize(11);
  p.setFont(f);
  const QFontMetrics fm(f);
  if (m_grid.isEmpty()) {
    p.drawText(full, Qt::AlignCenter, QStringLiteral("No statistics loaded"));
    return;
  }
  const QRect pr = plotRect();
  QString title = m_title.isEmpty() ? m_grid.name : m_title;
  title += m_mode == Mode::Bits ? QStringLiteral("  [bits]")
                                : (m_scale == Scale::Log ? QStringLiteral("  [log]") : QStringLiteral("  [linear]"));
  title += QStringLiteral("   %1 layers x %2 experts").arg(m_grid.rows).arg(m_grid.cols);
  p.drawText(QRect(pr.x(), 0, pr.width(), kTitleH), Qt::AlignLeft | Qt::AlignVCenter, title);

  // The grid: one drawImage, nearest-neighbour.
  p.setRenderHint(QPainter::SmoothPixmapTransform, false);
  p.drawImage(QRectF(pr), image(), m_view);

  const double cw = pr.width() / m_view.width(), ch = pr.height() / m_view.height();
  const int c0 = std::max(0, int(std::floor(m_view.x()))), c1 = std::min(m_grid.cols, int(std::ceil(m_view.right())));
  const int r0 = std::max(0, int(std::floor(m_view.y()))), r1 = std::min(m_grid.rows, int(std::ceil(m_view.bottom())));
  auto cellRect = [&](int r, int c) {
    return QRectF(pr.x() + (c - m_view.x()) * cw, pr.y() + (r - m_view.y()) * ch, cw, ch);
  };

  p.save();
  p.setClipRect(pr);
  // Cold markers and bit labels when cells are big enough to carry them.
  if (m_showFlags && cw >= kMarkerMinCellPx && ch >= kMarkerMinCellPx && m_flags.flags.size() == m_grid.values.size()) {
    p.setPen(QPen(QColor(0, 230, 255), 1.5));
    for (int r = r0; r < r1; ++r)
      for (int c = c0; c < c1; ++c)
        if ((m_flags.flags[qsizetype(r) * m_grid.cols + c] & (ColdFlags::Cold | ColdFlags::Hole)) == ColdFlags::Cold) {
          const QRectF cr = cellRect(r, c);
          const double d = std::min(cw, ch) * 0.3;
          p.drawLine(QPointF(cr.left() + 1, cr.top() + d + 1), QPointF(cr.left() + d + 1, cr.top() + 1));
        }
  }
  if (m_bits.size() == m_grid.values.size() && cw >= 14 && ch >= 12) {
    p.setPen(m_mode == Mode::Bits ? QColor(20, 20, 20) : QColor(255, 255, 255));
    for (int r = r0; r < r1; ++r)
      for (int c = c0; c < c1; ++c)
        p.drawText(cellRect(r, c), Qt::AlignCenter, QString::number(m_bits[qsizetype(r) * m_grid.cols + c]));
  }
  if (cw >= 8 && ch >= 8) {  // grid lines once cells are large
    p.setPen(QPen(QColor(0, 0, 0, 90), 1));
    for (int c = c0; c <= c1; ++c) p.drawLine(QPointF(cellRect(0, c).left(), pr.top()), QPointF(cellRect(0, c).left(), pr.bottom()));
    for (int r = r0; r <= r1; ++r) p.drawLine(QPointF(pr.left(), cellRect(r, 0).top()), QPointF(pr.right(), cellRect(r, 0).top()));
  }
  p.restore();

  // Axes.
  p.setPen(QColor(0xc8, 0xc8, 0xc8));
  const int ls = tickStep(m_view.height(), pr.height(), fm.height() + 2);
  for (int r = (r0 / ls) * ls; r < r1; r += ls) {
    const QRectF cr = cellRect(r, c0);
    p.drawText(QRectF(0, cr.center().y() - 8, kLayerLabelW - 3, 16), Qt::AlignRight | Qt::AlignVCenter,
               QString::number(r));
  }
  const int es = tickStep(m_view.width(), pr.width(), fm.horizontalAdvance(QStringLiteral("0000")) + 6);
  for (int c = (c0 / es) * es; c < c1; c += es) {
    const QRectF cr = cellRect(r0, c);
    p.drawText(QRectF(cr.center().x() - 20, pr.bottom() + 2, 40, kAxisH - 2), Qt::AlignHCenter | Qt::AlignTop,
               QString::number(c));
  }
  p.drawText(QRect(0, pr.bottom() + 2, kLayerLabelW + kStripW, kAxisH), Qt::AlignLeft | Qt::AlignTop,
             QStringLiteral("L\\E"));

  // Entropy strip (0 = all load on one expert, 1 = uniform).
  const QRectF strip(kLayerLabelW, pr.y(), kStripW, pr.height());
  p.fillRect(strip, QColor(0x40, 0x40, 0x40));
  if (m_entropy.size() == m_grid.rows) {
    // One pixel per layer, drawn with the grid's vertical mapping so rows line up exactly.
    QImage ent(1, m_grid.rows, QImage::Format_RGB32);
    for (int r = 0; r < m_grid.rows; ++r) ent.setPixel(0, r, colormap(m_entropy[r]));
    p.drawImage(strip, ent, QRectF(0, m_view.y(), 1, m_view.height()));
  }

  // Legend.
  const int lx = pr.right() + 12;
  const QRect bar(lx, pr.y() + 14, 14, std::max(20, pr.height() - 28));
  p.drawText(QRect(lx - 4, 0, kLegendW, kTitleH), Qt::AlignLeft | Qt::AlignVCenter,
             m_mode == Mode::Bits ? QStringLiteral("bits") : (m_scale == Scale::Log ? QStringLiteral("log10") : QStringLiteral("linear")));
  if (m_mode == Mode::Bits) {
    static const double kBits[] = {16, 8, 4, 3, 2};
    const int h = std::min(24, bar.height() / 5);
    for (int i = 0; i < 5; ++i) {
      QRect sw(lx, bar.y() + i * h, 14, h - 2);
      p.fillRect(sw, QColor::fromRgb(bitsColor(kBits[i])));
      p.drawText(QRect(lx + 18, sw.y(), kLegendW - 20, h), Qt::AlignLeft | Qt::AlignVCenter,
                 kBits[i] >= 16 ? QStringLiteral("16 (keep)") : QString::number(kBits[i]));
    }
  } else {
    for (int y = 0; y < bar.height(); ++y)
      p.fillRect(QRect(bar.x(), bar.bottom() - y, bar.width(), 1),
                 QColor::fromRgb(colormap(double(y) / std::max(1, bar.height() - 1))));
    const int nTicks = 5;
    for (int i = 0; i < nTicks; ++i) {
      const double t = double(i) / (nTicks - 1);
      const double v = m_scale == Scale::Log ? std::pow(10.0, std::log10(m_min) + t * (std::log10(m_max) - std::log10(m_min)))
                                             : m_min + t * (m_max - m_min);
      const int y = bar.bottom() - int(t * (bar.height() - 1));
      p.drawLine(bar.right() + 1, y, bar.right() + 4, y);
      p.drawText(QRect(bar.right() + 6, y - 8, kLegendW - 22, 16), Qt::AlignLeft | Qt::AlignVCenter, fmtValue(v));
    }
  }

  // Flag legend and counts (none without routing counts: nothing was flagged).
  if (!m_counts.isEmpty() && m_flags.flags.size() == m_grid.values.size()) {
    int cold = 0, holes = 0;
    for (int r = 0; r < m_grid.rows; ++r) {
      cold += m_flags.coldPerLayer[r] - m_flags.holesPerLayer[r];  // the legend counts the two kinds apart
      holes += m_flags.holesPerLayer[r];
    }
    const int y = pr.bottom() + kAxisH;
    p.fillRect(QRect(pr.x(), y + 4, 10, 10), QColor::fromRgb(kHoleColor));
    p.setPen(QPen(QColor(0, 230, 255), 1.5));
    p.drawLine(pr.x() + 150, y + 14, pr.x() + 160, y + 4);
    p.setPen(QColor(0xc8, 0xc8, 0xc8));
    p.drawText(QRect(pr.x() + 14, y, 140, kFlagLegendH), Qt::AlignLeft | Qt::AlignVCenter,
               QStringLiteral("zero count: %1").arg(holes));
    p.drawText(QRect(pr.x() + 164, y, 260, kFlagLegendH), Qt::AlignLeft | Qt::AlignVCenter,
               QStringLiteral("cold (> 0, < 10% of layer mean): %1").arg(cold));
    p.drawText(QRect(pr.x() + 400, y, std::max(0, pr.width() - 400), kFlagLegendH), Qt::AlignRight | Qt::AlignVCenter,
               QStringLiteral("strip: routing entropy"));
  }
}

// ---- interaction ------------------------------------------------------------------------------------------

void HeatmapCanvas::paintStroke(const QPointF& pos) {
  const QPoint c = cellAt(pos);
  if (c.x() < 0) return;
  const qint64 key = qint64(c.y()) * m_grid.cols + c.x();
  if (m_strokeCells.contains(key)) return;
  m_strokeCells.insert(key);
  emit cellsPainted({c});
}

bool HeatmapCanvas::mousePress(QMouseEvent* e) {
  m_lastPos = e->position();
  if (e->button() == Qt::LeftButton && m_paintEnabled && cellAt(e->position()).x() >= 0) {
    m_drag = Drag::Paint;
    m_strokeCells.clear();
    emit strokeStarted();
    paintStroke(e->position());
    return true;
  }
  if (e->button() == Qt::LeftButton || e->button() == Qt::MiddleButton || e->button() == Qt::RightButton) {
    m_drag = Drag::Pan;
    return true;
  }
  return false;
}

bool HeatmapCanvas::mouseMove(QMouseEvent* e) {
  if (m_drag == Drag::Paint) {
    // Fill the segment so a fast drag leaves no gaps.
    const QPointF a = m_lastPos, b = e->position();
    const int steps = std::max(1, int(QLineF(a, b).length() / 2));
    for (int i = 1; i <= steps; ++i) paintStroke(a + (b - a) * (double(i) / steps));
    m_lastPos = b;
    return true;
  }
  if (m_drag == Drag::Pan) {
    panBy(e->position() - m_lastPos);
    m_lastPos = e->position();
    return true;
  }
  return false;
}

bool HeatmapCanvas::mouseRelease(QMouseEvent* e) {
  const Drag d = m_drag;
  m_drag = Drag::None;
  if (d == Drag::Paint) {
    m_strokeCells.clear();
    emit strokeFinished();
  }
  return d != Drag::None;
}

bool HeatmapCanvas::mouseDoubleClick(QMouseEvent* e) {
  if (m_paintEnabled && e->button() == Qt::LeftButton) return false;
  resetView();
  return true;
}

bool HeatmapCanvas::wheel(QWheelEvent* e) {
  const double steps = e->angleDelta().y() / 120.0;
  if (steps == 0) return false;
  const double f = std::pow(1.25, steps);
  const bool onlyX = e->modifiers() & Qt::ShiftModifier, onlyY = e->modifiers() & Qt::ControlModifier;
  zoomAt(e->position(), onlyY ? 1.0 : f, onlyX ? 1.0 : f);
  return true;
}
