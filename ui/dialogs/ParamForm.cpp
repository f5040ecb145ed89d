#include "ParamForm.h"

#include <QCheckBox>
#include <QComboBox>
#include <QFormLayout>
#include <QJsonArray>
#include <QLabel>
#include <QLineEdit>
#include <QRegularExpression>
#include <QToolButton>
#include <QVBoxLayout>
#include <algorithm>
#include <climits>
#include <cmath>

namespace {

QString textOf(const QJsonValue& v) {
  if (v.isString()) return v.toString();
  if (v.isBool()) return v.toBool() ? QStringLiteral("true") : QStringLiteral("false");
  if (v.isDouble()) {
    const double d = v.toDouble();
    if (std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9.007199254740992e15) return QString::number(qint64(d));
    return QString::number(d, 'g', 12);
  }
  if (v.isArray()) {
    QStringList items;
    for (const QJsonValue& e : v.toArray()) items << textOf(e);
    return items.join(QStringLiteral(","));
  }
  return {};
}

// "max_new" -> "Max new"
QString labelOf(const QString& name) {
  QString s = name;
  s.replace(QLatin1Char('_'), QLatin1Char(' '));
  if (!s.isEmpty()) s[0] = s[0].toUpper();
  return s;
}

}  // namespace

ParamForm::ParamForm(QWidget* parent) : QWidget(parent) {
  auto* top = new QVBoxLayout(this);
  top->setContentsMargins(0, 0, 0, 0);
  m_main = new QFormLayout;
  top->addLayout(m_main);
  auto* toggle = new QToolButton;
  toggle->setObjectName(QStringLiteral("paramFormMore"));
  toggle->setText(tr("More settings"));
  toggle->setCheckable(true);
  toggle->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
  toggle->setArrowType(Qt::RightArrow);
  toggle->setAutoRaise(true);
  top->addWidget(toggle);
  m_moreBox = new QWidget;
  m_more = new QFormLayout(m_moreBox);
  m_more->setContentsMargins(12, 0, 0, 0);
  m_moreBox->setVisible(false);
  top->addWidget(m_moreBox);
  connect(toggle, &QToolButton::toggled, this, [this, toggle](bool on) {
    toggle->setArrowType(on ? Qt::DownArrow : Qt::RightArrow);
    m_moreBox->setVisible(on);
  });
}

QJsonObject ParamForm::methodSchema(const QJsonObject& hello, const QString& method) {
  for (const QJsonValue& m : hello.value(QLatin1String("schema")).toArray())
    if (m.toObject().value(QLatin1String("name")).toString() == method) return m.toObject();
  return {};
}

bool ParamForm::build(const QJsonObject& schema, const QJsonObject& enums, const QStringList& primary) {
  for (QFormLayout* l : {m_main, m_more})
    while (l->rowCount() > 0) l->removeRow(0);
  m_fields.clear();
  m_order.clear();
  const QJsonArray params = schema.value(QLatin1String("params")).toArray();
  QList<Field> fields;
  for (const QJsonValue& v : params) {
    const QJsonObject o = v.toObject();
    Field f;
    f.name = o.value(QLatin1String("name")).toString();
    f.type = o.value(QLatin1String("type")).toString();
    f.help = o.value(QLatin1String("help")).toString();
    f.def = o.value(QLatin1String("default"));
    f.required = o.value(QLatin1String("required")).toBool();
    for (const QJsonValue& c : o.value(QLatin1String("choices")).toArray()) f.allowed << c.toString();
    const QString values = o.value(QLatin1String("values")).toString();
    if (!values.isEmpty())
      for (const QJsonValue& c : enums.value(values).toArray()) f.allowed << c.toString();
    if (f.name.isEmpty() || f.type == QLatin1String("object") || f.type == QLatin1String("any")) continue;
    fields << f;
  }
  // Primary ones first, in the caller's order; the rest in the registry's order.
  std::stable_sort(fields.begin(), fields.end(), [&](const Field& a, const Field& b) {
    const int ia = primary.indexOf(a.name), ib = primary.indexOf(b.name);
    return (ia < 0 ? INT_MAX : ia) < (ib < 0 ? INT_MAX : ib);
  });
  for (Field& f : fields) {
    f.editor = makeEditor(f);
    f.editor->setObjectName(QStringLiteral("param_") + f.name);
    f.editor->setToolTip(f.help);
    auto* label = new QLabel(labelOf(f.name) + (f.required ? QStringLiteral(" *:") : QStringLiteral(":")));
    label->setToolTip(f.help);
    (primary.isEmpty() || primary.contains(f.name) ? m_main : m_more)->addRow(label, f.editor);
    m_order << f.name;
    m_fields.insert(f.name, f);
  }
  emit changed();
  return !schema.isEmpty();
}

QWidget* ParamForm::makeEditor(Field& f) {
  if (f.type == QLatin1String("bool")) {
    auto* c = new QCheckBox(f.help);
    c->setChecked(f.def.toBool());
    connect(c, &QCheckBox::toggled, this, &ParamForm::changed);
    return c;
  }
  if (!f.allowed.isEmpty() && f.type != QLatin1String("string_list")) {
    auto* c = new QComboBox;
    if (f.def.isNull() || f.def.isUndefined()) c->addItem(tr("(default)"), QString());
    for (const QString& a : f.allowed) c->addItem(a, a);
    c->setCurrentIndex(qMax(0, c->findData(textOf(f.def))));
    connect(c, &QComboBox::currentIndexChanged, this, &ParamForm::changed);
    return c;
  }
  auto* e = new QLineEdit;
  e->setText(textOf(f.def));
  QString hint = f.help;
  if (f.type == QLatin1String("string_list")) {
    hint += tr(" (comma-separated)");
    if (!f.allowed.isEmpty()) e->setToolTip(tr("one or more of: %1").arg(f.allowed.join(QStringLiteral(", "))));
  }
  if (f.def.isNull() || f.def.isUndefined()) e->setPlaceholderText(hint);
  connect(e, &QLineEdit::textChanged, this, &ParamForm::changed);
  return e;
}

QStringList ParamForm::fieldNames() const { return m_order; }

QString ParamForm::fieldType(const QString& name) const { return m_fields.value(name).type; }

QWidget* ParamForm::editor(const QString& name) const { return m_fields.value(name).editor; }

bool ParamForm::setValue(const QString& name, const QJsonValue& value) {
  auto it = m_fields.find(name);
  if (it == m_fields.end()) return false;
  if (auto* c = qobject_cast<QCheckBox*>(it->editor)) c->setChecked(value.toBool());
  else if (auto* b = qobject_cast<QComboBox*>(it->editor)) {
    const int i = b->findData(textOf(value));
    if (i < 0) return false;
    b->setCurrentIndex(i);
  } else if (auto* e = qobject_cast<QLineEdit*>(it->editor)) {
    e->setText(textOf(value));
  }
  return true;
}

QJsonValue ParamForm::read(const Field& f) const {
  if (auto* c = qobject_cast<QCheckBox*>(f.editor)) return c->isChecked();
  if (auto* b = qobject_cast<QComboBox*>(f.editor)) {
    const QString v = b->currentData().toString();
    return v.isEmpty() ? QJsonValue() : QJsonValue(v);
  }
  const auto* e = qobject_cast<QLineEdit*>(f.editor);
  const QString t = e ? e->text().trimmed() : QString();
  if (t.isEmpty()) return QJsonValue();
  if (f.type == QLatin1String("int")) {
    bool ok = false;
    const qint64 v = t.toLongLong(&ok);
    return ok ? QJsonValue(v) : QJsonValue();
  }
  if (f.type == QLatin1String("number")) {
    bool ok = false;
    const double v = t.toDouble(&ok);
    return ok && std::isfinite(v) ? QJsonValue(v) : QJsonValue();
  }
  if (f.type == QLatin1String("string_list")) {
    QJsonArray a;
    for (const QString& s : t.split(QLatin1Char(','), Qt::SkipEmptyParts))
      if (!s.trimmed().isEmpty()) a.append(s.trimmed());
    return a;
  }
  return t;
}

QJsonValue ParamForm::value(const QString& name) const {
  auto it = m_fields.constFind(name);
  return it == m_fields.constEnd() ? QJsonValue() : read(*it);
}

QJsonObject ParamForm::params() const {
  QJsonObject p;
  for (const QString& name : m_order) {
    const Field& f = m_fields[name];
    const QJsonValue v = read(f);
    if (v.isNull() || v.isUndefined()) continue;
    if (!f.def.isNull() && !f.def.isUndefined() && textOf(v) == textOf(f.def)) continue;  // the worker's default
    p[name] = v;
  }
  return p;
}

QStringList ParamForm::problems() const {
  QStringList out;
  for (const QString& name : m_order) {
    const Field& f = m_fields[name];
    const auto* e = qobject_cast<QLineEdit*>(f.editor);
    const bool empty = e ? e->text().trimmed().isEmpty() : false;
    if (f.required && empty) out << tr("%1: required").arg(name);
    else if (e && !empty && read(f).isNull())
      out << tr("%1: %2").arg(name, f.type == QLatin1String("int") ? tr("an integer") : tr("a number"));
  }
  return out;
}
