// The worker protocol's version and its protocol-level error codes, header-only and dependency-free so that
// the Qt side (ui/, which links no core library) reads the same constants as the worker (docs/protocol.md).
#pragma once

namespace razor::jobs {

// Bumped on any incompatible change of a message; the hello carries it and the client refuses a mismatch.
inline constexpr int kProtocolVersion = 1;

// Error codes that are not razor::errc names (those are in RAZOR_ERROR_CODES, util/status.h): one table,
// read by the worker, the client, docs/protocol.md and the tests.
#define RAZOR_PROTOCOL_ERRORS(X)                                                                   \
  X(bad_request, "the line is not a valid request (not JSON, or a field is missing or mistyped)")  \
  X(unknown_method, "the worker has no such method")                                               \
  X(duplicate_id, "a request with this id is already queued or running")                          \
  X(busy, "the worker's queue is full")                                                            \
  X(shutting_down, "the worker is shutting down")                                                  \
  X(unknown_job, "the session worker has no record of this job (it was restarted, or the job was forgotten)")  \
  X(worker_crashed, "the worker process died while running the job (client side)")                 \
  X(disconnected, "the link to a session worker dropped; the job may still run there (client side)") \
  X(superseded, "a newer request with the same key replaced this one (client side)")                \
  X(no_worker, "no worker can run the job: none could be started, or none has a GPU (client side)")

// Request ids are integers of at most 2^53 - 1 in magnitude (exact in every JSON implementation, JavaScript's
// included); the worker answers a request with another id as a bad_request with id null.
inline constexpr long long kMaxRequestId = (1ll << 53) - 1;

// Longest line either side accepts (a request or an event); longer lines are discarded and reported.
inline constexpr long long kMaxLineBytes = 16ll << 20;

}  // namespace razor::jobs
