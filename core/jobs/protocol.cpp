#include "jobs/protocol.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "util/json_limits.h"
#include "util/printable.h"

namespace razor::jobs {

using nlohmann::json;

namespace {

status proto_error(std::string msg) { return make_error(errc::protocol, std::move(msg)); }

// A JSON number that is an exact integer within kMaxRequestId in magnitude (ids may arrive as 7 or 7.0 from
// JavaScript-like clients). Anything else is no id: 2^64-1 is not answered as -1, 1e300 is not undefined behaviour.
std::optional<int64_t> as_id(const json& v) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u <= uint64_t(kMaxRequestId)) return int64_t(u);
    return std::nullopt;
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i >= -kMaxRequestId && i <= kMaxRequestId) return i;
    return std::nullopt;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d >= -double(kMaxRequestId) && d <= double(kMaxRequestId) && d == std::floor(d)) return int64_t(d);
  }
  return std::nullopt;
}

}  // namespace

result<request> parse_request(std::string_view line, std::optional<int64_t>* id_out) {
  if (id_out) id_out->reset();
  // Bounded: a line nested 200,000 deep would overflow the stack of whatever copies or prints the DOM.
  json_limits lim;
  lim.max_bytes = size_t(kMaxLineBytes);
  lim.code = errc::protocol;
  auto parsed = parse_json(line, "the line", lim);
  if (!parsed.ok()) return parsed.error();
  json& j = *parsed;
  if (!j.is_object()) return proto_error("the line is JSON but not an object");
  std::optional<int64_t> id;
  if (auto it = j.find("id"); it != j.end()) {
    id = as_id(*it);
    if (id_out) *id_out = id;
    if (!id && !it->is_null())
      return proto_error("\"id\" " + printable(it->dump(), 64) + " is not an integer within +-" +
                         std::to_string(kMaxRequestId));
  }
  auto t = j.find("t");
  if (t == j.end() || !t->is_string()) return proto_error("the object has no string field \"t\"");
  request r;
  const std::string& type = t->get_ref<const std::string&>();
  if (type == "shutdown") {
    r.kind = request_kind::shutdown;
    return r;
  }
  static const std::pair<const char*, request_kind> with_id[] = {{"req", request_kind::req},
                                                                 {"cancel", request_kind::cancel},
                                                                 {"attach", request_kind::attach},
                                                                 {"forget", request_kind::forget},
                                                                 {"kill", request_kind::kill}};
  auto kind = std::find_if(std::begin(with_id), std::end(with_id), [&](auto& k) { return type == k.first; });
  if (kind == std::end(with_id)) return proto_error("unknown message type \"" + type + "\"");
  if (!id) return proto_error("\"" + type + "\" needs an integer field \"id\"");
  r.id = *id;
  r.kind = kind->second;
  if (r.kind != request_kind::req) return r;
  auto m = j.find("method");
  if (m == j.end() || !m->is_string() || m->get_ref<const std::string&>().empty())
    return proto_error("\"req\" needs a non-empty string field \"method\"");
  r.method = m->get<std::string>();
  if (auto p = j.find("params"); p != j.end() && !p->is_null()) {
    if (!p->is_object()) return proto_error("\"params\" must be an object");
    r.params = std::move(*p);
  }
  return r;
}

std::string encode_request(const request& r) {
  switch (r.kind) {
    case request_kind::shutdown:
      return encode_line({{"t", "shutdown"}});
    case request_kind::cancel:
      return encode_line({{"t", "cancel"}, {"id", r.id}});
    case request_kind::attach:
      return encode_line({{"t", "attach"}, {"id", r.id}});
    case request_kind::forget:
      return encode_line({{"t", "forget"}, {"id", r.id}});
    case request_kind::kill:
      return encode_line({{"t", "kill"}, {"id", r.id}});
    case request_kind::req:
      break;
  }
  return encode_line({{"t", "req"}, {"id", r.id}, {"method", r.method}, {"params", r.params}});
}

json hello_message(const json& gpus, const std::vector<std::string>& methods, const std::string& role) {
  return {{"t", "hello"},   {"proto", kProtocolVersion}, {"version", RAZOR_VERSION},
          {"pid", int64_t(getpid())}, {"role", role}, {"gpus", gpus},
          {"methods", methods}, {"max_line", kMaxLineBytes}};
}

json progress_message(int64_t id, double done, double total, std::string_view what) {
  return {{"t", "progress"}, {"id", id}, {"done", done}, {"total", total}, {"what", std::string(what)}};
}

json log_message(std::optional<int64_t> id, std::string_view level, std::string_view msg) {
  json j = {{"t", "log"}, {"id", nullptr}, {"level", std::string(level)}, {"msg", std::string(msg)}};
  if (id) j["id"] = *id;
  return j;
}

json artifact_message(int64_t id, const artifact& a) {
  json j = {{"t", "artifact"}, {"id", id}, {"path", a.path}, {"kind", a.kind}, {"dtype", a.dtype},
            {"shape", a.shape}};
  for (auto& [k, v] : a.extra.items())
    if (!j.contains(k)) j[k] = v;
  return j;
}

json result_message(int64_t id, const json& res, double seconds) {
  return {{"t", "result"}, {"id", id}, {"result", res}, {"seconds", seconds}};
}

json error_message(std::optional<int64_t> id, std::string_view code, std::string_view message) {
  json j = {{"t", "error"}, {"id", nullptr}, {"code", std::string(code)}, {"message", std::string(message)}};
  if (id) j["id"] = *id;
  return j;
}

json error_message(std::optional<int64_t> id, const status& st) {
  return error_message(id, errc_name(st.code()), st.message());
}

std::string encode_line(const json& message) {
  auto dump = [](const json& v) { return v.dump(-1, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace); };
  if (!message.is_object()) return dump(message);
  // "t" and "id" first, for people reading a session; the rest in key order.
  std::string s = "{";
  auto add = [&](const std::string& k, const json& v) {
    if (s.size() > 1) s += ',';
    s += dump(json(k));
    s += ':';
    s += dump(v);
  };
  if (auto t = message.find("t"); t != message.end()) add("t", *t);
  if (auto id = message.find("id"); id != message.end()) add("id", *id);
  for (auto& [k, v] : message.items())
    if (k != "t" && k != "id") add(k, v);
  return s + "}";
}

const std::vector<std::string>& error_code_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
#define X(name, num, text) \
  if (errc::name != errc::ok) v.push_back(#name);
    RAZOR_ERROR_CODES(X)
#undef X
#define X(name, text) v.push_back(#name);
    RAZOR_PROTOCOL_ERRORS(X)
#undef X
    return v;
  }();
  return names;
}

bool is_error_code(std::string_view name) {
  auto& v = error_code_names();
  return std::find(v.begin(), v.end(), name) != v.end();
}

// ---- progress throttle ----
std::optional<progress_throttle::value> progress_throttle::offer(double done, double total, std::string_view what,
                                                                 clock::time_point now) {
  value v{done, total, std::string(what)};
  if (!sent_any_ || now - last_ >= interval_) {
    sent_any_ = true;
    last_ = now;
    pending_.reset();
    return v;
  }
  pending_ = std::move(v);
  return std::nullopt;
}

std::optional<progress_throttle::value> progress_throttle::flush_due(clock::time_point now) {
  if (!pending_ || now - last_ < interval_) return std::nullopt;
  last_ = now;
  auto v = std::move(pending_);
  pending_.reset();
  return v;
}

std::optional<progress_throttle::value> progress_throttle::take_pending() {
  auto v = std::move(pending_);
  pending_.reset();
  if (v) last_ = clock::now();
  return v;
}

}  // namespace razor::jobs
