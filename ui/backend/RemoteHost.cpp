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

namespace {
// The server side of installArguments(): POSIX sh, $1 the folder, $2 the version, the archive on stdin.
const char* kInstallScript = R"sh(set -eu
dir=$1; v=$2
case $dir in "~") dir=$HOME ;; "~/"*) dir=$HOME/${dir#"~/"} ;; esac
case $dir in /*) ;; *) dir=$HOME/$dir ;; esac
final=$dir/razor-$v
if [ -e "$final" ] || [ -L "$final" ]; then
  if [ -x "$final/bin/razor" ] && [ "$("$final/bin/razor" --version 2>/dev/null)" = "razor $v" ]; then
    echo "razor-installed $final/bin/razor"; exit 0
  fi
  echo "razor-install: $final already exists and holds no working razor $v: not replaced (move it away first)" >&2
  exit 3
fi
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.razor-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if ! tar -xzf - -C "$tmp"; then echo "razor-install: the upload is not a complete .tar.gz" >&2; exit 4; fi
if [ ! -x "$tmp/razor-$v/bin/razor" ]; then echo "razor-install: the archive holds no razor-$v/bin/razor" >&2; exit 4; fi
if ! got=$("$tmp/razor-$v/bin/razor" --version 2>&1); then
  echo "razor-install: the bundle's razor does not run on $(uname -n): $got" >&2; exit 5
fi
if [ "$got" != "razor $v" ]; then echo "razor-install: the bundle's razor says "$got", not "razor $v"" >&2; exit 4; fi
mv -T "$tmp/razor-$v" "$final"
echo "razor-installed $final/bin/razor"
)sh";
}  // namespace

QStringList RemoteHost::installArguments(const QString& version, const QString& dir) const {
  return sshArguments({QStringLiteral("sh"), QStringLiteral("-c"), QString::fromLatin1(kInstallScript),
                       QStringLiteral("razor-install"), dir, version});
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
