#include "Workspace.h"

#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QSaveFile>

namespace {

QString toStored(const QDir& base, const QString& path) {
  if (path.isEmpty()) return path;
  const QString abs = QFileInfo(path).absoluteFilePath();
  const QString rel = base.relativeFilePath(abs);
  return rel.startsWith(QLatin1String("..")) ? abs : rel;
}

QString fromStored(const QDir& base, const QString& path) {
  if (path.isEmpty() || QDir::isAbsolutePath(path)) return path;
  return QDir::cleanPath(base.absoluteFilePath(path));
}

QJsonArray toArray(const QDir& base, const QStringList& l) {
  QJsonArray a;
  for (const auto& s : l) a.append(toStored(base, s));
  return a;
}

QStringList fromArray(const QDir& base, const QJsonValue& v) {
  QStringList out;
  for (const auto& s : v.toArray()) out << fromStored(base, s.toString());
  return out;
}

}  // namespace

QJsonObject Workspace::toJson(const QDir& base) const {
  QJsonObject o;
  o[QStringLiteral("format")] = QString::fromLatin1(kFormat);
  const bool server = !remote.isEmpty();  // server paths are kept as they are
  o[QStringLiteral("model")] = server ? modelPath : toStored(base, modelPath);
  o[QStringLiteral("recipes")] = toArray(base, recipes);
  o[QStringLiteral("active_recipe")] = activeRecipe;
  o[QStringLiteral("statistics")] = server ? QJsonArray::fromStringList(statistics) : toArray(base, statistics);
  o[QStringLiteral("jobs_folder")] = toStored(base, jobsFolder);
  o[QStringLiteral("result_files")] = toArray(base, resultFiles);
  o[QStringLiteral("views")] = QJsonObject{{QStringLiteral("open"), QJsonArray::fromStringList(openViews)},
                                           {QStringLiteral("current"), currentView},
                                           {QStringLiteral("state"), viewState}};
  o[QStringLiteral("window")] =
      QJsonObject{{QStringLiteral("geometry"), QString::fromLatin1(windowGeometry.toBase64())},
                  {QStringLiteral("state"), QString::fromLatin1(windowState.toBase64())}};
  if (server) o[QStringLiteral("remote")] = remote;
  return o;
}

Workspace Workspace::fromJson(const QJsonObject& o, const QDir& base, QString* error) {
  Workspace w;
  if (o.value(QStringLiteral("format")).toString() != QLatin1String(kFormat)) {
    if (error) *error = QStringLiteral("not a %1 file").arg(QLatin1String(kFormat));
    return w;
  }
  w.remote = o.value(QStringLiteral("remote")).toObject();
  const bool server = !w.remote.isEmpty();
  w.modelPath = server ? o.value(QStringLiteral("model")).toString() : fromStored(base, o.value(QStringLiteral("model")).toString());
  w.recipes = fromArray(base, o.value(QStringLiteral("recipes")));
  w.activeRecipe = o.value(QStringLiteral("active_recipe")).toObject();
  if (server)
    for (const auto& v : o.value(QStringLiteral("statistics")).toArray()) w.statistics << v.toString();
  else
    w.statistics = fromArray(base, o.value(QStringLiteral("statistics")));
  w.jobsFolder = fromStored(base, o.value(QStringLiteral("jobs_folder")).toString());
  w.resultFiles = fromArray(base, o.value(QStringLiteral("result_files")));
  const QJsonObject views = o.value(QStringLiteral("views")).toObject();
  for (const auto& v : views.value(QStringLiteral("open")).toArray()) w.openViews << v.toString();
  w.currentView = views.value(QStringLiteral("current")).toString();
  w.viewState = views.value(QStringLiteral("state")).toObject();
  const QJsonObject win = o.value(QStringLiteral("window")).toObject();
  w.windowGeometry = QByteArray::fromBase64(win.value(QStringLiteral("geometry")).toString().toLatin1());
  w.windowState = QByteArray::fromBase64(win.value(QStringLiteral("state")).toString().toLatin1());
  return w;
}

bool Workspace::save(const QString& path, QString* error) const {
  QSaveFile f(path);
  if (!f.open(QIODevice::WriteOnly)) {
    if (error) *error = path + QStringLiteral(": ") + f.errorString();
    return false;
  }
  const QDir base = QFileInfo(path).absoluteDir();
  f.write(QJsonDocument(toJson(base)).toJson(QJsonDocument::Indented));
  if (!f.commit()) {
    if (error) *error = path + QStringLiteral(": ") + f.errorString();
    return false;
  }
  return true;
}

bool Workspace::load(const QString& path, Workspace* out, QString* error) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) {
    if (error) *error = path + QStringLiteral(": ") + f.errorString();
    return false;
  }
  QJsonParseError pe;
  const auto doc = QJsonDocument::fromJson(f.readAll(), &pe);
  if (doc.isNull() || !doc.isObject()) {
    if (error) *error = path + QStringLiteral(": not valid JSON: ") + pe.errorString();
    return false;
  }
  QString err;
  *out = fromJson(doc.object(), QFileInfo(path).absoluteDir(), &err);
  if (!err.isEmpty()) {
    if (error) *error = path + QStringLiteral(": ") + err;
    return false;
  }
  return true;
}

bool Workspace::operator==(const Workspace& o) const {
  return modelPath == o.modelPath && recipes == o.recipes && activeRecipe == o.activeRecipe &&
         statistics == o.statistics && jobsFolder == o.jobsFolder && resultFiles == o.resultFiles &&
         openViews == o.openViews && currentView == o.currentView && viewState == o.viewState &&
         windowGeometry == o.windowGeometry && windowState == o.windowState && remote == o.remote;
}
