#include "recover/rollouts_file.h"

#include "util/atomic_file.h"
#include "util/json_limits.h"

namespace razor::recover {

using nlohmann::json;

std::string rollout_line(const rollout& r) {
  json j;
  j["pid"] = r.pid;
  j["k"] = r.k;
  j["prompt_ids"] = r.prompt_ids;
  j["gen_ids"] = r.gen_ids;
  j["finish_reason"] = r.finish_reason;
  j["correct"] = r.correct;
  return dump_json(j);
}

status write_rollouts(const std::vector<rollout>& rs, const std::string& path) {
  atomic_writer w;
  RAZOR_TRY(w.open(path));
  for (auto& r : rs) {
    const std::string line = rollout_line(r) + "\n";
    RAZOR_TRY(w.write(line.data(), line.size()));
  }
  return w.commit();
}

namespace {

status line_error(const std::string& path, size_t line, const std::string& what) {
  return make_error(errc::bad_format, path + ":" + std::to_string(line) + ": " + what);
}

result<std::vector<int32_t>> ids_of(const json& j, const char* key, int64_t vocab, const std::string& path, size_t line) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return line_error(path, line, std::string(key) + " must be an array of token ids");
  std::vector<int32_t> v;
  v.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    const json& e = (*it)[i];
    if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() >= vocab)
      return line_error(path, line, std::string(key) + "[" + std::to_string(i) + "] is not a token id in [0, " +
                                        std::to_string(vocab) + ")");
    v.push_back(int32_t(e.get<int64_t>()));
  }
  return v;
}

}  // namespace

result<std::vector<rollout>> read_rollouts(const std::string& path, int64_t vocab, size_t max_lines) {
  RAZOR_ASSIGN_OR_RETURN(std::string text, read_text_file(path, size_t(1) << 34));
  return parse_rollouts(text, path, vocab, max_lines);
}

result<std::vector<rollout>> parse_rollouts(std::string_view text, const std::string& path, int64_t vocab,
                                            size_t max_lines) {
  std::vector<rollout> out;
  size_t pos = 0, line = 0;
  json_limits lim;
  lim.max_bytes = size_t(64) << 20;
  lim.max_depth = 4;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view l(text.data() + pos, end - pos);
    pos = end + 1;
    ++line;
    if (l.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    if (out.size() >= max_lines)
      return line_error(path, line, "more than " + std::to_string(max_lines) + " rollouts");
    RAZOR_ASSIGN_OR_RETURN(json j, parse_json(l, path + ":" + std::to_string(line), lim));
    if (!j.is_object()) return line_error(path, line, "not a JSON object");
    rollout r;
    for (const char* key : {"pid", "k"}) {
      auto it = j.find(key);
      if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() < 0)
        return line_error(path, line, std::string(key) + " must be a non-negative integer");
      (std::string(key) == "pid" ? r.pid : r.k) = it->get<int64_t>();
    }
    RAZOR_ASSIGN_OR_RETURN(r.prompt_ids, ids_of(j, "prompt_ids", vocab, path, line));
    RAZOR_ASSIGN_OR_RETURN(r.gen_ids, ids_of(j, "gen_ids", vocab, path, line));
    auto fr = j.find("finish_reason");
    if (fr == j.end() || !fr->is_string() || (*fr != "stop" && *fr != "length" && *fr != "text"))
      return line_error(path, line, "finish_reason must be \"stop\", \"length\" or \"text\"");
    r.finish_reason = fr->get<std::string>();
    auto c = j.find("correct");
    if (c != j.end()) {
      if (!c->is_null() && !c->is_boolean()) return line_error(path, line, "correct must be null, true or false");
      r.correct = *c;
    }
    if (r.prompt_ids.empty()) return line_error(path, line, "prompt_ids is empty");
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace razor::recover
