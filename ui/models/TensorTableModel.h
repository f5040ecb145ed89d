// The tensor browser's item models: TensorTableModel lists the inventory's tensors (name, role, layer, expert,
// dtype, shape, bytes); TensorFilterProxy filters by a name pattern (substring, or a regular expression) and a
// role, a layer and an expert (a fused tensor holds every expert of its layer), sorts numerically on the numeric
// columns (Qt::UserRole carries the sort key) and naturally on the text ones ("experts.2" before "experts.10").
#pragma once
#include <QAbstractTableModel>
#include <QRegularExpression>
#include <QSortFilterProxyModel>

#include "ModelInventory.h"

class TensorTableModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { Name, Role, Layer, Expert, DType, Shape, Bytes, ColumnCount };
  static constexpr int SortRole = Qt::UserRole;

  explicit TensorTableModel(QObject* parent = nullptr);
  void setTensors(QVector<TensorInfo> tensors);
  const TensorInfo& tensor(int row) const { return m_tensors[row]; }
  QStringList roles() const;  // distinct roles, sorted

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation o, int role = Qt::DisplayRole) const override;

 private:
  QVector<TensorInfo> m_tensors;
};

class TensorFilterProxy : public QSortFilterProxyModel {
  Q_OBJECT
 public:
  explicit TensorFilterProxy(QObject* parent = nullptr);
  // Substring (case-insensitive) unless `regex`; an invalid expression matches nothing and isValid() says so.
  void setNameFilter(const QString& text, bool regex);
  bool nameFilterValid() const { return m_valid; }
  void setRoleFilter(const QString& role);  // empty = all roles
  QString roleFilter() const { return m_role; }
  void setLayerFilter(int layer);    // -1 = every layer
  void setExpertFilter(int expert);  // -1 = every expert (and the tensors that are no expert's)
  int layerFilter() const { return m_layer; }
  int expertFilter() const { return m_expert; }
  // Natural order: runs of digits compare as numbers, the rest case-insensitively ("a.2.b" < "a.10.b").
  static int naturalCompare(const QString& a, const QString& b);

 protected:
  bool filterAcceptsRow(int row, const QModelIndex& parent) const override;
  bool lessThan(const QModelIndex& left, const QModelIndex& right) const override;

 private:
  QString m_text;
  QRegularExpression m_re;
  bool m_regex = false, m_valid = true;
  QString m_role;
  int m_layer = -1, m_expert = -1;
};
