#include "TensorTableModel.h"

#include <QLocale>
#include <QSet>

TensorTableModel::TensorTableModel(QObject* parent) : QAbstractTableModel(parent) {}

void TensorTableModel::setTensors(QVector<TensorInfo> tensors) {
  beginResetModel();
  m_tensors = std::move(tensors);
  endResetModel();
}

QStringList TensorTableModel::roles() const {
  QSet<QString> s;
  for (const auto& t : m_tensors) s.insert(t.role);
  QStringList out(s.begin(), s.end());
  out.sort();
  return out;
}

int TensorTableModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : int(m_tensors.size());
}

int TensorTableModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant TensorTableModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= m_tensors.size() || index.column() >= ColumnCount) return {};
  const TensorInfo& t = m_tensors[index.row()];
  if (role == Qt::DisplayRole) {
    switch (index.column()) {
      case Name: return t.name;
      case Role: return t.role;
      case Layer: return t.layer >= 0 ? QVariant(t.layer) : QVariant(QStringLiteral("-"));
      case Expert: return t.expert >= 0 ? QVariant(t.expert) : QVariant(t.fused ? QStringLiteral("all") : QStringLiteral("-"));
      case DType: return t.dtype;
      case Shape: return t.shapeText();
      case Bytes: return QLocale(QLocale::English).toString(t.bytes);
    }
  } else if (role == SortRole) {
    switch (index.column()) {
      case Layer: return t.layer;
      case Expert: return t.expert;
      case Shape: return t.params();
      case Bytes: return t.bytes;
      default: return data(index, Qt::DisplayRole);
    }
  } else if (role == Qt::TextAlignmentRole) {
    if (index.column() == Layer || index.column() == Expert || index.column() == Bytes)
      return int(Qt::AlignRight | Qt::AlignVCenter);
  } else if (role == Qt::ToolTipRole && index.column() == Name) {
    return QStringLiteral("%1\n%2 parameters%3").arg(t.name).arg(t.params()).arg(t.proj.isEmpty() ? QString() : QStringLiteral(", projection ") + t.proj);
  }
  return {};
}

QVariant TensorTableModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return QAbstractTableModel::headerData(section, o, role);
  static const char* kNames[] = {"Name", "Role", "Layer", "Expert", "DType", "Shape", "Bytes"};
  return section >= 0 && section < ColumnCount ? QString::fromLatin1(kNames[section]) : QVariant();
}

TensorFilterProxy::TensorFilterProxy(QObject* parent) : QSortFilterProxyModel(parent) {
  setSortRole(TensorTableModel::SortRole);
  setDynamicSortFilter(true);
}

void TensorFilterProxy::setNameFilter(const QString& text, bool regex) {
  m_text = text;
  m_regex = regex;
  m_valid = true;
  if (regex) {
    m_re = QRegularExpression(text, QRegularExpression::CaseInsensitiveOption);
    m_valid = m_re.isValid();
    if (m_valid) m_re.optimize();
  }
  invalidateFilter();
}

void TensorFilterProxy::setRoleFilter(const QString& role) {
  m_role = role;
  invalidateFilter();
}

bool TensorFilterProxy::filterAcceptsRow(int row, const QModelIndex& parent) const {
  auto* m = qobject_cast<TensorTableModel*>(sourceModel());
  if (!m || parent.isValid()) return true;
  const TensorInfo& t = m->tensor(row);
  if (!m_role.isEmpty() && t.role != m_role) return false;
  if (m_layer >= 0 && t.layer != m_layer) return false;
  if (m_expert >= 0 && t.expert != m_expert && !t.fused) return false;
  if (m_text.isEmpty()) return true;
  if (m_regex) return m_valid && m_re.match(t.name).hasMatch();
  return t.name.contains(m_text, Qt::CaseInsensitive);
}

void TensorFilterProxy::setLayerFilter(int layer) {
  m_layer = layer < 0 ? -1 : layer;
  invalidateFilter();
}

void TensorFilterProxy::setExpertFilter(int expert) {
  m_expert = expert < 0 ? -1 : expert;
  invalidateFilter();
}

int TensorFilterProxy::naturalCompare(const QString& a, const QString& b) {
  int i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i].isDigit() && b[j].isDigit()) {
      int i2 = i, j2 = j;
      while (i2 < a.size() && a[i2].isDigit()) ++i2;
      while (j2 < b.size() && b[j2].isDigit()) ++j2;
      // Compare the numbers without leading zeros: the longer is larger, else digit by digit.
      int si = i, sj = j;
      while (si < i2 - 1 && a[si] == QLatin1Char('0')) ++si;
      while (sj < j2 - 1 && b[sj] == QLatin1Char('0')) ++sj;
      if (i2 - si != j2 - sj) return (i2 - si) < (j2 - sj) ? -1 : 1;
      for (int k = 0; k < i2 - si; ++k)
        if (a[si + k] != b[sj + k]) return a[si + k] < b[sj + k] ? -1 : 1;
      i = i2;
      j = j2;
      continue;
    }
    const QChar ca = a[i].toLower(), cb = b[j].toLower();
    if (ca != cb) return ca < cb ? -1 : 1;
    ++i;
    ++j;
  }
  if (i < a.size()) return 1;
  if (j < b.size()) return -1;
  return QString::compare(a, b);  // equal but for case: a stable order
}

bool TensorFilterProxy::lessThan(const QModelIndex& left, const QModelIndex& right) const {
  const QVariant l = left.data(sortRole()), r = right.data(sortRole());
  if (l.typeId() == QMetaType::QString && r.typeId() == QMetaType::QString)
    return naturalCompare(l.toString(), r.toString()) < 0;
  return QSortFilterProxyModel::lessThan(left, right);
}
