// ParamForm: a form for one worker method, built from the worker's hello ("schema": every method's params with
// type, default, help, required, allowed values; "enums": the enumerations those values name; core/jobs/methods.h).
// A param the registry gains appears here without a GUI change. One row per param: a combo box where the values
// are a fixed list or an enumeration, a check box for a bool, a line edit otherwise (ints and numbers validated,
// lists comma-separated); the default is shown. Params named as primary come first, in that order; the others
// go into a collapsed "More settings" section. Object-typed params have no row (set them in code).
//
// params() holds only what the user changed from the default (and what has no default but was filled in), so the
// worker's defaults stay the worker's: a default changed in the registry is taken without a GUI change.
#pragma once
#include <QHash>
#include <QJsonObject>
#include <QJsonValue>
#include <QStringList>
#include <QWidget>

class QFormLayout;

class ParamForm : public QWidget {
  Q_OBJECT
 public:
  explicit ParamForm(QWidget* parent = nullptr);

  // The method's entry of the hello's "schema" array and the hello's "enums". false (and an empty form) when the
  // hello has no such method.
  static QJsonObject methodSchema(const QJsonObject& hello, const QString& method);
  bool build(const QJsonObject& methodSchema, const QJsonObject& enums, const QStringList& primary = {});

  QStringList fieldNames() const;               // in the form's order
  bool hasField(const QString& name) const { return m_fields.contains(name); }
  QString fieldType(const QString& name) const;  // the schema's type ("path", "int", ...)
  QWidget* editor(const QString& name) const;    // the row's widget, nullptr when none
  // Sets a field (a string, number, bool or list); false when the form has no such field.
  bool setValue(const QString& name, const QJsonValue& value);
  // The field's current value in the schema's type (null when empty or not valid for its type).
  QJsonValue value(const QString& name) const;
  // What differs from the defaults (see the class comment).
  QJsonObject params() const;
  // Required params that are empty, and fields whose text is not valid for their type ("prompts: an integer").
  QStringList problems() const;

 signals:
  void changed();

 private:
  struct Field {
    QString name, type, help;
    QJsonValue def;
    bool required = false;
    QStringList allowed;  // choices, or the named enumeration's values
    QWidget* editor = nullptr;
  };
  QWidget* makeEditor(Field& f);
  QJsonValue read(const Field& f) const;

  QFormLayout *m_main = nullptr, *m_more = nullptr;
  QWidget* m_moreBox = nullptr;
  QStringList m_order;
  QHash<QString, Field> m_fields;
};
