#include "util/json_limits.h"

#include <new>
#include <unordered_set>
#include <vector>

#include "util/atomic_file.h"
#include "util/printable.h"

namespace razor {

std::optional<size_t> json_depth_exceeded(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) return i;
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return std::nullopt;
}

namespace {

struct duplicate_key {
  std::string key;
};

}  // namespace

std::string json_error_detail(const char* what) {
  std::string_view w = what;
  if (auto p = w.find("parse error"); p != std::string_view::npos) {
    if (auto colon = w.find(": ", p); colon != std::string_view::npos) w.remove_prefix(colon + 2);
  } else if (auto b = w.find("] "); w.rfind("[json.exception.", 0) == 0 && b != std::string_view::npos) {
    w.remove_prefix(b + 2);
  }
  return printable(w, 240);
}

result<nlohmann::json> parse_json(std::string_view text, const std::string& what, const json_limits& lim) {
  if (text.size() > lim.max_bytes)
    return make_error(lim.code, what + ": " + std::to_string(text.size()) + " bytes of JSON, more than the limit of " +
                                    std::to_string(lim.max_bytes));
  if (auto at = json_depth_exceeded(text, lim.max_depth))
    return make_error(lim.code, what + ": JSON nested deeper than " + std::to_string(lim.max_depth) +
                                    " levels at byte " + std::to_string(*at));
  try {
    if (!lim.unique_keys) return nlohmann::json::parse(text.begin(), text.end());
    // One set of keys per open object; the key event comes before its value.
    std::vector<std::unordered_set<std::string>> open;
    nlohmann::json::parser_callback_t cb = [&open](int, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
      using ev_t = nlohmann::json::parse_event_t;
      if (ev == ev_t::object_start) {
        open.emplace_back();
      } else if (ev == ev_t::object_end) {
        if (!open.empty()) open.pop_back();
      } else if (ev == ev_t::key && !open.empty() && parsed.is_string()) {
        if (!open.back().insert(parsed.get_ref<const std::string&>()).second)
          throw duplicate_key{parsed.get<std::string>()};
      }
      return true;
    };
    return nlohmann::json::parse(text.begin(), text.end(), cb);
  } catch (const duplicate_key& d) {
    return make_error(lim.code, what + ": key '" + printable(d.key) +
                                    "' appears twice in one object (which one counts is undefined in JSON)");
  } catch (const nlohmann::json::parse_error& e) {
    return make_error(lim.code, what + ": not valid JSON at byte " + std::to_string(e.byte > 0 ? e.byte - 1 : 0) +
                                    ": " + json_error_detail(e.what()));
  } catch (const std::bad_alloc&) {
    return make_error(lim.code, what + ": " + std::to_string(text.size()) + " bytes of JSON do not fit in memory");
  } catch (const std::exception& e) {
    return make_error(lim.code, what + ": cannot be parsed as JSON (" + printable(e.what()) + ")");
  }
}

result<nlohmann::json> read_json_file(const std::string& path, const json_limits& lim) {
  RAZOR_ASSIGN_OR_RETURN(std::string text, read_text_file(path, lim.max_bytes));
  return parse_json(text, path, lim);
}

}  // namespace razor
