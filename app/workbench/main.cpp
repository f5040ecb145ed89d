// razor-workbench: the Qt desktop application.
//   razor-workbench [--model DIR] [--workspace FILE.razorproj] [--stats FILE]... [--recipe R] [--razor PATH]
//                   [--view ID] [--gl] [--screenshot DIR]
//                   [--remote HOST:WORKSPACE [--remote-razor PATH] [--ssh-option OPT]...]
// --remote starts connected to a GPU server (docs/remote.md): the workers run there through ssh, and --model /
// --stats are paths on the server (statistics are fetched into the local cache).
// --screenshot renders every view to DIR/<view>.png once the model and statistics are loaded, then exits
// (scripts/screenshots.sh runs it under xvfb-run with QT_QPA_PLATFORM=xcb so the OpenGL view renders).
#include <QApplication>
#include <QCommandLineParser>
#include <QSurfaceFormat>
#include <QTimer>
#include <cstdio>

#include "AllocationEditor.h"
#include "HeatmapView.h"
#include "MainWindow.h"
#include "RemoteDialog.h"

int main(int argc, char** argv) {
  QSurfaceFormat fmt;  // GL 3.3 core: Qt's GL paint engine and the ImGui OpenGL 3 backend both run on it
  fmt.setVersion(3, 3);
  fmt.setProfile(QSurfaceFormat::CoreProfile);
  QSurfaceFormat::setDefaultFormat(fmt);
  QApplication app(argc, argv);
  QApplication::setApplicationName(QStringLiteral("razor-workbench"));
  QApplication::setApplicationVersion(QStringLiteral(RAZOR_VERSION));

  QCommandLineParser cli;
  cli.setApplicationDescription(QStringLiteral("Razor Workbench: inspect, probe, allocate and compare MoE quantizations"));
  cli.addHelpOption();
  cli.addVersionOption();
  QCommandLineOption model(QStringLiteral("model"), QStringLiteral("Open a model directory."), QStringLiteral("DIR"));
  QCommandLineOption workspace(QStringLiteral("workspace"), QStringLiteral("Open a workspace (*.razorproj)."), QStringLiteral("FILE"));
  QCommandLineOption stats(QStringLiteral("stats"), QStringLiteral("Open a statistics file (probe .h5, GGUF imatrix, razor_quant_summary.json); repeatable."), QStringLiteral("FILE"));
  QCommandLineOption razor(QStringLiteral("razor"), QStringLiteral("The razor command-line program to run."), QStringLiteral("PATH"));
  QCommandLineOption recipe(QStringLiteral("recipe"), QStringLiteral("Recipe to edit in the allocation view (a path or a name in recipes/)."), QStringLiteral("FILE"));
  QCommandLineOption synthetic(QStringLiteral("synthetic-stats"), QStringLiteral("Add deterministic synthetic statistics of LAYERSxEXPERTS (demos, screenshots)."), QStringLiteral("LxE"));
  QCommandLineOption view(QStringLiteral("view"), QStringLiteral("View to show first (model, salience, allocation, ...)."), QStringLiteral("ID"));
  QCommandLineOption gl(QStringLiteral("gl"), QStringLiteral("Draw the salience heatmap through OpenGL with the ImGui HUD (when GL is usable)."));
  QCommandLineOption shot(QStringLiteral("screenshot"), QStringLiteral("Render every view to DIR/<view>.png and exit."), QStringLiteral("DIR"));
  QCommandLineOption remote(QStringLiteral("remote"), QStringLiteral("Run the workers on a GPU server through ssh: an ssh destination (or ~/.ssh/config Host) and a workspace folder there; --model and --stats are then server paths."), QStringLiteral("HOST:WORKSPACE"));
  QCommandLineOption remoteRazor(QStringLiteral("remote-razor"), QStringLiteral("The razor program on the server (default: razor)."), QStringLiteral("PATH"));
  QCommandLineOption sshOption(QStringLiteral("ssh-option"), QStringLiteral("An extra ssh argument (before the host); repeatable, e.g. --ssh-option=-p --ssh-option=2222."), QStringLiteral("OPT"));
  cli.addOptions({model, workspace, stats, recipe, synthetic, razor, view, gl, shot, remote, remoteRazor, sshOption});
  cli.process(app);

  RemoteHost remoteHost;
  if (cli.isSet(remote)) {
    QString err;
    remoteHost = RemoteDialog::parseSpec(cli.value(remote), &err);
    if (!remoteHost.isValid()) {
      std::fprintf(stderr, "razor-workbench: --remote %s\n", qPrintable(err));
      return 2;
    }
    if (cli.isSet(remoteRazor)) remoteHost.razor = cli.value(remoteRazor);
    remoteHost.sshOptions = cli.values(sshOption);
  }

  MainWindow w;
  if (cli.isSet(razor)) w.setRazorProgram(cli.value(razor));
  if (!cli.isSet(shot)) {  // screenshots need no workers
    if (remoteHost.isValid()) w.connectRemote(remoteHost);
    else w.startWorkers();
  }
  if (cli.isSet(workspace)) {
    QString err;
    if (!w.openWorkspace(cli.value(workspace), &err)) std::fprintf(stderr, "razor-workbench: %s\n", qPrintable(err));
  }
  if (cli.isSet(model)) w.openModel(cli.value(model));
  for (const QString& s : cli.values(stats)) {
    if (w.isRemote()) w.openRemoteStatistics(s);
    else w.openStatistics(s);
  }
  if (cli.isSet(synthetic)) {
    const QStringList le = cli.value(synthetic).split(QLatin1Char('x'));
    if (le.size() == 2 && le[0].toInt() > 0 && le[1].toInt() > 0)
      w.heatmapView()->addSource(syntheticHeatmapSource(le[0].toInt(), le[1].toInt()));
  }
  if (cli.isSet(recipe)) {
    QString err;
    if (!w.allocationEditor()->loadRecipe(cli.value(recipe), &err)) std::fprintf(stderr, "razor-workbench: %s\n", qPrintable(err));
  }
  if (cli.isSet(view)) w.showView(cli.value(view));
  if (cli.isSet(gl) || cli.isSet(shot)) w.heatmapView()->setUseOpenGL(true);  // no-op where GL is not usable
  w.show();

  if (cli.isSet(shot)) {
    const QString dir = cli.value(shot);
    bool done = false;
    auto take = [&w, &done, dir] {
      if (done) return;
      done = true;
      QTimer::singleShot(400, &w, [&w, dir] {
        const QStringList files = w.screenshotViews(dir);
        for (const auto& f : files) std::printf("%s\n", qPrintable(f));
        QApplication::exit(files.isEmpty() ? 1 : 0);
      });
    };
    QObject::connect(&w, &MainWindow::workspaceReady, &w, take);
    QObject::connect(&w, &MainWindow::modelFailed, &w, [](const QString& m) {
      std::fprintf(stderr, "razor-workbench: %s\n", qPrintable(m));
    });
    if (!w.isBusy()) QTimer::singleShot(0, &w, take);
    QTimer::singleShot(180000, &w, [] {
      std::fprintf(stderr, "razor-workbench: --screenshot timed out waiting for the model\n");
      QApplication::exit(2);
    });
  }
  return app.exec();
}
