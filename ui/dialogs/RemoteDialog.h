// RemoteDialog: "Connect to a GPU server" (docs/remote.md, docs/gui.md). The user types an ssh destination
// (a host, user@host or a Host alias of ~/.ssh/config), extra ssh options, the razor program on the server and
// the server workspace; "Check" runs `ssh ... razor worker --probe --workspace W` (RemoteHost::probeArguments())
// in the background and shows what came back: reachable or not (ssh's exit code and last stderr lines, with a
// hint when the key or agent was refused: ssh runs in BatchMode, never with a password), the server's host name,
// razor version and protocol, whether the workspace is usable, the GPUs and the running session workers.
// "Connect" is enabled only after a check that succeeded with the same protocol and a usable workspace, and
// only while the fields are those that were checked. The values are saved (RemoteHost::save) on Connect and
// restored when the dialog opens.
//
// Installing razor (docs/bundle.md): when the check finds no razor on the server (exit 127) or one that speaks
// another protocol, the dialog offers to install this release's portable bundle there: "Install razor" uploads
// razor-<version>-linux-x86_64.tar.gz through ssh's stdin (RemoteHost::installArguments), the server unpacks it
// into ~/.local/razor-<version> (never replacing anything), and the razor field becomes the installed razor, which
// is checked at once. The archive is bundlePath() when set, else findLocalBundle(), else the user picks it.
//
// The probe is one QProcess with a timeout (checkTimeout(), default 30 s); the GUI thread never waits on it.
// A newer check, an edit of the fields or closing the dialog supersede a running one (its answer is dropped,
// the process killed).
#pragma once
#include <QDialog>
#include <QJsonObject>
#include <QPointer>

#include "RemoteHost.h"

class QLabel;
class QLineEdit;
class QProcess;
class QPushButton;
class QTimer;

class RemoteDialog : public QDialog {
  Q_OBJECT
 public:
  // The rows of the check's result (resultText()).
  enum Row { ReachableRow, ServerRow, VersionRow, WorkspaceRow, GpusRow, SessionsRow };

  explicit RemoteDialog(QWidget* parent = nullptr);
  ~RemoteDialog() override;

  // The fields as a RemoteHost (the ssh program is the one given to setHost(), default "ssh").
  RemoteHost host() const;
  void setHost(const RemoteHost& host);

  // The QSettings the dialog restores from and saves to (organization "razor", application "razor-workbench").
  static RemoteHost savedHost();
  static void saveHost(const RemoteHost& host);

  void setCheckTimeout(int ms);
  int checkTimeout() const { return m_timeoutMs; }

  // Runs the probe (superseding a running one). checkFinished() follows, always asynchronously.
  void check();
  bool isChecking() const { return m_checking; }
  bool checkOk() const { return m_checkOk; }      // the last check passed and the fields were not edited since
  QJsonObject probe() const { return m_probe; }   // the last probe line (empty when none came)
  QString message() const;                        // the summary line above the results
  QString resultText(Row row) const;
  QPushButton* checkButton() const { return m_checkButton; }
  QPushButton* connectButton() const { return m_connectButton; }
  // The install offer (after a check that found no razor, or another protocol).
  QPushButton* installButton() const { return m_installButton; }
  bool installOffered() const { return m_installOffered; }
  bool isInstalling() const { return m_installing; }
  // Uploads and unpacks the bundle (superseding a running check); installFinished() follows, asynchronously.
  void install();
  void setBundlePath(const QString& path) { m_bundlePath = path; }
  QString bundlePath() const { return m_bundlePath; }
  // The folder on the server the bundle is unpacked in ("~/.local": the server's home).
  void setInstallDir(const QString& dir) { m_installDir = dir; }
  QString installDir() const { return m_installDir; }
  // This release's bundle next to the workbench: $RAZOR_BUNDLE, else razor-<version>-linux-x86_64.tar.gz in the
  // executable's folder, its parent (scripts/bundle.sh writes it into the build folder) or <prefix>/share/razor;
  // "" when none is there.
  static QString findLocalBundle();
  static QString bundleFileName();  // razor-<version>-linux-x86_64.tar.gz

  // Connect: refused unless the fields were checked successfully; saves them (savedHost()) and closes.
  void accept() override;

  // Extra ssh options as typed on one line: split on spaces, "double quotes" keep spaces (QProcess::splitCommand),
  // and joined back for display.
  static QStringList splitOptions(const QString& line);
  static QString joinOptions(const QStringList& options);
  // "HOST:WORKSPACE" (razor-workbench --remote): split at the first ':' after the host ("[v6]:/ws" works too);
  // an invalid host (and *error set) when either part is missing.
  static RemoteHost parseSpec(const QString& spec, QString* error = nullptr);

 signals:
  void checkFinished(bool ok, const QJsonObject& probe, const QString& message);
  // razorPath: the installed razor on the server ("" when the install failed).
  void installFinished(bool ok, const QString& razorPath, const QString& message);

 private:
  void onProbeEnded(quint64 generation, int exitCode, bool crashed, const QString& startError);
  void finishCheck(bool ok, const QString& message);
  void invalidate();      // the fields changed: the last check no longer applies
  void clearResults();
  void setRow(Row row, const QString& text, bool error = false);
  void setMessage(const QString& text, int level);  // 0 neutral, 1 ok, 2 error
  void updateButtons();
  void abandonProcess();
  void onInstallEnded(quint64 generation, int exitCode, bool crashed, const QString& startError);
  void setOffer(bool offer);

  QLineEdit* m_hostEdit = nullptr;
  QLineEdit* m_optionsEdit = nullptr;
  QLineEdit* m_razorEdit = nullptr;
  QLineEdit* m_workspaceEdit = nullptr;
  QPushButton* m_checkButton = nullptr;
  QPushButton* m_connectButton = nullptr;
  QPushButton* m_installButton = nullptr;
  QLabel* m_message = nullptr;
  QLabel* m_rows[6] = {};

  QString m_sshProgram = QStringLiteral("ssh");
  QPointer<QProcess> m_process;
  QTimer* m_timer = nullptr;
  quint64 m_generation = 0;
  int m_timeoutMs = 30000;
  bool m_checking = false;
  bool m_checkOk = false;
  bool m_filling = false;  // setHost() is writing the fields
  bool m_installing = false;
  bool m_installOffered = false;
  QString m_bundlePath;
  QString m_installDir = QStringLiteral("~/.local");
  QJsonObject m_probe;
  RemoteHost m_checked;    // the host the last check ran against
};
