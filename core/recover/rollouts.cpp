#include "recover/rollouts.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "util/atomic_file.h"
#include "util/json_limits.h"

namespace razor::recover {

using nlohmann::json;

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
