#include "MainWindow.h"

#include <QLabel>

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
  setWindowTitle("Razor Workbench");
  setCentralWidget(new QLabel("Razor Workbench"));
}
