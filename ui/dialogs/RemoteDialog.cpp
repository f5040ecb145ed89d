#include "RemoteDialog.h"

#include <QCoreApplication>
#include <QDialogButtonBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QJsonArray>
#include <QJsonDocument>
#include <QLabel>
#include <QLineEdit>
#include <QProcess>
#include <QPushButton>
#include <QSettings>
#include <QTimer>
#include <QVBoxLayout>

#include "jobs/protocol_version.h"  // header-only: the protocol version both sides must speak

namespace {

constexpr qint64 kMaxCapture = 1 << 20;  // a probe line is ~1 kB; a chatty login shell must not grow us unbounded
constexpr int kStderrLines = 4;          // the last lines of ssh's stderr shown on a failure

const char* kErrorStyle = "color: #b3261e;";
const char* kOkStyle = "color: #1b6e20;";

QSettings remoteSettings() { return QSettings(QStringLiteral("razor"), QStringLiteral("razor-workbench")); }

bool sameHost(const RemoteHost& a, const RemoteHost& b) {
  return a.host == b.host && a.sshOptions == b.sshOptions && a.razor == b.razor && a.workspace == b.workspace &&
         a.sshProgram == b.sshProgram;
}

QString lastLines(const QByteArray& text, int n) {
  QStringList lines;
  for (const QString& l : QString::fromLocal8Bit(text).split(QLatin1Char('\n'))) {
    const QString t = l.trimmed();
    if (!t.isEmpty()) lines << t;
  }
  return lines.mid(qMax(0, int(lines.size()) - n)).join(QLatin1Char('\n'));
}

// The probe line among whatever the server's shell printed (rc files may print before it).
QJsonObject findProbe(const QByteArray& out) {
  QJsonObject found;
  for (const QByteArray& line : out.split('\n')) {
    const QByteArray t = line.trimmed();
    if (!t.startsWith('{')) continue;
    const QJsonDocument d = QJsonDocument::fromJson(t);
    if (d.isObject() && d.object().value(QLatin1String("t")).toString() == QLatin1String("probe")) found = d.object();
  }
  return found;
}

// Keeps the last kMaxCapture bytes of p's stdout and stderr in its properties razorOut / razorErr.
void captureOutput(QProcess* p, QObject* context) {
  QObject::connect(p, &QProcess::readyReadStandardOutput, context, [p] {
    QByteArray out = p->property("razorOut").toByteArray() + p->readAllStandardOutput();
    if (out.size() > kMaxCapture) out = out.right(kMaxCapture);
    p->setProperty("razorOut", out);
  });
  QObject::connect(p, &QProcess::readyReadStandardError, context, [p] {
    QByteArray err = p->property("razorErr").toByteArray() + p->readAllStandardError();
    if (err.size() > kMaxCapture) err = err.right(kMaxCapture);
    p->setProperty("razorErr", err);
  });
}

QString gib(double bytes) { return QStringLiteral("%1 GiB").arg(bytes / (1024.0 * 1024.0 * 1024.0), 0, 'f', 1); }

}  // namespace

RemoteDialog::RemoteDialog(QWidget* parent) : QDialog(parent), m_timer(new QTimer(this)) {
  setWindowTitle(tr("Connect to a GPU server"));
  setObjectName(QStringLiteral("RemoteDialog"));
  m_timer->setSingleShot(true);

  auto* intro = new QLabel(tr("The workers run on the server through ssh, with your own ssh keys, agent and "
                              "~/.ssh/config (never a password). Jobs go on there if the link drops; the "
                              "workbench re-attaches them when it reconnects."));
  intro->setWordWrap(true);

  m_hostEdit = new QLineEdit;
  m_hostEdit->setObjectName(QStringLiteral("host"));
  m_hostEdit->setPlaceholderText(tr("gpu-box, me@10.0.0.5 or a Host of ~/.ssh/config"));
  m_optionsEdit = new QLineEdit;
  m_optionsEdit->setObjectName(QStringLiteral("sshOptions"));
  m_optionsEdit->setPlaceholderText(tr("optional, e.g. -p 2222 -J jump-host"));
  m_razorEdit = new QLineEdit;
  m_razorEdit->setObjectName(QStringLiteral("razor"));
  m_razorEdit->setPlaceholderText(QStringLiteral("razor"));
  m_razorEdit->setToolTip(tr("The razor program on the server. A non-interactive ssh shell may not have your "
                             "login PATH: give the full path if the check says it was not found."));
  m_workspaceEdit = new QLineEdit;
  m_workspaceEdit->setObjectName(QStringLiteral("workspace"));
  m_workspaceEdit->setPlaceholderText(tr("required: a writable folder on the server, e.g. /data/razor"));
  m_workspaceEdit->setToolTip(tr("The server folder the workers run in: relative model and output paths are "
                                 "below it, and the session workers keep their state in its .razor/ folder."));
  auto* fields = new QFormLayout;
  fields->addRow(tr("Server (ssh destination):"), m_hostEdit);
  fields->addRow(tr("Extra ssh options:"), m_optionsEdit);
  fields->addRow(tr("razor on the server:"), m_razorEdit);
  fields->addRow(tr("Workspace on the server:"), m_workspaceEdit);

  m_checkButton = new QPushButton(tr("Check"));
  m_checkButton->setObjectName(QStringLiteral("check"));
  m_checkButton->setToolTip(tr("Runs `razor worker --probe` on the server through ssh"));
  m_message = new QLabel(tr("Check the server before connecting."));
  m_message->setObjectName(QStringLiteral("message"));
  m_message->setWordWrap(true);
  m_message->setTextInteractionFlags(Qt::TextSelectableByMouse);
  m_installButton = new QPushButton(tr("Install razor %1 there").arg(QStringLiteral(RAZOR_VERSION)));
  m_installButton->setObjectName(QStringLiteral("install"));
  m_installButton->setToolTip(tr("Uploads this release's portable bundle (%1) through ssh and unpacks it in "
                                 "~/.local/razor-%2 on the server (no root needed; nothing there is replaced), "
                                 "then checks the installed razor.")
                                  .arg(bundleFileName(), QStringLiteral(RAZOR_VERSION)));
  m_installButton->setVisible(false);
  auto* checkRow = new QHBoxLayout;
  checkRow->addWidget(m_checkButton, 0, Qt::AlignTop);
  checkRow->addWidget(m_message, 1);
  checkRow->addWidget(m_installButton, 0, Qt::AlignTop);

  auto* results = new QGroupBox(tr("Server"));
  auto* rl = new QFormLayout(results);
  const QString names[] = {tr("Reachable:"), tr("Host name:"), tr("razor:"), tr("Workspace:"), tr("GPUs:"),
                           tr("Sessions:")};
  for (int i = 0; i < 6; ++i) {
    m_rows[i] = new QLabel;
    m_rows[i]->setWordWrap(true);
    m_rows[i]->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_rows[i]->setMinimumWidth(380);
    rl->addRow(names[i], m_rows[i]);
  }

  auto* buttons = new QDialogButtonBox;
  m_connectButton = buttons->addButton(tr("Connect"), QDialogButtonBox::AcceptRole);
  m_connectButton->setObjectName(QStringLiteral("connect"));
  buttons->addButton(QDialogButtonBox::Cancel);
  connect(buttons, &QDialogButtonBox::accepted, this, &RemoteDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, this, &RemoteDialog::reject);

  auto* lay = new QVBoxLayout(this);
  lay->addWidget(intro);
  lay->addLayout(fields);
  lay->addLayout(checkRow);
  lay->addWidget(results, 1);
  lay->addWidget(buttons);

  for (QLineEdit* e : {m_hostEdit, m_optionsEdit, m_razorEdit, m_workspaceEdit})
    connect(e, &QLineEdit::textChanged, this, &RemoteDialog::invalidate);
  connect(m_checkButton, &QPushButton::clicked, this, &RemoteDialog::check);
  connect(m_installButton, &QPushButton::clicked, this, &RemoteDialog::install);
  connect(m_timer, &QTimer::timeout, this, [this] {
    if (!m_process) return;
    const QByteArray err = m_process->property("razorErr").toByteArray();
    abandonProcess();
    m_timer->stop();
    QString msg = tr("No answer from %1 within %2 s: the server is unreachable (firewall, VPN, wrong port?) or its "
                     "login is slow. ssh was stopped.")
                      .arg(m_checked.host)
                      .arg(m_timeoutMs / 1000.0, 0, 'g', 3);
    const QString tail = lastLines(err, kStderrLines);
    setRow(ReachableRow, tail.isEmpty() ? tr("no answer") : tr("no answer; ssh said:\n%1").arg(tail), true);
    finishCheck(false, msg);
  });

  resize(640, 560);
  setHost(savedHost());
  clearResults();
  updateButtons();
}

RemoteDialog::~RemoteDialog() { abandonProcess(); }

QStringList RemoteDialog::splitOptions(const QString& line) { return QProcess::splitCommand(line); }

QString RemoteDialog::joinOptions(const QStringList& options) {
  QStringList out;
  for (QString o : options) {
    if (o.isEmpty() || o.contains(QLatin1Char(' ')) || o.contains(QLatin1Char('"')) || o.contains(QLatin1Char('\t'))) {
      o.replace(QLatin1Char('"'), QStringLiteral("\"\"\""));  // splitCommand: three quotes are one literal quote
      o = QLatin1Char('"') + o + QLatin1Char('"');
    }
    out << o;
  }
  return out.join(QLatin1Char(' '));
}

RemoteHost RemoteDialog::parseSpec(const QString& spec, QString* error) {
  RemoteHost h;
  const QString t = spec.trimmed();
  const int close = t.indexOf(QLatin1Char(']'));  // user@[fe80::1]:/ws
  const int colon = t.indexOf(QLatin1Char(':'), close >= 0 ? close : 0);
  if (colon > 0) {
    h.host = t.left(colon).trimmed();
    h.workspace = t.mid(colon + 1).trimmed();
    if (h.host.startsWith(QLatin1Char('[')) && h.host.endsWith(QLatin1Char(']'))) h.host = h.host.mid(1, h.host.size() - 2);
  }
  if (!h.isValid() && error)
    *error = QObject::tr("\"%1\": expected HOST:WORKSPACE, e.g. gpu-box:/data/razor").arg(spec);
  if (!h.isValid()) h = RemoteHost();
  return h;
}

RemoteHost RemoteDialog::host() const {
  RemoteHost h;
  h.host = m_hostEdit->text().trimmed();
  h.sshOptions = splitOptions(m_optionsEdit->text());
  const QString razor = m_razorEdit->text().trimmed();
  h.razor = razor.isEmpty() ? QStringLiteral("razor") : razor;
  h.workspace = m_workspaceEdit->text().trimmed();
  h.sshProgram = m_sshProgram;
  return h;
}

void RemoteDialog::setHost(const RemoteHost& host) {
  m_filling = true;
  m_sshProgram = host.sshProgram.isEmpty() ? QStringLiteral("ssh") : host.sshProgram;
  m_hostEdit->setText(host.host);
  m_optionsEdit->setText(joinOptions(host.sshOptions));
  m_razorEdit->setText(host.razor == QLatin1String("razor") ? QString() : host.razor);
  m_workspaceEdit->setText(host.workspace);
  m_filling = false;
  invalidate();
}

RemoteHost RemoteDialog::savedHost() {
  QSettings s = remoteSettings();
  return RemoteHost::load(s);
}

void RemoteDialog::saveHost(const RemoteHost& host) {
  QSettings s = remoteSettings();
  host.save(s);
}

void RemoteDialog::setCheckTimeout(int ms) { m_timeoutMs = qMax(1, ms); }

QString RemoteDialog::message() const { return m_message->text(); }

QString RemoteDialog::resultText(Row row) const { return m_rows[row]->text(); }

void RemoteDialog::setRow(Row row, const QString& text, bool error) {
  m_rows[row]->setText(text);
  m_rows[row]->setStyleSheet(error ? QLatin1String(kErrorStyle) : QString());
}

void RemoteDialog::setMessage(const QString& text, int level) {
  m_message->setText(text);
  m_message->setStyleSheet(level == 2 ? QLatin1String(kErrorStyle) : level == 1 ? QLatin1String(kOkStyle) : QString());
}

void RemoteDialog::clearResults() {
  for (int i = 0; i < 6; ++i) setRow(Row(i), QStringLiteral("\u2014"));
}

void RemoteDialog::updateButtons() {
  const bool checking = isChecking();
  for (QLineEdit* e : {m_hostEdit, m_optionsEdit, m_razorEdit, m_workspaceEdit}) e->setEnabled(!m_installing);
  m_installButton->setEnabled(!checking && !m_installing);
  m_installButton->setText(m_installing ? tr("Installing\u2026") : tr("Install razor %1 there").arg(QStringLiteral(RAZOR_VERSION)));
  m_checkButton->setEnabled(!checking && !m_installing);
  m_checkButton->setText(checking ? tr("Checking\u2026") : tr("Check"));
  const bool ready = m_checkOk && !checking && !m_installing && sameHost(host(), m_checked);
  m_connectButton->setEnabled(ready);
  m_connectButton->setToolTip(ready ? tr("Run the workbench's workers on %1").arg(m_checked.label())
                                    : tr("Check the server first: Connect needs a successful check of these "
                                         "fields (same protocol, usable workspace)."));
  // Enter checks until there is something to connect to.
  m_connectButton->setDefault(ready);
  m_checkButton->setDefault(!ready);
}

void RemoteDialog::invalidate() {
  if (m_filling) return;
  if (isChecking() && !sameHost(host(), m_checked)) {  // an edit during a check supersedes it
    ++m_generation;
    abandonProcess();
    m_timer->stop();
    m_checking = false;
    setMessage(tr("The fields changed during the check: check again."), 0);
  } else if (m_checkOk && !sameHost(host(), m_checked)) {
    setMessage(tr("The fields changed since the check: check again before connecting."), 0);
  } else if (m_checkOk) {
    setMessage(tr("Ready to connect to %1.").arg(m_checked.label()), 1);
  }
  updateButtons();
}

void RemoteDialog::abandonProcess() {
  QProcess* p = m_process;
  m_process = nullptr;
  if (!p) return;
  p->disconnect(this);
  // Never wait for it: orphan it, kill it, and let it delete itself once reaped.
  p->setParent(nullptr);
  connect(p, &QProcess::finished, p, &QObject::deleteLater);
  connect(p, &QProcess::errorOccurred, p, [p](QProcess::ProcessError e) {
    if (e == QProcess::FailedToStart) p->deleteLater();
  });
  if (p->state() == QProcess::NotRunning) p->deleteLater();
  else p->kill();
}

void RemoteDialog::check() {
  ++m_generation;
  abandonProcess();
  m_timer->stop();
  m_checkOk = false;
  m_installing = false;
  setOffer(false);
  m_checking = true;
  m_probe = QJsonObject();
  clearResults();
  const quint64 gen = m_generation;
  const RemoteHost h = host();
  m_checked = h;
  if (!h.isValid()) {
    const QString msg = h.host.isEmpty() ? tr("Enter the server: an ssh destination or a Host of ~/.ssh/config.")
                                         : tr("Enter the workspace: a folder on the server for models and outputs.");
    setMessage(tr("Checking\u2026"), 0);
    updateButtons();
    QTimer::singleShot(0, this, [this, gen, msg] {
      if (gen == m_generation) finishCheck(false, msg);
    });
    return;
  }

  auto* p = new QProcess(this);
  p->setProgram(h.sshProgram);
  p->setArguments(h.probeArguments());
  p->setStandardInputFile(QProcess::nullDevice());
  captureOutput(p, this);
  connect(p, &QProcess::finished, this, [this, gen](int code, QProcess::ExitStatus st) {
    onProbeEnded(gen, code, st == QProcess::CrashExit, QString());
  });
  connect(p, &QProcess::errorOccurred, this, [this, gen, p](QProcess::ProcessError e) {
    if (e == QProcess::FailedToStart) onProbeEnded(gen, -1, false, p->errorString());
  });
  m_process = p;
  setMessage(tr("Checking %1 \u2026").arg(h.label()), 0);
  updateButtons();
  m_timer->start(m_timeoutMs);
  p->start();
}

void RemoteDialog::onProbeEnded(quint64 generation, int exitCode, bool crashed, const QString& startError) {
  if (generation != m_generation || !m_process) return;
  QProcess* p = m_process;
  m_process = nullptr;
  m_timer->stop();
  // Whatever is still buffered (finished can arrive before the last readyRead was handled).
  const QByteArray out = p->property("razorOut").toByteArray() + p->readAllStandardOutput();
  const QByteArray err = p->property("razorErr").toByteArray() + p->readAllStandardError();
  p->disconnect(this);
  p->deleteLater();
  const RemoteHost& h = m_checked;

  if (!startError.isEmpty()) {
    setRow(ReachableRow, tr("no: %1 could not be started (%2)").arg(h.sshProgram, startError), true);
    finishCheck(false, tr("The ssh program \"%1\" could not be started: is OpenSSH installed?").arg(h.sshProgram));
    return;
  }
  const QString tail = lastLines(err, kStderrLines);
  const QJsonObject probe = findProbe(out);
  if (probe.isEmpty()) {
    QString row, msg;
    if (crashed) {
      row = tr("no: ssh ended abnormally");
      msg = tr("ssh ended abnormally before the server answered.");
    } else if (exitCode == 255) {  // ssh's own failure: connection, authentication, host key
      row = tr("no (ssh exit 255)");
      msg = tr("ssh could not log in to %1.").arg(h.host);
      if (err.contains("Permission denied"))
        msg += QLatin1Char(' ') +
               tr("The workbench uses your ssh keys and agent only (BatchMode: it never asks for a password). Check "
                  "that `ssh %1` logs in without a prompt: load the key with ssh-add, or name it with IdentityFile "
                  "in ~/.ssh/config.")
                   .arg(h.host);
      else if (err.contains("Host key verification failed"))
        msg += QLatin1Char(' ') + tr("The server's host key is not known here yet: connect once with `ssh %1` in a "
                                     "terminal to check and accept it.")
                                      .arg(h.host);
      else if (err.contains("Could not resolve hostname"))
        msg += QLatin1Char(' ') + tr("Check the name, or the Host entry in ~/.ssh/config.");
      else if (err.contains("Connection refused") || err.contains("timed out"))
        msg += QLatin1Char(' ') + tr("Check that the server is up and the port (-p in the ssh options).");
    } else if (exitCode == 127) {
      row = tr("yes, but razor was not found (exit 127)");
      msg = tr("\"%1\" was not found on the server. A non-interactive ssh shell may not have your login PATH: give "
               "the full path of razor, or install this release there (no root needed).")
                .arg(h.razor);
      setOffer(true);
    } else {
      row = tr("yes, but no probe answer (exit %1)").arg(exitCode);
      msg = tr("The server ran \"%1\" but it printed no probe line: is it a razor release with `worker --probe`?")
                .arg(h.razor);
    }
    if (!tail.isEmpty()) row += QLatin1Char('\n') + tail;
    setRow(ReachableRow, row, true);
    finishCheck(false, msg);
    return;
  }

  m_probe = probe;
  QStringList problems;
  setRow(ReachableRow, tr("yes (ssh %1)").arg(h.host), false);
  setRow(ServerRow, probe.value(QLatin1String("host")).toString(tr("(not reported)")));

  const int proto = probe.value(QLatin1String("proto")).toInt(-1);
  const QString version = probe.value(QLatin1String("version")).toString(tr("unknown"));
  const bool protoOk = proto == razor::jobs::kProtocolVersion;
  if (protoOk) {
    setRow(VersionRow, tr("%1, protocol %2").arg(version).arg(proto));
  } else {
    const QString v = tr("%1, protocol %2 \u2014 this workbench (%3) speaks protocol %4: install the same release "
                         "on both sides")
                          .arg(version)
                          .arg(proto)
                          .arg(QStringLiteral(RAZOR_VERSION))
                          .arg(razor::jobs::kProtocolVersion);
    setRow(VersionRow, v, true);
    problems << tr("razor on the server speaks protocol %1, this workbench %2: install the same release on both "
                   "sides (Install puts this one in %3/razor-%4 next to it).")
                    .arg(proto)
                    .arg(razor::jobs::kProtocolVersion)
                    .arg(m_installDir, QStringLiteral(RAZOR_VERSION));
    setOffer(true);
  }

  const bool wsOk = probe.value(QLatin1String("workspace_ok")).toBool();
  const QString ws = probe.value(QLatin1String("workspace")).toString(h.workspace);
  if (wsOk) {
    setRow(WorkspaceRow, tr("%1 (writable)").arg(ws));
  } else {
    QString note = probe.value(QLatin1String("workspace_note")).toString();
    if (note.isEmpty()) note = tr("%1: not usable").arg(ws);
    setRow(WorkspaceRow, note, true);
    problems << tr("Workspace: %1. Create it on the server, or choose another.").arg(note);
  }

  const QJsonArray gpus = probe.value(QLatin1String("gpus")).toArray();
  QStringList gpuLines;
  for (const QJsonValue& v : gpus) {
    const QJsonObject g = v.toObject();
    gpuLines << tr("%1: %2 \u2014 %3")
                    .arg(g.value(QLatin1String("index")).toInt())
                    .arg(g.value(QLatin1String("name")).toString(tr("unknown")), gib(g.value(QLatin1String("total_memory")).toDouble()));
  }
  if (gpuLines.isEmpty()) {
    const QString note = probe.value(QLatin1String("gpus_note")).toString();
    gpuLines << (note.isEmpty() ? tr("none (CPU jobs only)") : tr("none: %1 (CPU jobs only)").arg(note));
  }
  setRow(GpusRow, gpuLines.join(QLatin1Char('\n')));

  const QJsonArray sessions = probe.value(QLatin1String("sessions")).toArray();
  QStringList sessionLines;
  int alive = 0;
  for (const QJsonValue& v : sessions) {
    const QJsonObject s = v.toObject();
    const bool on = s.value(QLatin1String("alive")).toBool();
    alive += on ? 1 : 0;
    sessionLines << (on ? tr("%1: pid %2, running")
                        : tr("%1: pid %2, not running (stale lock)"))
                        .arg(s.value(QLatin1String("slot")).toString())
                        .arg(s.value(QLatin1String("pid")).toInteger());
  }
  setRow(SessionsRow, sessionLines.isEmpty() ? tr("none running") : sessionLines.join(QLatin1Char('\n')));

  if (!problems.isEmpty()) {
    finishCheck(false, problems.join(QLatin1Char(' ')));
    return;
  }
  QString msg = tr("Ready to connect to %1.").arg(h.label());
  if (alive == 1) msg += QLatin1Char(' ') + tr("A session worker already runs there; Connect re-attaches it.");
  else if (alive > 1) msg += QLatin1Char(' ') + tr("%1 session workers already run there; Connect re-attaches them.").arg(alive);
  finishCheck(true, msg);
}

void RemoteDialog::finishCheck(bool ok, const QString& message) {
  m_checking = false;
  m_checkOk = ok;
  setMessage(message, ok ? 1 : 2);
  updateButtons();
  emit checkFinished(ok, m_probe, message);
}

void RemoteDialog::accept() {
  if (!m_connectButton->isEnabled()) return;
  saveHost(host());
  QDialog::accept();
}

void RemoteDialog::setOffer(bool offer) {
  m_installOffered = offer;
  m_installButton->setVisible(offer);
}

QString RemoteDialog::bundleFileName() {
  return QStringLiteral("razor-%1-linux-x86_64.tar.gz").arg(QStringLiteral(RAZOR_VERSION));
}

QString RemoteDialog::findLocalBundle() {
  const QString env = qEnvironmentVariable("RAZOR_BUNDLE");
  if (!env.isEmpty()) return QFileInfo(env).isFile() ? QFileInfo(env).absoluteFilePath() : QString();
  const QDir exe(QCoreApplication::applicationDirPath());
  for (const QString& d : {exe.path(), exe.filePath(QStringLiteral("..")), exe.filePath(QStringLiteral("../share/razor"))}) {
    const QFileInfo f(QDir(d).filePath(bundleFileName()));
    if (f.isFile()) return f.canonicalFilePath();
  }
  return {};
}

void RemoteDialog::install() {
  if (m_installing) return;
  QString bundle = m_bundlePath.isEmpty() ? findLocalBundle() : m_bundlePath;
  if (bundle.isEmpty()) {
    bundle = QFileDialog::getOpenFileName(this, tr("The razor bundle to install on the server"), QString(),
                                          tr("razor bundle (%1);;All files (*)").arg(bundleFileName()));
    if (bundle.isEmpty()) return;
    m_bundlePath = bundle;
  }
  ++m_generation;
  abandonProcess();
  m_timer->stop();
  m_checking = false;
  m_checkOk = false;
  const quint64 gen = m_generation;
  const RemoteHost h = host();
  m_checked = h;
  m_installing = true;
  clearResults();
  updateButtons();
  const QFileInfo fi(bundle);
  if (!fi.isFile() || !h.isValid()) {
    const QString msg = !h.isValid() ? tr("Enter the server and the workspace first.")
                                     : tr("%1: no such file (build it with scripts/bundle.sh)").arg(bundle);
    QTimer::singleShot(0, this, [this, gen, msg] {
      if (gen == m_generation) onInstallEnded(gen, -2, false, msg);
    });
    return;
  }
  auto* p = new QProcess(this);
  p->setProgram(h.sshProgram);
  p->setArguments(h.installArguments(QStringLiteral(RAZOR_VERSION), m_installDir));
  p->setStandardInputFile(fi.absoluteFilePath());  // streamed by QProcess, never held in memory
  captureOutput(p, this);
  connect(p, &QProcess::finished, this, [this, gen](int code, QProcess::ExitStatus st) {
    onInstallEnded(gen, code, st == QProcess::CrashExit, QString());
  });
  connect(p, &QProcess::errorOccurred, this, [this, gen, p](QProcess::ProcessError e) {
    if (e == QProcess::FailedToStart)
      onInstallEnded(gen, -1, false, tr("The ssh program \"%1\" could not be started: %2").arg(m_checked.sshProgram, p->errorString()));
  });
  m_process = p;
  setMessage(tr("Uploading %1 (%2 MB) to %3 and unpacking it in %4/razor-%5 \u2026")
                 .arg(fi.fileName())
                 .arg(double(fi.size()) / 1e6, 0, 'f', 1)
                 .arg(h.host, m_installDir, QStringLiteral(RAZOR_VERSION)),
             0);
  p->start();
}

void RemoteDialog::onInstallEnded(quint64 generation, int exitCode, bool crashed, const QString& startError) {
  if (generation != m_generation) return;
  QByteArray out, err;
  if (QProcess* p = m_process) {
    m_process = nullptr;
    out = p->property("razorOut").toByteArray() + p->readAllStandardOutput();
    err = p->property("razorErr").toByteArray() + p->readAllStandardError();
    p->disconnect(this);
    p->deleteLater();
  }
  m_installing = false;
  QString path;
  for (const QByteArray& line : out.split('\n'))
    if (line.startsWith("razor-installed ")) path = QString::fromUtf8(line.mid(16)).trimmed();
  QString msg;
  if (!startError.isEmpty()) {
    msg = startError;
  } else if (crashed) {
    msg = tr("ssh ended abnormally during the install.");
  } else if (exitCode == 0 && !path.isEmpty()) {
    msg = tr("Installed razor %1 on %2: %3. Checking it\u2026").arg(QStringLiteral(RAZOR_VERSION), m_checked.host, path);
  } else if (exitCode == 255) {
    msg = tr("ssh could not log in to %1 to install razor.").arg(m_checked.host);
  } else {
    QStringList why;
    for (const QString& l : lastLines(err, kStderrLines).split(QLatin1Char('\n')))
      if (!l.isEmpty()) why << (l.startsWith(QLatin1String("razor-install: ")) ? l.mid(15) : l);
    msg = tr("The install on %1 failed (exit %2)%3").arg(m_checked.host).arg(exitCode)
              .arg(why.isEmpty() ? QStringLiteral(".") : QStringLiteral(": ") + why.join(QLatin1Char(' ')));
  }
  const bool ok = !path.isEmpty() && exitCode == 0 && startError.isEmpty() && !crashed;
  if (!ok) {
    setRow(ReachableRow, tr("install failed"), true);
    setMessage(msg, 2);
    updateButtons();
    emit installFinished(false, QString(), msg);
    return;
  }
  m_filling = true;  // the field change is ours, and a check follows
  m_razorEdit->setText(path);
  m_filling = false;
  setOffer(false);
  setMessage(msg, 1);
  updateButtons();
  emit installFinished(true, path, msg);
  check();
}
