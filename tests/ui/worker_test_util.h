// Helpers shared by the worker tests of test_ui.
#pragma once
#include <QDeadlineTimer>
#include <QDir>
#include <QElapsedTimer>
#include <QJsonObject>
#include <QStringList>
#include <QTest>
#include <functional>

namespace razor_test {

// Generous bounds: the tests run on a shared two-core machine where a process start can take seconds.
constexpr int kStartTimeoutMs = 60000;
constexpr int kJobTimeoutMs = 120000;

// Runs the event loop until pred() holds or timeout_ms passed; returns pred().
inline bool waitUntil(const std::function<bool()>& pred, int timeout_ms = kJobTimeoutMs) {
  QDeadlineTimer deadline(timeout_ms);
  while (!pred()) {
    if (deadline.hasExpired()) return pred();
    QTest::qWait(10);
  }
  return true;
}

// Entries of `dir` whose name contains ".partial-" (leftovers of the atomic writers), hidden ones included.
inline QStringList partialEntries(const QString& dir) {
  QStringList r;
  const auto list = QDir(dir).entryList(QDir::AllEntries | QDir::Hidden | QDir::System | QDir::NoDotAndDotDot);
  for (const QString& n : list)
    if (n.contains(QStringLiteral(".partial-"))) r << n;
  return r;
}

inline QString fakeWorker() { return QStringLiteral(RAZOR_FAKE_WORKER_EXE); }
inline QString razorCli() { return QStringLiteral(RAZOR_CLI_EXE); }

}  // namespace razor_test
