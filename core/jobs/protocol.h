// The worker protocol (docs/protocol.md): JSON lines, one object per line, UTF-8, on the worker's stdin
// (requests) and its protocol descriptor (events; the original stdout, see worker.h).
//
//   worker -> client   {"t":"hello","proto":1,"version":"0.1.0","pid":123,"cuda":false,"gpus":[...],
//                        "methods":[...],"role":"cpu|gpu","max_line":16777216}
//   client -> worker   {"t":"req","id":7,"method":"quantize","params":{...}}
//                      {"t":"cancel","id":7}          {"t":"shutdown"}
//                      {"t":"attach","id":7}  {"t":"forget","id":7}  {"t":"kill","id":7}   (session workers)
//   worker -> client   {"t":"progress","id":7,"done":1.0,"total":4.0,"what":"..."}
//                      {"t":"log","id":7|null,"level":"info|warn|error","msg":"..."}
//                      {"t":"artifact","id":7,"path":"...","kind":"...","dtype":"...","shape":[...]}
//                      {"t":"result","id":7,"result":{...},"seconds":1.2}
//                      {"t":"error","id":7|null,"code":"cancelled","message":"..."}
//                      {"t":"gpu","time":..., "devices":[...]}          (unsolicited, about 1 per second)
//                      {"t":"bye"}                                      (last line before a clean exit)
#pragma once
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jobs/protocol_version.h"
#include "util/status.h"

namespace razor::jobs {

// ---- incoming (client -> worker) --------------------------------------------------------------------------
// attach / forget / kill are for session workers (`razor worker --listen`, docs/remote.md): attach replays a
// job's recorded events to this connection and subscribes it; forget drops a finished job's record; kill
// answers the running job "cancelled" and ends the worker at once (the remote form of SIGKILL).
enum class request_kind { req, cancel, shutdown, attach, forget, kill };

struct request {
  request_kind kind = request_kind::req;
  int64_t id = 0;
  std::string method;
  nlohmann::json params = nlohmann::json::object();
};

// Parses one line. Errors are errc::protocol with a message naming what is wrong; `id_out` receives the
// request's id when the line was JSON with an integer "id" (so that the error can be addressed to it).
result<request> parse_request(std::string_view line, std::optional<int64_t>* id_out = nullptr);
std::string encode_request(const request& r);

// ---- outgoing (worker -> client) --------------------------------------------------------------------------
struct artifact {
  std::string path;
  std::string kind;              // "checkpoint", "gguf", "summary", "h5", "file", "result", "endpoint" (path = a URL)
  std::string dtype;             // "" when not one tensor
  std::vector<int64_t> shape;    // empty when not one tensor
  nlohmann::json extra = nlohmann::json::object();  // small descriptive fields (bytes, tensors, ...)
};

nlohmann::json hello_message(const nlohmann::json& gpus, const std::vector<std::string>& methods,
                             const std::string& role);
nlohmann::json progress_message(int64_t id, double done, double total, std::string_view what);
nlohmann::json log_message(std::optional<int64_t> id, std::string_view level, std::string_view msg);
nlohmann::json artifact_message(int64_t id, const artifact& a);
nlohmann::json result_message(int64_t id, const nlohmann::json& result, double seconds);
// `code` is an errc name or a RAZOR_PROTOCOL_ERRORS name.
nlohmann::json error_message(std::optional<int64_t> id, std::string_view code, std::string_view message);
nlohmann::json error_message(std::optional<int64_t> id, const status& st);

// One line of the wire (no newline): invalid UTF-8 in strings is replaced, never thrown.
std::string encode_line(const nlohmann::json& message);

// Every error code a client can receive: the errc names (except "ok") and the protocol-level ones.
const std::vector<std::string>& error_code_names();
bool is_error_code(std::string_view name);

// ---- progress throttle ---------------------------------------------------------------------------------------
// At most one progress event per `interval` per job; the last value wins: a value that arrives too early is
// kept and sent by flush_due() once the interval has passed, or by take_pending() before the job's result.
class progress_throttle {
 public:
  using clock = std::chrono::steady_clock;
  explicit progress_throttle(clock::duration interval = std::chrono::milliseconds(100)) : interval_(interval) {}
  struct value {
    double done = 0, total = 0;
    std::string what;
  };
  // Returns the value to send now, or nothing (kept as pending).
  std::optional<value> offer(double done, double total, std::string_view what, clock::time_point now);
  // The pending value when the interval has passed since the last sent one.
  std::optional<value> flush_due(clock::time_point now);
  // The pending value, regardless of time (before the result).
  std::optional<value> take_pending();

 private:
  clock::duration interval_;
  clock::time_point last_{};
  bool sent_any_ = false;
  std::optional<value> pending_;
};

}  // namespace razor::jobs
