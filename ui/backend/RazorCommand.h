// RazorCommand: what is left of the process runner the workbench used before every job went through the worker
// pool (issue 17): where the `razor` program is. Kept for bench/bench_gui.cpp; new code calls
// WorkerPool::defaultProgram() itself.
#pragma once
#include <QString>

#include "WorkerPool.h"

struct RazorCommand {
  static QString defaultProgram() { return WorkerPool::defaultProgram(); }
};
