#include "recover/rollouts.h"

#include <algorithm>
#include <filesystem>
#include <set>

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
    if (fr == j.end() || !fr->is_string() || (*fr != "stop" && *fr != "length"))
      return line_error(path, line, "finish_reason must be \"stop\" or \"length\"");
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

result<prompt_set> pick_prompts(const std::vector<int32_t>& stream, int n, int len) {
  if (n <= 0 || len <= 0) return make_error(errc::invalid_argument, "prompts and prompt length must be positive");
  if (stream.size() < size_t(len))
    return make_error(errc::invalid_argument, "the text gives " + std::to_string(stream.size()) +
                                                  " tokens, fewer than one prompt of " + std::to_string(len));
  prompt_set ps;
  ps.stream_tokens = stream.size();
  const size_t span = stream.size() - size_t(len);
  for (int i = 0; i < n; ++i) {
    const size_t off = size_t((unsigned __int128)(i) * span / unsigned(n));
    ps.offsets.push_back(off);
    ps.prompts.emplace_back(stream.begin() + ptrdiff_t(off), stream.begin() + ptrdiff_t(off + size_t(len)));
  }
  return ps;
}

std::vector<int32_t> eos_ids(const std::string& model_dir, const model_config& cfg) {
  std::set<int32_t> ids;
  auto take = [&](const json& j) {
    if (!j.is_object()) return;
    auto it = j.find("eos_token_id");
    if (it == j.end()) return;
    auto add = [&](const json& v) {
      if (v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < cfg.vocab_size)
        ids.insert(int32_t(v.get<int64_t>()));
    };
    if (it->is_array())
      for (auto& v : *it) add(v);
    else
      add(*it);
  };
  take(cfg.raw);
  take(cfg.text);
  const std::string gen = model_dir + "/generation_config.json";
  std::error_code ec;
  if (std::filesystem::is_regular_file(gen, ec)) {
    json_limits lim;
    lim.max_bytes = 1u << 20;
    auto j = read_json_file(gen, lim);
    if (j.ok()) take(*j);
  }
  return {ids.begin(), ids.end()};
}

result<std::vector<rollout>> generate_rollouts(engine::weight_provider& wp, const std::vector<std::vector<int32_t>>& prompts,
                                               const rollout_options& opt) {
  RAZOR_TRY(check_sampling(opt.sampling));
  if (opt.k <= 0 || opt.max_new < 0 || opt.batch == 0)
    return make_error(errc::invalid_argument, "k and the batch must be positive, max_new not negative");
  RAZOR_ASSIGN_OR_RETURN(engine::model_dims d, engine::dims_for(wp));
  const size_t V = size_t(d.vocab);
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) return make_error(errc::invalid_argument, "prompt " + std::to_string(i) + " is empty");
    for (int32_t t : prompts[i])
      if (t < 0 || size_t(t) >= V)
        return make_error(errc::invalid_argument, "prompt " + std::to_string(i) + " holds token " + std::to_string(t) +
                                                      ", outside the vocabulary of " + std::to_string(V));
  }
  std::vector<rollout> rs;
  std::vector<rng> gens;
  for (size_t p = 0; p < prompts.size(); ++p)
    for (int k = 0; k < opt.k; ++k) {
      rollout r;
      r.pid = int64_t(p);
      r.k = k;
      r.prompt_ids = prompts[p];
      rs.push_back(std::move(r));
      gens.push_back(rollout_rng(opt.seed, int64_t(p), k));
    }
  const std::set<int32_t> eos(opt.eos.begin(), opt.eos.end());
  std::vector<bool> done(rs.size(), opt.max_new == 0);
  std::vector<std::pair<float, int32_t>> scratch;
  engine::run_options ro = opt.run;
  ro.progress = nullptr;
  for (int step = 0; step < opt.max_new; ++step) {
    std::vector<size_t> live;
    for (size_t i = 0; i < rs.size(); ++i)
      if (!done[i]) live.push_back(i);
    if (live.empty()) break;
    if (opt.progress && !opt.progress(double(step), double(opt.max_new),
                                      ("step " + std::to_string(step + 1) + ": " + std::to_string(live.size()) +
                                       " unfinished").c_str()))
      return make_error(errc::cancelled, "rollouts cancelled");
    for (size_t b0 = 0; b0 < live.size(); b0 += opt.batch) {
      const size_t nb = std::min(opt.batch, live.size() - b0);
      std::vector<std::vector<int32_t>> seqs;
      std::vector<size_t> last_row;  // the row of each sequence's last position in the batch
      size_t rows = 0;
      for (size_t j = 0; j < nb; ++j) {
        const rollout& r = rs[live[b0 + j]];
        std::vector<int32_t> s = r.prompt_ids;
        s.insert(s.end(), r.gen_ids.begin(), r.gen_ids.end());
        rows += s.size();
        last_row.push_back(rows - 1);
        seqs.push_back(std::move(s));
      }
      std::vector<int32_t> next(nb, -1);
      size_t j = 0;
      RAZOR_TRY(engine::forward(wp, d, seqs, [&](size_t t0, size_t n, const float* logits) {
        while (j < nb && last_row[j] < t0 + n) {
          if (last_row[j] >= t0)
            next[j] = sample_token(logits + (last_row[j] - t0) * V, V, opt.sampling, gens[live[b0 + j]], &scratch);
          ++j;
        }
        return true;
      }, ro));
      for (size_t q = 0; q < nb; ++q) {
        rollout& r = rs[live[b0 + q]];
        if (next[q] < 0) return make_error(errc::internal, "rollouts: no logits for a sequence");
        r.gen_ids.push_back(next[q]);
        if (eos.count(next[q])) {
          r.finish_reason = "stop";
          done[live[b0 + q]] = true;
        } else if (int(r.gen_ids.size()) >= opt.max_new) {
          done[live[b0 + q]] = true;
        }
      }
    }
  }
  if (opt.progress) opt.progress(double(opt.max_new), double(opt.max_new), "rollouts done");
  return rs;
}

}  // namespace razor::recover
