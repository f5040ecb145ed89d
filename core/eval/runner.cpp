#include "eval/runner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "eval/benchmarks.h"
#include "eval/provenance.h"
#include "util/atomic_file.h"
#include "util/strformat.h"
#include "util/json_limits.h"
#include "util/output_guard.h"
#include "util/paths.h"

namespace razor::eval {
namespace {

using json = nlohmann::json;

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string basename_of(const std::string& m) {
  size_t p = m.find_last_of('/');
  return p == std::string::npos ? m : m.substr(p + 1);
}

}  // namespace

std::string samples_path(const std::string& out) {
  std::string base = out;
  if (base.size() > 5 && base.compare(base.size() - 5, 5, ".json") == 0) base.resize(base.size() - 5);
  return base + ".samples.jsonl";
}

bench_summary summarize(const std::string& key, const std::vector<json>& records) {
  bench_summary s;
  s.key = key;
  for (const auto& r : records) {
    bool finished = r.value("finish_reason", "") != "length";
    bool correct = r.value("correct", false);
    ++s.n;
    s.n_finished += finished;
    s.correct += correct;
    s.correct_finished += correct && finished;
  }
  s.trunc = s.n - s.n_finished;
  s.acc = s.n ? 100.0 * s.correct / s.n : 0.0;
  s.acc_finished = s.n_finished ? 100.0 * s.correct_finished / s.n_finished : 0.0;
  return s;
}

json gate_entry(const std::string& bench, double acc, const json& targets, const std::string& model) {
  json g = {{"state", "no target"}};
  if (!targets.is_object() || !targets.contains("targets") || !targets["targets"].is_array()) return g;
  double points = targets.value("gate_points", 2.0);
  std::string m = lower(model), mb = lower(basename_of(model));
  for (const auto& t : targets["targets"]) {
    if (!t.is_object() || !t.contains("model") || !t["model"].is_string()) continue;
    std::string tm = lower(t["model"].get<std::string>());
    if (tm != m && lower(basename_of(tm)) != mb) continue;
    if (!t.contains("benchmarks") || !t["benchmarks"].is_object() || !t["benchmarks"].contains(bench) ||
        !t["benchmarks"][bench].is_number())
      return g;
    double off = t["benchmarks"][bench].get<double>();
    double d = acc - off;
    g = {{"state", std::fabs(d) <= points ? "gated" : "not gated"},
         {"official", off},
         {"off_by", d},
         {"target_model", t["model"]},
         {"gate_points", points}};
    return g;
  }
  return g;
}

// own_test (util/output_guard.h) for the result file: an earlier result of run_eval (its "tag" and "gate").
static status eval_result_file(const std::string& path) {
  auto text = read_text_file(path, size_t(256) << 20);
  if (!text) return text.error();
  json j = json::parse(*text, nullptr, false);
  if (j.is_object() && j.contains("tag") && j.contains("gate")) return {};
  return make_error(errc::bad_format, "not a razor eval result (a JSON object with \"tag\" and \"gate\")");
}

result<int> parse_token_count(const std::string& s, const std::string& what) {
  std::string digits = s;
  int mul = 1;
  if (!digits.empty() && (digits.back() == 'k' || digits.back() == 'K')) {
    mul = 1024;
    digits.pop_back();
  }
  if (!digits.empty() && digits.size() < 9 && digits.find_first_not_of("0123456789") == std::string::npos) {
    const int64_t v = std::stoll(digits) * mul;
    if (v > 0 && v < (int64_t(1) << 24)) return int(v);
  }
  return make_error(errc::invalid_argument, what + " \"" + s + "\": expected a token count (e.g. 512, 4k, 32k)");
}

result<json> run_eval(const eval_options& o) {
  auto t0 = std::chrono::steady_clock::now();
  auto log = [&](const std::string& s) {
    if (o.log) o.log(s);
  };
  if (o.benchmarks.empty() && o.speed.contexts.empty())
    return make_error(errc::invalid_argument, "no benchmarks given (known: " + bench_keys() + ")");
  if (o.out.empty()) return make_error(errc::invalid_argument, "no --out file given");
  RAZOR_TRY(check_output_file(o.out, eval_result_file));
  struct bench_run {
    const bench_info* info;
    std::vector<bench_item> items;
  };
  std::vector<bench_run> runs;
  for (const auto& k : o.benchmarks) {
    const bench_info* b = find_bench(k);
    if (!b) return make_error(errc::invalid_argument, "unknown benchmark '" + k + "' (known: " + bench_keys() + ")");
    RAZOR_ASSIGN_OR_RETURN(auto items, load_bench(*b, o.data_dir, o.n > 0 ? o.n : b->default_n));
    if (items.empty()) return make_error(errc::bad_format, o.data_dir + "/" + k + ".jsonl: no questions");
    runs.push_back({b, std::move(items)});
  }
  // What is measured, before the work: a wrong --artifact is refused at once.
  json prov = {{"razor_version", RAZOR_VERSION}, {"endpoint", o.client.endpoint}, {"served_model", o.model},
               {"budget", o.budget}, {"think", true}};
  json datasets = json::object();
  for (const auto& r : runs) {
    const std::string file = o.data_dir + "/" + std::string(r.info->key) + ".jsonl";
    RAZOR_ASSIGN_OR_RETURN(json fp, artifact_fingerprint(file));
    fp["n"] = r.items.size();
    datasets[std::string(r.info->key)] = std::move(fp);
  }
  prov["datasets"] = datasets;
  if (!o.server_command.empty()) prov["server_command"] = o.server_command;
  if (!o.artifact.empty()) {
    log("fingerprinting " + o.artifact);
    RAZOR_ASSIGN_OR_RETURN(prov["artifact"], artifact_fingerprint(o.artifact));
  }

  // Resume: every (bench, id) already graded in the side file is kept and skipped.
  std::string side = samples_path(o.out);
  std::map<std::string, json> done;  // bench \x1f id -> record
  {
    std::ifstream f(side);
    std::string line;
    while (std::getline(f, line)) {
      auto parsed = parse_json(line, side);
      if (!parsed.ok()) continue;  // a torn last line (crash mid-write)
      json& r = *parsed;
      if (!r.is_object() || !r.contains("bench") || !r["bench"].is_string() || !r.contains("id") || !r["id"].is_string())
        continue;  // a foreign record
      done[r["bench"].get<std::string>() + "\x1f" + r["id"].get<std::string>()] = r;
    }
  }
  struct job {
    const bench_run* run;
    const bench_item* item;
  };
  std::vector<job> todo;
  size_t resumed = 0;
  for (const auto& r : runs)
    for (const auto& it : r.items) {
      if (done.count(std::string(r.info->key) + "\x1f" + it.id)) ++resumed;
      else todo.push_back({&r, &it});
    }
  if (resumed) log("resuming: " + std::to_string(resumed) + " samples already graded in " + side);

  std::filesystem::path sp(side);
  if (sp.has_parent_path()) std::filesystem::create_directories(sp.parent_path());
  std::ofstream sf(side, std::ios::app | std::ios::binary);
  if (!sf) return make_error(errc::io, side + ": cannot open for appending");

  std::mutex mu;
  std::atomic<size_t> next{0}, finished{0};
  std::atomic<bool> stop{false}, cancelled{false};
  status first_error;
  const size_t total = resumed + todo.size();
  if (o.progress && !o.progress(double(resumed), double(total), "starting")) cancelled = true;
  client_options copt = o.client;  // requests in flight are aborted on a cancel
  copt.cancelled = [&cancelled, outer = o.client.cancelled] {
    if (!cancelled && outer && outer()) cancelled = true;
    return cancelled.load();
  };
  int workers = std::max(1, std::min<int>(o.concurrency, int(todo.size())));
  {
    std::vector<std::jthread> pool;
    for (int w = 0; w < workers && !todo.empty() && !cancelled; ++w) {
      pool.emplace_back([&] {
        client c(copt);
        for (;;) {
          if (stop || cancelled) return;
          size_t i = next++;
          if (i >= todo.size()) return;
          const job& j = todo[i];
          chat_request rq;
          rq.model = o.model;
          rq.prompt = j.item->prompt;
          rq.images = j.item->images;
          rq.max_tokens = o.budget;
          auto resp = c.chat(rq);
          if (!resp.ok()) {
            std::lock_guard lk(mu);
            if (first_error.ok() && !cancelled) first_error = resp.error();
            stop = true;
            return;
          }
          std::string text = resp->full_text();
          grade_result g = grade(*j.run->info, *j.item, text, o.sandbox);
          json rec = {{"bench", j.run->info->key},
                      {"id", j.item->id},
                      {"raw", text},
                      {"extracted", g.extracted},
                      {"gold", j.item->gold},
                      {"correct", g.correct},
                      {"tokens", resp->completion_tokens},
                      {"prompt_tokens", resp->prompt_tokens},
                      {"finish_reason", resp->finish_reason},
                      {"attempts", resp->attempts}};
          std::lock_guard lk(mu);
          sf << rec.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
          sf.flush();
          done[std::string(j.run->info->key) + "\x1f" + j.item->id] = std::move(rec);
          size_t f = ++finished;
          if (f % 10 == 0 || f == todo.size())
            log("graded " + std::to_string(f) + " / " + std::to_string(todo.size()));
          if (o.progress &&
              !o.progress(double(resumed + f), double(total), (std::string(j.run->info->key) + " " + j.item->id).c_str()))
            cancelled = true;
        }
      });
    }
  }  // joins
  sf.close();
  if (cancelled || (o.client.cancelled && o.client.cancelled()))
    return make_error(errc::cancelled, "eval cancelled after " + std::to_string(finished.load()) + " new samples (kept in " +
                                           side + "; re-run to resume)");
  if (!first_error.ok())
    return make_error(first_error.code(), first_error.message() + " (" + std::to_string(finished.load()) +
                                              " new samples kept in " + side + "; re-run to resume)");

  json targets;
  std::string tpath = o.targets_path;
  if (tpath.empty()) {
    std::string d = find_data_dir("results");
    if (!d.empty() && std::filesystem::exists(d + "/official_targets.json")) tpath = d + "/official_targets.json";
  }
  if (!tpath.empty()) {
    RAZOR_ASSIGN_OR_RETURN(targets, read_json_file(tpath));
  }
  std::string gate_model = o.official_model.empty() ? o.model : o.official_model;

  std::string tag = o.tag.empty() ? std::filesystem::path(o.out).stem().string() : o.tag;
  json res = {{"tag", tag},       {"model", o.model},          {"think", true},
              {"budget", o.budget}, {"backend", "openai-compatible"}, {"endpoint", o.client.endpoint}};
  json gate = json::object();
  for (const auto& r : runs) {
    std::vector<json> recs;
    for (const auto& it : r.items) recs.push_back(done[std::string(r.info->key) + "\x1f" + it.id]);
    bench_summary s = summarize(std::string(r.info->key), recs);
    std::string key(r.info->key), acc = r.info->primary_acc_key();
    std::string pre = r.info->counts_prefix();
    res[acc] = s.acc;
    res[acc + "_finished"] = s.acc_finished;
    res[pre + "_n"] = s.n;
    res[pre + "_n_finished"] = s.n_finished;
    res[pre + "_trunc"] = s.trunc;
    gate[key] = gate_entry(key, s.acc, targets, gate_model);
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s: acc %.1f, finished %.1f (%d/%d), trunc %d, gate: %s", key.c_str(), s.acc,
                  s.acc_finished, s.n_finished, s.n, s.trunc, gate[key]["state"].get<std::string>().c_str());
    log(buf);
  }
  res["gate"] = gate;
  if (!tpath.empty()) res["gate_targets"] = tpath;
  if (!o.speed.contexts.empty()) {  // after the benchmarks, on a server with nothing else in flight
    client_options co = o.client;
    co.retries = 0;  // a retried request's time is no speed
    client c(co);
    auto pts = measure_speed(c, o.model, o.speed);
    if (pts.ok()) {
      res["speed"] = speed_json(o.speed, *pts);
      for (const auto& p : *pts) {
        log(strformat("speed at %d tokens (%d in the prompt): prefill %.1f tok/s, decode %.1f tok/s (%s)", p.context,
                      p.prompt_tokens, p.prefill_tok_s, p.decode_tok_s, p.method.c_str()));
      }
    } else {
      res["speed"] = {{"error", pts.error().message()}};  // the benchmarks' results are kept
      log(pts.error().message());
    }
  }
  res["provenance"] = prov;
  res["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  RAZOR_TRY(write_file_atomic(o.out, res.dump(2)));
  return res;
}

}  // namespace razor::eval
