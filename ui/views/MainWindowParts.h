// Private to the main window (MainWindow.cpp, MainWindowWorkers.cpp): the views and dialogs it holds, and which of
// the optional ones this build has (RAZOR_HAVE_WORKER_VIEWS, RAZOR_HAVE_REMOTE, RAZOR_HAVE_COMPARISON_VIEW).
#pragma once
#include "HeatmapGLWidget.h"
#include "ImGuiOverlay.h"
#include "HeatmapView.h"
#include "MethodCompareView.h"
#include "ModelView.h"
#include "RunsView.h"
#include <QStandardPaths>
#if __has_include("GpuPanel.h") && __has_include("JobsDock.h") && __has_include("ExportWizard.h") && \
    __has_include("WorkerPool.h")
#include <QDockWidget>
#include <QJsonArray>
#include "ExportWizard.h"
#include "GpuPanel.h"
#include "JobStore.h"
#include "JobsDock.h"
#include "JobsModel.h"
#include "RecoverDialog.h"
#include "RecoverRun.h"
#include "WorkerPool.h"
#define RAZOR_HAVE_WORKER_VIEWS 1
#if __has_include("RemoteDialog.h") && __has_include("RemoteFiles.h")
#include "RemoteDialog.h"
#include "RemoteFiles.h"
#include "EvaluateDialog.h"
#include "SlurmDialog.h"
#define RAZOR_HAVE_REMOTE 1
#endif
#endif
#if __has_include("ComparisonView.h")
#include "ComparisonView.h"
#include "ResultsModel.h"
#define RAZOR_HAVE_COMPARISON_VIEW 1
#endif
