// The error codes a job can end with, as the workbench compares and emits them: the names of the one table of
// each kind, RAZOR_PROTOCOL_ERRORS (core/jobs/protocol_version.h: the protocol's own and the client side's) and
// RAZOR_ERROR_CODES (core/util/status.h: razor::errc), never string literals of their own.
#pragma once
#include <QLatin1String>

#include "jobs/protocol_version.h"
#include "util/status.h"

namespace ErrorCode {
#define X(name, what) inline constexpr QLatin1String name{#name};
RAZOR_PROTOCOL_ERRORS(X)
#undef X
#define X(name, value, what) inline constexpr QLatin1String name{#name};
RAZOR_ERROR_CODES(X)
#undef X
}  // namespace ErrorCode
