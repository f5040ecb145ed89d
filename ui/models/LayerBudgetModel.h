#pragma once
#include <QAbstractTableModel>

class FootprintModel;

// One row per decoder layer: expert parameters, average expert bits (editable: sets the whole layer), size.
class LayerBudgetModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { Layer, Params, AvgBits, Size, ColumnCount };
  explicit LayerBudgetModel(const FootprintModel* fp, QObject* parent = nullptr);
  void refresh();              // layout unchanged, values changed
  void reset();                // layer count changed
  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation o, int role = Qt::DisplayRole) const override;
  Qt::ItemFlags flags(const QModelIndex& index) const override;
  bool setData(const QModelIndex& index, const QVariant& value, int role = Qt::EditRole) override;

 signals:
  void layerBitsRequested(int layer, double bits);

 private:
  const FootprintModel* m_fp;
};
