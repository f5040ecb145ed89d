#include "RemoteHost.h"

#include <QJsonArray>

#include "util/shell.h"

QString RemoteHost::shellQuote(const QString& word) {
  return QString::fromStdString(razor::shell_join({word.toStdString()}));  // quoted where a shell needs it
}

QStringList RemoteHost::sshArguments(const QStringList& words, bool compress) const {
  QStringList a = {QStringLiteral("-T"),
                   QStringLiteral("-o"), QStringLiteral("BatchMode=yes"),
                   QStringLiteral("-o"), QStringLiteral("ConnectTimeout=15"),
                   QStringLiteral("-o"), QStringLiteral("ServerAliveInterval=5"),
                   QStringLiteral("-o"), QStringLiteral("ServerAliveCountMax=3")};
  if (compress) a << QStringLiteral("-C");
  a << sshOptions << host << QStringLiteral("--");
  QStringList quoted;
  for (const QString& w : words) quoted << shellQuote(w);
  a << quoted.join(QLatin1Char(' '));
  return a;
}

QStringList RemoteHost::workerArguments(const QString& slot, const QStringList& roleArgs) const {
  return sshArguments(QStringList{razor, QStringLiteral("worker"), QStringLiteral("--connect"), QStringLiteral("--workspace"),
                                  workspace, QStringLiteral("--slot"), slot} +
                      roleArgs);
}

QStringList RemoteHost::probeArguments() const {
  return sshArguments({razor, QStringLiteral("worker"), QStringLiteral("--probe"), QStringLiteral("--workspace"), workspace});
}

QStringList RemoteHost::razorArguments(const QStringList& args) const {
  QStringList a = sshArguments(QStringList{razor} + args);
  a.last() = QStringLiteral("cd ") + shellQuote(workspace) + QStringLiteral(" && ") + a.last();
  return a;
}

void RemoteHost::startRazor(QProcess* p, const QStringList& args) const { p->start(sshProgram, razorArguments(args)); }

void RemoteHost::save(QSettings& s) const {
  s.beginGroup(QStringLiteral("remote"));
  s.setValue(QStringLiteral("host"), host);
  s.setValue(QStringLiteral("sshOptions"), sshOptions);
  s.setValue(QStringLiteral("razor"), razor);
  s.setValue(QStringLiteral("workspace"), workspace);
  s.endGroup();
}

RemoteHost RemoteHost::load(QSettings& s) {
  RemoteHost h;
  s.beginGroup(QStringLiteral("remote"));
  h.host = s.value(QStringLiteral("host")).toString();
  h.sshOptions = s.value(QStringLiteral("sshOptions")).toStringList();
  h.razor = s.value(QStringLiteral("razor"), h.razor).toString();
  h.workspace = s.value(QStringLiteral("workspace")).toString();
  s.endGroup();
  return h;
}

QJsonObject RemoteHost::toJson() const {
  return QJsonObject{{QStringLiteral("host"), host},
                     {QStringLiteral("ssh_options"), QJsonArray::fromStringList(sshOptions)},
                     {QStringLiteral("razor"), razor},
                     {QStringLiteral("workspace"), workspace}};
}

RemoteHost RemoteHost::fromJson(const QJsonObject& o) {
  RemoteHost h;
  h.host = o.value(QStringLiteral("host")).toString();
  for (const QJsonValue& v : o.value(QStringLiteral("ssh_options")).toArray()) h.sshOptions << v.toString();
  h.razor = o.value(QStringLiteral("razor")).toString(h.razor);
  h.workspace = o.value(QStringLiteral("workspace")).toString();
  return h;
}
