#include "LayerBudgetModel.h"

#include <cmath>

#include "FootprintModel.h"

LayerBudgetModel::LayerBudgetModel(const FootprintModel* fp, QObject* parent) : QAbstractTableModel(parent), m_fp(fp) {}

void LayerBudgetModel::refresh() {
  if (rowCount() > 0) emit dataChanged(index(0, 0), index(rowCount() - 1, ColumnCount - 1));
}

void LayerBudgetModel::reset() {
  beginResetModel();
  endResetModel();
}

int LayerBudgetModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : m_fp->layers(); }
int LayerBudgetModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant LayerBudgetModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= m_fp->layers()) return {};
  const int l = index.row();
  if (role == Qt::DisplayRole || role == Qt::EditRole) {
    switch (index.column()) {
      case Layer: return l;
      case Params: return QString::number(double(m_fp->layerParams(l)) / 1e6, 'f', 1) + QStringLiteral(" M");
      case AvgBits: {
        const double b = m_fp->layerAverageBits(l);
        return std::isnan(b) ? QVariant(QStringLiteral("-")) : QVariant(QString::number(b, 'f', 2));
      }
      case Size: {
        const double b = m_fp->layerAverageBits(l);
        return std::isnan(b) ? QVariant(QStringLiteral("-"))
                             : QVariant(QString::number(double(m_fp->layerParams(l)) * b / 8e6, 'f', 1) + QStringLiteral(" MB"));
      }
    }
  } else if (role == Qt::TextAlignmentRole) {
    return int(Qt::AlignRight | Qt::AlignVCenter);
  } else if (role == Qt::ToolTipRole && index.column() == AvgBits) {
    return tr("Type 2, 3, 4, 8 or 16 to give every expert of layer %1 that many bits").arg(l);
  }
  return {};
}

QVariant LayerBudgetModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return QAbstractTableModel::headerData(section, o, role);
  static const char* kNames[] = {"Layer", "Expert params", "Avg bits", "Weights"};
  return section >= 0 && section < ColumnCount ? QString::fromLatin1(kNames[section]) : QVariant();
}

Qt::ItemFlags LayerBudgetModel::flags(const QModelIndex& index) const {
  if (!index.isValid()) return Qt::NoItemFlags;
  Qt::ItemFlags f = Qt::ItemIsEnabled | Qt::ItemIsSelectable;
  if (index.column() == AvgBits && m_fp->layerParams(index.row()) > 0) f |= Qt::ItemIsEditable;
  return f;
}

bool LayerBudgetModel::setData(const QModelIndex& index, const QVariant& value, int role) {
  if (role != Qt::EditRole || !index.isValid() || index.column() != AvgBits || index.row() >= m_fp->layers()) return false;
  bool ok = false;
  const double b = value.toDouble(&ok);
  if (!ok || !razor::valid_bits(b)) return false;
  emit layerBitsRequested(index.row(), b >= razor::kKeepBits ? razor::kKeepBits : b);
  return true;
}
