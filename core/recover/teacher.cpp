#include "recover/teacher.h"

#include <algorithm>

#include "model/safetensors.h"

namespace razor::recover {

result<teacher_report> score_teacher(engine::weight_provider& teacher, const std::vector<rollout>& rs,
                                     const std::string& out_path, const teacher_options& opt) {
  if (opt.topk <= 0) return make_error(errc::invalid_argument, "teacher top-k must be positive");
  RAZOR_ASSIGN_OR_RETURN(engine::model_dims d, engine::dims_for(teacher));
  const size_t V = size_t(d.vocab), K = std::min(size_t(opt.topk), V);
  teacher_report rep;
  rep.rows = rs.size();
  std::vector<size_t> kept;
  safetensors_writer w;
  for (size_t i = 0; i < rs.size(); ++i) {
    const rollout& r = rs[i];
    for (const auto* ids : {&r.prompt_ids, &r.gen_ids})
      for (int32_t t : *ids)
        if (t < 0 || size_t(t) >= V)
          return make_error(errc::invalid_argument, "rollout " + std::to_string(i) + " holds token " + std::to_string(t) +
                                                        ", outside the teacher's vocabulary of " + std::to_string(V));
    if (r.gen_ids.empty() || r.prompt_ids.empty() || r.prompt_ids.size() + r.gen_ids.size() > opt.max_len) {
      ++rep.dropped;
      continue;
    }
    kept.push_back(i);
    const int64_t T = int64_t(r.gen_ids.size());
    std::string name = "r";  // built by appending: GCC 12's -Wrestrict misfires on "r" + to_string(i) + ".idx"
    name += std::to_string(i);
    RAZOR_TRY(w.add(name + ".idx", dtype::i32, {T, int64_t(K)}));
    RAZOR_TRY(w.add(name + ".lp", dtype::f32, {T, int64_t(K)}));
  }
  w.set_metadata({{"format", kTeacherFormat}, {"k", std::to_string(K)}, {"rows", std::to_string(rs.size())},
                  {"model", opt.model}});
  RAZOR_TRY(w.begin(out_path));
  engine::run_options ro = opt.run;
  ro.progress = nullptr;
  std::vector<int32_t> idx;
  std::vector<float> lp;
  for (size_t b0 = 0; b0 < kept.size();) {
    if (opt.progress && !opt.progress(double(b0), double(kept.size()), "teacher top-k")) {
      w.abort();
      return make_error(errc::cancelled, out_path + ": cancelled; nothing was written under the final name");
    }
    // A batch of whole rollouts within batch_tokens (at least one).
    size_t b1 = b0, tokens = 0;
    std::vector<std::vector<int32_t>> seqs;
    std::vector<size_t> start;  // first row of each sequence
    while (b1 < kept.size()) {
      const rollout& r = rs[kept[b1]];
      const size_t n = r.prompt_ids.size() + r.gen_ids.size();
      if (b1 > b0 && tokens + n > opt.batch_tokens) break;
      start.push_back(tokens);
      tokens += n;
      std::vector<int32_t> s = r.prompt_ids;
      s.insert(s.end(), r.gen_ids.begin(), r.gen_ids.end());
      seqs.push_back(std::move(s));
      ++b1;
    }
    // Per sequence its [T, K] ids and log-probs, filled from the logits of rows plen - 1 .. plen - 2 + T.
    std::vector<std::vector<int32_t>> ids(seqs.size());
    std::vector<std::vector<float>> lps(seqs.size());
    for (size_t q = 0; q < seqs.size(); ++q) {
      const size_t T = rs[kept[b0 + q]].gen_ids.size();
      ids[q].resize(T * K);
      lps[q].resize(T * K);
    }
    size_t q = 0;
    RAZOR_TRY(engine::forward(teacher, d, seqs, [&](size_t t0, size_t n, const float* logits) {
      for (size_t row = t0; row < t0 + n; ++row) {
        while (q + 1 < seqs.size() && row >= start[q + 1]) ++q;
        const rollout& r = rs[kept[b0 + q]];
        const size_t pos = row - start[q], plen = r.prompt_ids.size();
        if (pos + 1 < plen) continue;
        const size_t t = pos + 1 - plen;
        if (t >= r.gen_ids.size()) continue;
        top_log_probs(logits + (row - t0) * V, V, K, ids[q].data() + t * K, lps[q].data() + t * K);
      }
      return true;
    }, ro));
    for (size_t s = 0; s < seqs.size(); ++s) {
      RAZOR_TRY(w.write(ids[s].data(), ids[s].size() * sizeof(int32_t)));
      RAZOR_TRY(w.write(lps[s].data(), lps[s].size() * sizeof(float)));
      rep.positions += ids[s].size() / K;
      ++rep.scored;
    }
    b0 = b1;
  }
  RAZOR_TRY(w.finish());
  if (opt.progress) opt.progress(double(kept.size()), double(kept.size()), "teacher top-k");
  return rep;
}

}  // namespace razor::recover
