#include "ModelView.h"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QSpinBox>
#include <QLineEdit>
#include <QLocale>
#include <QSplitter>
#include <QTableView>
#include <QTableWidget>
#include <QVBoxLayout>

#include "TensorTableModel.h"

namespace {
QString human(double n) {
  if (n >= 1e9) return QString::number(n / 1e9, 'f', 2) + QStringLiteral(" B");
  if (n >= 1e6) return QString::number(n / 1e6, 'f', 2) + QStringLiteral(" M");
  if (n >= 1e3) return QString::number(n / 1e3, 'f', 1) + QStringLiteral(" K");
  return QString::number(n, 'f', 0);
}
QString bytesText(double b) {
  if (b >= 1e9) return QString::number(b / 1e9, 'f', 2) + QStringLiteral(" GB");
  if (b >= 1e6) return QString::number(b / 1e6, 'f', 2) + QStringLiteral(" MB");
  return QString::number(b / 1e3, 'f', 1) + QStringLiteral(" KB");
}
}  // namespace

ModelView::ModelView(QWidget* parent)
    : QWidget(parent), m_model(new TensorTableModel(this)), m_proxy(new TensorFilterProxy(this)) {
  m_proxy->setSourceModel(m_model);

  auto* left = new QWidget;
  auto* ll = new QVBoxLayout(left);
  ll->setContentsMargins(0, 0, 0, 0);
  m_summary = new QLabel;
  m_summary->setObjectName(QStringLiteral("modelSummary"));
  m_summary->setTextFormat(Qt::RichText);
  m_summary->setAlignment(Qt::AlignLeft | Qt::AlignTop);
  m_summary->setWordWrap(true);
  m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
  ll->addWidget(m_summary);
  auto* rolesTitle = new QLabel(tr("<b>Parameters by role</b>"));
  ll->addWidget(rolesTitle);
  m_roles = new QTableWidget(0, 4);
  m_roles->setHorizontalHeaderLabels({tr("Role"), tr("Tensors"), tr("Params"), tr("Share")});
  m_roles->verticalHeader()->hide();
  m_roles->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_roles->horizontalHeader()->setSectionResizeMode(0, QHeaderView::Stretch);
  m_roles->setSelectionBehavior(QAbstractItemView::SelectRows);
  ll->addWidget(m_roles, 1);

  auto* right = new QWidget;
  auto* rl = new QVBoxLayout(right);
  rl->setContentsMargins(0, 0, 0, 0);
  auto* bar = new QHBoxLayout;
  m_filter = new QLineEdit;
  m_filter->setObjectName(QStringLiteral("tensorFilter"));
  m_filter->setPlaceholderText(tr("Filter tensor names (substring, or a regular expression)"));
  m_filter->setClearButtonEnabled(true);
  m_regex = new QCheckBox(tr("Regex"));
  m_role = new QComboBox;
  m_role->setObjectName(QStringLiteral("roleFilter"));
  m_role->addItem(tr("All roles"), QString());
  m_count = new QLabel;
  m_layerFilter = new QSpinBox;
  m_layerFilter->setObjectName(QStringLiteral("layerFilter"));
  m_layerFilter->setRange(-1, 100000);
  m_layerFilter->setValue(-1);
  m_layerFilter->setSpecialValueText(tr("all layers"));
  m_layerFilter->setPrefix(tr("layer "));
  m_expertFilter = new QSpinBox;
  m_expertFilter->setObjectName(QStringLiteral("expertFilter"));
  m_expertFilter->setRange(-1, 100000);
  m_expertFilter->setValue(-1);
  m_expertFilter->setSpecialValueText(tr("all experts"));
  m_expertFilter->setPrefix(tr("expert "));
  m_expertFilter->setToolTip(tr("Tensors of this routed expert (fused tensors hold every expert of their layer)"));
  bar->addWidget(m_filter, 1);
  bar->addWidget(m_regex);
  bar->addWidget(m_role);
  bar->addWidget(m_layerFilter);
  bar->addWidget(m_expertFilter);
  bar->addWidget(m_count);
  rl->addLayout(bar);
  m_table = new QTableView;
  m_table->setModel(m_proxy);
  m_table->setSortingEnabled(true);
  m_table->sortByColumn(-1, Qt::AscendingOrder);
  m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
  m_table->setAlternatingRowColors(true);
  m_table->verticalHeader()->setDefaultSectionSize(20);
  m_table->verticalHeader()->hide();
  m_table->horizontalHeader()->setSectionResizeMode(TensorTableModel::Name, QHeaderView::Stretch);
  m_table->setWordWrap(false);
  m_table->setTextElideMode(Qt::ElideMiddle);  // the end of a tensor name is the informative part
  rl->addWidget(m_table, 1);

  auto* split = new QSplitter(Qt::Horizontal);
  split->addWidget(left);
  split->addWidget(right);
  split->setStretchFactor(0, 0);
  split->setStretchFactor(1, 1);
  split->setSizes({330, 800});
  auto* lay = new QHBoxLayout(this);
  lay->addWidget(split);

  connect(m_filter, &QLineEdit::textChanged, this, &ModelView::applyFilter);
  connect(m_regex, &QCheckBox::toggled, this, &ModelView::applyFilter);
  connect(m_role, &QComboBox::currentIndexChanged, this, &ModelView::applyFilter);
  connect(m_layerFilter, &QSpinBox::valueChanged, this, &ModelView::applyFilter);
  connect(m_expertFilter, &QSpinBox::valueChanged, this, &ModelView::applyFilter);
  clear();
}

void ModelView::clear() {
  m_model->setTensors({});
  m_summary->setText(tr("<i>No model open.</i> Use File &rarr; Open model..."));
  m_roles->setRowCount(0);
  updateCount();
}

void ModelView::setInventory(const ModelInventory& inv) {
  QStringList types;
  for (auto it = inv.layerTypes.cbegin(); it != inv.layerTypes.cend(); ++it)
    types << QStringLiteral("%1 %2").arg(it.value()).arg(QString(it.key()).replace(QLatin1Char('_'), QLatin1Char(' ')));
  QStringList dt;
  for (auto it = inv.dtypes.cbegin(); it != inv.dtypes.cend(); ++it) dt << it.key();
  const QString html =
      QStringLiteral(
          "<h3 style='margin:0'>%1</h3><table cellspacing=2>"
          "<tr><td>architecture</td><td><b>%2</b></td></tr>"
          "<tr><td>model type</td><td>%3 (adapter %4, GGUF %5)</td></tr>"
          "<tr><td>layers</td><td><b>%6</b> (%7)</td></tr>"
          "<tr><td>hidden / vocab</td><td>%8 / %9</td></tr>"
          "<tr><td>experts</td><td><b>%10</b> total, <b>%11</b> active, <b>%12</b> shared</td></tr>"
          "<tr><td>expert FFN</td><td>%13, %14 layout</td></tr>"
          "<tr><td>parameters</td><td><b>%15</b> (%16)</td></tr>"
          "<tr><td>on disk</td><td>%17 in %18 shard(s), %19</td></tr>"
          "<tr><td>tensors</td><td>%20</td></tr></table>")
          .arg(inv.path.section(QLatin1Char('/'), -1).toHtmlEscaped(), inv.architectures.join(QStringLiteral(", ")).toHtmlEscaped(),
               inv.modelType.toHtmlEscaped(), inv.adapter.toHtmlEscaped(),
               inv.ggufArch.isEmpty() ? QStringLiteral("-") : inv.ggufArch.toHtmlEscaped())
          .arg(inv.layers)
          .arg(types.join(QStringLiteral(", ")))
          .arg(inv.hiddenSize)
          .arg(inv.vocabSize)
          .arg(inv.expertsTotal)
          .arg(inv.expertsActive)
          .arg(inv.expertsShared)
          .arg(inv.moeIntermediate)
          .arg(inv.expertLayout.isEmpty() ? QStringLiteral("-") : inv.expertLayout)
          .arg(human(double(inv.paramsTotal)), QLocale::c().toString(inv.paramsTotal), bytesText(double(inv.bytesTotal)))
          .arg(inv.shards.size())
          .arg(dt.join(QStringLiteral(", ")))
          .arg(inv.tensors.size());
  m_summary->setText(html);

  QVector<QPair<QString, ModelInventory::RoleStat>> roles;
  for (auto it = inv.byRole.cbegin(); it != inv.byRole.cend(); ++it) roles.push_back({it.key(), it.value()});
  std::sort(roles.begin(), roles.end(), [](auto& a, auto& b) { return a.second.params > b.second.params; });
  m_roles->setRowCount(int(roles.size()));
  for (int i = 0; i < roles.size(); ++i) {
    const auto& [name, s] = roles[i];
    auto* a = new QTableWidgetItem(name);
    auto* b = new QTableWidgetItem(QString::number(s.tensors));
    auto* c = new QTableWidgetItem(human(double(s.params)));
    auto* d = new QTableWidgetItem(QString::number(inv.paramsTotal ? 100.0 * double(s.params) / double(inv.paramsTotal) : 0.0, 'f', 2) + QLatin1Char('%'));
    for (auto* it : {b, c, d}) it->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    c->setToolTip(QLocale::c().toString(s.params) + tr(" parameters, ") + bytesText(double(s.bytes)));
    m_roles->setItem(i, 0, a);
    m_roles->setItem(i, 1, b);
    m_roles->setItem(i, 2, c);
    m_roles->setItem(i, 3, d);
  }
  m_roles->resizeColumnsToContents();
  m_roles->horizontalHeader()->setSectionResizeMode(0, QHeaderView::Stretch);

  m_model->setTensors(inv.tensors);
  const QString keep = m_role->currentData().toString();
  m_role->blockSignals(true);
  m_role->clear();
  m_role->addItem(tr("All roles"), QString());
  for (const auto& r : m_model->roles()) m_role->addItem(r, r);
  m_role->setCurrentIndex(std::max(0, m_role->findData(keep)));
  m_role->blockSignals(false);
  applyFilter();
  m_table->resizeColumnToContents(TensorTableModel::Role);
  m_table->resizeColumnToContents(TensorTableModel::Shape);
}

void ModelView::setFilter(const QString& text, bool regex, const QString& role) {
  m_regex->setChecked(regex);
  m_role->setCurrentIndex(std::max(0, m_role->findData(role)));
  m_filter->setText(text);
  applyFilter();
}

void ModelView::applyFilter() {
  m_proxy->setNameFilter(m_filter->text(), m_regex->isChecked());
  m_proxy->setRoleFilter(m_role->currentData().toString());
  m_proxy->setLayerFilter(m_layerFilter->value());
  m_proxy->setExpertFilter(m_expertFilter->value());
  m_filter->setStyleSheet(m_proxy->nameFilterValid() ? QString() : QStringLiteral("QLineEdit { background: #5a2020; }"));
  m_filter->setToolTip(m_proxy->nameFilterValid() ? QString() : tr("Invalid regular expression"));
  updateCount();
}

void ModelView::updateCount() {
  m_count->setText(tr("%1 / %2 tensors").arg(m_proxy->rowCount()).arg(m_model->rowCount()));
}

QJsonObject ModelView::saveState() const {
  return {{QStringLiteral("filter"), m_filter->text()},
          {QStringLiteral("regex"), m_regex->isChecked()},
          {QStringLiteral("role"), m_role->currentData().toString()},
          {QStringLiteral("layer"), m_layerFilter->value()},
          {QStringLiteral("expert"), m_expertFilter->value()},
          {QStringLiteral("sort_column"), m_proxy->sortColumn()},
          {QStringLiteral("sort_descending"), m_proxy->sortOrder() == Qt::DescendingOrder}};
}

void ModelView::restoreState(const QJsonObject& o) {
  if (o.isEmpty()) return;
  const QString role = o.value(QStringLiteral("role")).toString();
  if (!role.isEmpty() && m_role->findData(role) < 0) m_role->addItem(role, role);
  m_layerFilter->setValue(o.value(QStringLiteral("layer")).toInt(-1));
  m_expertFilter->setValue(o.value(QStringLiteral("expert")).toInt(-1));
  setFilter(o.value(QStringLiteral("filter")).toString(), o.value(QStringLiteral("regex")).toBool(), role);
  const int col = o.value(QStringLiteral("sort_column")).toInt(-1);
  if (col >= 0)
    m_table->sortByColumn(col, o.value(QStringLiteral("sort_descending")).toBool() ? Qt::DescendingOrder : Qt::AscendingOrder);
}
