// RemoteHost: a GPU server the workbench drives through OpenSSH (docs/remote.md). Only what the user typed is
// kept (host, extra ssh options, the remote razor and workspace): authentication is the user's own ssh config,
// keys and agent; ssh runs with BatchMode=yes, so it never asks for (and we never store) a password.
//
// Every remote command is one string run by the server's shell, so each word is quoted with shellQuote().
#pragma once
#include <QJsonObject>
#include <QProcess>
#include <QSettings>
#include <QString>
#include <QStringList>

struct RemoteHost {
  QString host;                     // an ssh destination: "gpu-box", "me@10.0.0.5", a Host alias of ~/.ssh/config
  QStringList sshOptions;           // extra ssh arguments before the host ("-p", "2222", "-F", "file", ...)
  QString razor = QStringLiteral("razor");  // the razor program on the server
  QString workspace;                // the server folder the workers run in (models, outputs); sessions live there
  QString sshProgram = defaultSshProgram();

  // $RAZOR_SSH (a wrapper around ssh, e.g. one that adds a jump host), else "ssh".
  static QString defaultSshProgram() { return qEnvironmentVariable("RAZOR_SSH", QStringLiteral("ssh")); }

  bool isValid() const { return !host.trimmed().isEmpty() && !workspace.trimmed().isEmpty(); }
  QString label() const { return host + QLatin1Char(':') + workspace; }

  // ssh's arguments to run `words` (quoted) on the server: the options every connection gets (BatchMode,
  // keep-alives that notice a dead link within ~15 s, no tty, compression when `compress`), the user's options,
  // the host, "--", the command.
  QStringList sshArguments(const QStringList& words, bool compress = false) const;
  // `razor worker --connect` for a pool slot ("cpu", "gpu0", ...) with the worker's role flags.
  QStringList workerArguments(const QString& slot, const QStringList& roleArgs) const;
  // `razor worker --probe --workspace W` (RemoteDialog's reachability and version check).
  QStringList probeArguments() const;
  // ssh's arguments to run `razor <args>` in the server's workspace (relative paths are the workspace's, as for
  // the session workers), and the same started in `p` (program: sshProgram; its stdout and stderr are ssh's).
  QStringList razorArguments(const QStringList& args) const;
  void startRazor(QProcess* p, const QStringList& args) const;

  // ssh's arguments to install a portable bundle (scripts/bundle.sh, docs/bundle.md) that ssh's stdin carries:
  // the server's sh unpacks it into a temporary folder below `dir` ("~" and "~/..." are the server's home, a
  // relative dir is below it), checks that its bin/razor runs and says "razor <version>", and renames it to
  // dir/razor-<version>; it prints "razor-installed <absolute path of bin/razor>". A dir/razor-<version> already
  // there is kept: used when its razor says that version, else an error (exit 3) that names it; nothing is ever
  // replaced. Exits 4 (the archive is not that version's bundle) or 5 (its razor does not run there: glibc older
  // than the bundle's floor...) with a message on stderr, the temporary removed.
  QStringList installArguments(const QString& version, const QString& dir = QStringLiteral("~/.local")) const;

  static QString shellQuote(const QString& word);

  void save(QSettings& s) const;  // under the group "remote"
  static RemoteHost load(QSettings& s);
  QJsonObject toJson() const;     // {host, ssh_options, razor, workspace} (a workspace file's "remote")
  static RemoteHost fromJson(const QJsonObject& o);
};
