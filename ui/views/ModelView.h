// The Model view: a summary panel (architecture, layers, experts total / active / shared, parameters by role)
// beside the tensor browser (TensorTableModel behind TensorFilterProxy: name filter as substring or regular
// expression, role filter, sortable columns). Everything comes from the inventory (`razor inspect --json`).
#pragma once
#include <QJsonObject>
#include <QWidget>

#include "ModelInventory.h"

class QCheckBox;
class QComboBox;
class QSpinBox;
class QLabel;
class QLineEdit;
class QTableView;
class QTableWidget;
class TensorFilterProxy;
class TensorTableModel;

class ModelView : public QWidget {
  Q_OBJECT
 public:
  explicit ModelView(QWidget* parent = nullptr);
  void setInventory(const ModelInventory& inv);
  void clear();
  TensorTableModel* tensorModel() const { return m_model; }
  TensorFilterProxy* proxy() const { return m_proxy; }
  QTableView* table() const { return m_table; }

  void setFilter(const QString& text, bool regex, const QString& role);
  QJsonObject saveState() const;
  void restoreState(const QJsonObject& o);

 private:
  void applyFilter();
  void updateCount();

  TensorTableModel* m_model;
  TensorFilterProxy* m_proxy;
  QLabel* m_summary;
  QTableWidget* m_roles;
  QLineEdit* m_filter;
  QCheckBox* m_regex;
  QComboBox* m_role;
  QSpinBox* m_layerFilter;
  QSpinBox* m_expertFilter;
  QLabel* m_count;
  QTableView* m_table;
};
