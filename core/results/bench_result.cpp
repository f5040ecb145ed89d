#include "results/bench_result.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "util/json_limits.h"
#include "util/strformat.h"

namespace razor::results {

using nlohmann::json;

namespace {

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = char(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string describe(const json& v) {
  std::string d = v.dump();
  if (d.size() > 40) d = d.substr(0, 37) + "...";
  return d;
}

// Reads a percentage in [0, 100]; returns an error message, or "" when fine.
std::string read_percent(const json& doc, const std::string& key, double* out) {
  const json& v = doc.at(key);
  if (!v.is_number()) return key + ": expected a number (percent), got " + describe(v);
  double x = v.get<double>();
  if (!std::isfinite(x) || x < 0.0 || x > 100.0) return key + ": " + describe(v) + " is not a percentage in [0, 100]";
  *out = x;
  return {};
}

std::string read_count(const json& doc, const std::string& key, int* out) {
  const json& v = doc.at(key);
  // Counts are ints in every seed file; a float with an integral value is accepted (JSON writers differ).
  if (v.is_number_integer() || v.is_number_unsigned()) {
    int64_t x = v.get<int64_t>();
    if (x < 0 || x > 100000000) return key + ": " + describe(v) + " is not a plausible count";
    *out = int(x);
    return {};
  }
  if (v.is_number_float()) {
    double x = v.get<double>();
    if (x >= 0 && x <= 1e8 && std::floor(x) == x) {
      *out = int(x);
      return {};
    }
  }
  return key + ": expected a non-negative integer, got " + describe(v);
}

std::string stem_of(const std::string& source) {
  std::filesystem::path p(source);
  return p.stem().string().empty() ? source : p.stem().string();
}

std::string string_field(const json& doc, const char* key) {
  auto it = doc.find(key);
  return (it != doc.end() && it->is_string()) ? it->get<std::string>() : std::string();
}

// Fills n / n_finished / trunc / acc_finished of `r` from "<prefix>_n" etc. Returns an error or "".
std::string read_counts(const json& doc, const std::string& prefix, const std::string& fin_key, bench_result& r) {
  std::string e;
  if (doc.contains(prefix + "_n") && !(e = read_count(doc, prefix + "_n", &r.n)).empty()) return e;
  if (doc.contains(prefix + "_n_finished")) {
    int v = 0;
    if (!(e = read_count(doc, prefix + "_n_finished", &v)).empty()) return e;
    r.n_finished = v;
  }
  if (doc.contains(prefix + "_trunc")) {
    int v = 0;
    if (!(e = read_count(doc, prefix + "_trunc", &v)).empty()) return e;
    r.trunc = v;
  }
  if (doc.contains(fin_key)) {
    double v = 0;
    if (!(e = read_percent(doc, fin_key, &v)).empty()) return e;
    r.acc_finished = v;
  }
  if (r.trunc && r.n > 0 && *r.trunc > r.n)
    return prefix + "_trunc: " + std::to_string(*r.trunc) + " truncations out of " + std::to_string(r.n) + " questions";
  if (r.n_finished && r.n > 0 && *r.n_finished > r.n)
    return prefix + "_n_finished: " + std::to_string(*r.n_finished) + " is more than " + prefix + "_n " + std::to_string(r.n);
  return {};
}

std::optional<int> int_field(const json& doc, const char* key) {
  auto it = doc.find(key);
  if (it == doc.end() || !it->is_number()) return std::nullopt;
  return int(it->get<double>());
}

import_result import_quant_compare(const json& doc, const std::string& source) {
  import_result out;
  const json& summary = doc.at("summary");
  if (!summary.is_object() || summary.empty()) {
    out.error = "summary: expected an object of methods";
    return out;
  }
  std::string model = string_field(doc, "model");
  for (auto& [method, s] : summary.items()) {
    if (!s.is_object() || !s.contains("mean_nmse") || !s["mean_nmse"].is_number()) {
      out.error = "summary." + method + ".mean_nmse: expected a number";
      out.results.clear();
      return out;
    }
    bench_result r;
    r.run = stem_of(source) + ":" + method;
    r.bench = "expert_nmse";
    r.acc = s["mean_nmse"].get<double>();
    if (!std::isfinite(r.acc) || r.acc < 0) {
      out.error = "summary." + method + ".mean_nmse: " + describe(s["mean_nmse"]) + " is not a non-negative number";
      out.results.clear();
      return out;
    }
    if (auto n = int_field(s, "n_experts")) r.n = *n;
    r.backend = "moe_compare";
    r.model = model;
    r.source = source;
    r.variant = schema_variant::quant_compare;
    r.higher_is_better = false;
    out.results.push_back(std::move(r));
  }
  return out;
}

import_result import_razor(const json& doc, const std::string& source) {
  import_result out;
  auto it = doc.find("results");
  if (it == doc.end() || !it->is_array()) {
    out.error = "results: expected an array of {bench, acc, n, ...}";
    return out;
  }
  std::string run = string_field(doc, "run");
  if (run.empty()) run = stem_of(source);
  for (size_t i = 0; i < it->size(); ++i) {
    const json& e = (*it)[i];
    std::string where = "results[" + std::to_string(i) + "].";
    if (!e.is_object() || !e.contains("bench") || !e["bench"].is_string() || !e.contains("acc")) {
      out.error = where + "bench/acc: each entry needs a string \"bench\" and a numeric \"acc\"";
      out.results.clear();
      return out;
    }
    bench_result r;
    r.run = run;
    r.bench = lower(e["bench"].get<std::string>());
    std::string err = read_percent(e, "acc", &r.acc);
    if (err.empty() && e.contains("acc_finished")) {
      double v = 0;
      err = read_percent(e, "acc_finished", &v);
      r.acc_finished = v;
    }
    if (err.empty() && e.contains("n")) err = read_count(e, "n", &r.n);
    if (err.empty() && e.contains("n_finished")) {
      int v = 0;
      err = read_count(e, "n_finished", &v);
      r.n_finished = v;
    }
    if (err.empty() && e.contains("trunc")) {
      int v = 0;
      err = read_count(e, "trunc", &v);
      r.trunc = v;
    }
    if (err.empty() && r.trunc && r.n > 0 && *r.trunc > r.n) err = "trunc: more truncations than questions";
    if (!err.empty()) {
      out.error = where + err;
      out.results.clear();
      return out;
    }
    r.budget = int_field(doc, "budget");
    r.backend = string_field(doc, "backend").empty() ? "razor" : string_field(doc, "backend");
    if (auto f = doc.find("footprint_gb"); f != doc.end() && f->is_number()) r.footprint = f->get<double>();
    r.model = string_field(doc, "model");
    r.source = source;
    r.variant = schema_variant::razor;
    out.results.push_back(std::move(r));
  }
  out.run = run;
  // A speed-only measurement (razor eval --speed-contexts without benchmarks) has no results but is a run.
  const bool has_speed = doc.contains("speed") && doc["speed"].is_object();
  if (out.results.empty() && !has_speed) out.error = "results: the array is empty";
  return out;
}

}  // namespace

std::string_view schema_variant_name(schema_variant v) {
  switch (v) {
    case schema_variant::eval8: return "vllm_eval8";
    case schema_variant::eval_legacy: return "vllm_eval (legacy)";
    case schema_variant::bench8: return "bench8 (early)";
    case schema_variant::llama_cpp: return "llamacpp_eval8";
    case schema_variant::multimodal: return "mm_eval";
    case schema_variant::single_bench: return "single benchmark";
    case schema_variant::quant_compare: return "quant_compare";
    case schema_variant::razor: return "razor-bench/1";
  }
  return "?";
}

bool is_debug_dump(const json& doc) {
  if (!doc.is_object() || doc.empty()) return false;
  for (auto& [k, v] : doc.items()) {
    if (!v.is_array()) return false;
    for (auto& e : v)
      if (!e.is_object() || !e.contains("gold")) return false;
  }
  return true;
}

import_result import_result_json(const json& doc, const std::string& source) {
  import_result out;
  auto fail = [&](std::string msg) {
    out.results.clear();
    out.error = source + ": " + msg;
    return out;
  };
  if (!doc.is_object()) return fail("the top level is not a JSON object");
  if (is_debug_dump(doc)) return fail("a per-question debug dump ({gold, parsed, tail} lists), not a result file");

  if (string_field(doc, "format").rfind("razor-bench/", 0) == 0) {
    if (string_field(doc, "format") != "razor-bench/1") return fail("format " + string_field(doc, "format") + " is newer than this workbench reads (razor-bench/1)");
    out = import_razor(doc, source);
    if (!out.ok()) return fail(out.error);
    return out;
  }
  if (doc.contains("summary") && (doc.contains("per_layer") || doc.contains("bits"))) {
    out = import_quant_compare(doc, source);
    if (!out.ok()) return fail(out.error);
    return out;
  }

  std::string run = string_field(doc, "tag");
  if (run.empty()) run = string_field(doc, "run");
  if (run.empty()) run = stem_of(source);
  std::string model = string_field(doc, "model");
  if (model.empty()) model = string_field(doc, "tokenizer");
  std::string backend = string_field(doc, "backend");
  std::optional<int> budget = int_field(doc, "budget");

  // Single-benchmark files: {"bench": "bbeh", "n": 100, "acc": 51.0, ...}
  if (doc.contains("bench") && doc["bench"].is_string() && doc.contains("acc")) {
    bench_result r;
    r.run = run;
    r.bench = lower(doc["bench"].get<std::string>());
    if (auto e = read_percent(doc, "acc", &r.acc); !e.empty()) return fail(e);
    if (doc.contains("n"))
      if (auto e = read_count(doc, "n", &r.n); !e.empty()) return fail(e);
    r.budget = budget ? budget : int_field(doc, "think_cap");
    r.backend = backend.empty() ? "vllm" : backend;
    r.model = model;
    r.source = source;
    r.variant = schema_variant::single_bench;
    out.results.push_back(std::move(r));
    return out;
  }

  bool any_finished = false;
  for (auto& [k, v] : doc.items())
    if (ends_with(k, "_acc_finished") || ends_with(k, "_pass1_finished")) any_finished = true;
  schema_variant variant;
  if (lower(backend) == "llama.cpp") variant = schema_variant::llama_cpp;
  else if (any_finished) variant = schema_variant::eval8;
  else if (doc.contains("humaneval_pass@1") || budget) variant = schema_variant::eval_legacy;
  else if (!doc.contains("think") && !doc.contains("seconds")) variant = schema_variant::multimodal;
  else variant = schema_variant::bench8;
  if (backend.empty()) backend = "vllm";

  std::set<std::string> consumed;
  auto add = [&](const std::string& bench, const std::string& acc_key, const std::string& prefix,
                 const std::string& fin_key) -> std::string {
    bench_result r;
    r.run = run;
    r.bench = bench;
    if (auto e = read_percent(doc, acc_key, &r.acc); !e.empty()) return e;
    if (auto e = read_counts(doc, prefix, fin_key, r); !e.empty()) return e;
    r.budget = budget;
    r.backend = backend;
    r.model = model;
    r.source = source;
    r.variant = variant;
    consumed.insert(acc_key);
    out.results.push_back(std::move(r));
    return {};
  };
  for (const auto& b : benchmark_table()) {
    std::string key(b.key);
    std::string prefix = b.count_prefix.empty() ? key : std::string(b.count_prefix);
    std::string acc_key = b.acc_key.empty() ? key + "_acc" : std::string(b.acc_key);
    std::string fin_key = acc_key + "_finished";
    if (!doc.contains(acc_key) && !b.acc_key_alt.empty() && doc.contains(std::string(b.acc_key_alt)))
      acc_key = std::string(b.acc_key_alt);
    if (!doc.contains(acc_key)) continue;
    if (auto e = add(key, acc_key, prefix, fin_key); !e.empty()) return fail(e);
  }
  // Benchmarks the table does not know yet are kept under their own key.
  for (auto& [k, v] : doc.items()) {
    if (!ends_with(k, "_acc") || consumed.count(k)) continue;
    std::string bench = k.substr(0, k.size() - 4);
    if (find_benchmark(bench)) continue;
    if (auto e = add(bench, k, bench, k + "_finished"); !e.empty()) return fail(e);
  }
  out.run = run;
  // A speed-only measurement (razor eval --speed-contexts without benchmarks) has no score but is a run.
  if (out.results.empty() && doc.contains("speed") && doc["speed"].is_object()) return out;
  if (out.results.empty())
    return fail("no benchmark score found (expected keys like \"gpqa_acc\", \"humaneval_pass@1\", "
                "\"results\":[...] or \"summary\":{...})");
  std::stable_sort(out.results.begin(), out.results.end(),
                   [](const bench_result& a, const bench_result& b) { return benchmark_order(a.bench) < benchmark_order(b.bench); });
  return out;
}

import_result import_result_file(const std::string& path) {
  import_result out;
  // Bounded: a user's file (razor::read_json_file: regular files only, 64 MiB, nesting 64 deep).
  auto doc = razor::read_json_file(path);
  if (!doc.ok()) {
    std::string why = doc.error().message();
    if (why.rfind(path + ": ", 0) == 0) why.erase(0, path.size() + 2);
    const auto c = doc.error().code();
    out.error = c == razor::errc::not_found || c == razor::errc::io ? path + ": cannot be opened (" + why + ")"
                                                                     : doc.error().message();
    return out;
  }
  out = import_result_json(*doc, path);
  if (out.ok() && doc->contains("provenance") && (*doc)["provenance"].is_object()) {
    auto prov = std::make_shared<const json>((*doc)["provenance"]);
    for (auto& r : out.results) r.provenance = prov;
    out.provenance = prov;
  }
  if (out.ok() && out.run.empty() && !out.results.empty()) out.run = out.results.front().run;
  if (out.ok() && !out.run.empty() && doc->contains("speed") && (*doc)["speed"].is_object())
    out.speed = std::make_shared<const json>((*doc)["speed"]);
  const std::string side = samples_path_for(path);
  std::error_code ec;
  if (!out.ok() || side.empty() || !std::filesystem::exists(side, ec)) return out;
  auto samples = read_sample_outcomes(side);
  if (!samples.ok()) {
    out.note = "per-sample records not used: " + samples.error().message();
    return out;
  }
  for (auto& r : out.results)
    if (auto it = samples->find(r.bench); it != samples->end())
      r.samples = std::make_shared<const std::map<std::string, bool>>(std::move(it->second));
  return out;
}

// ---- statistics ------------------------------------------------------------------------------------------------

interval wilson_interval(double pct, int n, double z) {
  if (n <= 0) return {0, 100};
  double p = std::clamp(pct / 100.0, 0.0, 1.0);
  double z2 = z * z;
  double denom = 1.0 + z2 / n;
  double centre = (p + z2 / (2.0 * n)) / denom;
  double half = z * std::sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * double(n))) / denom;
  return {100.0 * std::max(0.0, centre - half), 100.0 * std::min(1.0, centre + half)};
}

double two_proportion_z(double pct_a, int n_a, double pct_b, int n_b) {
  if (n_a <= 0 || n_b <= 0) return 0;
  double pa = pct_a / 100.0, pb = pct_b / 100.0;
  double pooled = (pa * n_a + pb * n_b) / double(n_a + n_b);
  double var = pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b);
  if (var <= 0) return 0;
  return (pb - pa) / std::sqrt(var);
}

std::string_view verdict_name(verdict_kind v) {
  switch (v) {
    case verdict_kind::baseline: return "baseline";
    case verdict_kind::better: return "better";
    case verdict_kind::within_noise: return "within noise";
    case verdict_kind::recoverable_gap: return "recoverable gap";
    case verdict_kind::worse: return "worse";
    case verdict_kind::no_test: return "no test";
    case verdict_kind::missing: return "missing";
  }
  return "?";
}

namespace {
std::string fmt1(double x) { return strformat("%+.1f", x); }
std::string fmt_z(double x) { return strformat("%.2f", x); }
}  // namespace

bench_comparison compare_results(const bench_result* base, const bench_result* cand) {
  bench_comparison c;
  if (!base || !cand) {
    c.verdict = verdict_kind::missing;
    c.why = "no result on one side";
    return c;
  }
  if (base == cand || (base->run == cand->run && base->source == cand->source)) {
    c.verdict = verdict_kind::baseline;
    return c;
  }
  c.delta = cand->acc - base->acc;
  if (base->acc_finished && cand->acc_finished) c.delta_finished = *cand->acc_finished - *base->acc_finished;
  if (!base->is_proportion() || !cand->is_proportion()) {
    c.verdict = verdict_kind::no_test;
    c.why = base->higher_is_better ? "no sample size on one side: delta only" : "not a proportion: delta only";
    return c;
  }
  c.z = two_proportion_z(base->acc, base->n, cand->acc, cand->n);
  std::string paired_why;
  if (base->samples && cand->samples) {
    c.paired = mcnemar(*base->samples, *cand->samples);
    paired_why = "; paired over " + std::to_string(c.paired->n) + " common items: " +
                 std::to_string(c.paired->only_candidate) + " right only in the candidate, " +
                 std::to_string(c.paired->only_baseline) + " only in the baseline, McNemar exact p = " +
                 strformat("%.3g", c.paired->p);
  }
  int nfb = base->n_finished.value_or(0), nfc = cand->n_finished.value_or(0);
  if (c.delta_finished && nfb > 0 && nfc > 0) c.z_finished = two_proportion_z(*base->acc_finished, nfb, *cand->acc_finished, nfc);
  if (std::abs(c.z) < kZ95) {
    c.verdict = verdict_kind::within_noise;
    c.why = "delta " + fmt1(c.delta) + " points, |z| = " + fmt_z(std::abs(c.z)) + " < 1.96 (two-proportion test, 95%)";
  } else if (c.z > 0) {
    c.verdict = verdict_kind::better;
    c.why = "delta " + fmt1(c.delta) + " points, z = " + fmt_z(c.z) + " >= 1.96";
  } else if (c.z_finished && *c.z_finished > -kZ95) {
    c.verdict = verdict_kind::recoverable_gap;
    c.why = "acc " + fmt1(c.delta) + " points (z = " + fmt_z(c.z) + "), but among finished generations " +
            fmt1(*c.delta_finished) + " (z = " + fmt_z(*c.z_finished) + ", within noise): the loss is truncation (" +
            std::to_string(cand->trunc.value_or(0)) + " vs " + std::to_string(base->trunc.value_or(0)) + " truncated)";
  } else {
    c.verdict = verdict_kind::worse;
    c.why = "delta " + fmt1(c.delta) + " points, z = " + fmt_z(c.z) + " <= -1.96" +
            (c.z_finished ? ", also among finished generations (z = " + fmt_z(*c.z_finished) + ")"
                         : std::string(", no finished-only accuracy to tell truncation apart"));
  }
  c.why += paired_why;
  if (auto diff = provenance_differences(*base, *cand); !diff.empty()) {
    std::string list;
    for (auto& d : diff) list += (list.empty() ? "" : ", ") + d;
    c.why += "; measured differently: " + list;
  }
  return c;
}

std::vector<std::string> provenance_differences(const bench_result& a, const bench_result& b) {
  std::vector<std::string> out;
  if (!a.provenance || !b.provenance) return out;
  const json &pa = *a.provenance, &pb = *b.provenance;
  auto at = [](const json& j, const json::json_pointer& ptr) { return j.contains(ptr) ? j.at(ptr) : json(); };
  for (const char* key : {"/razor_version", "/budget", "/think"})
    if (at(pa, json::json_pointer(key)) != at(pb, json::json_pointer(key))) out.push_back(std::string(key + 1));
  const std::string ds = "/datasets/" + a.bench;
  if (at(pa, json::json_pointer(ds + "/sha256")) != at(pb, json::json_pointer(ds + "/sha256")))
    out.push_back(a.bench + " data file");
  if (at(pa, json::json_pointer(ds + "/n")) != at(pb, json::json_pointer(ds + "/n"))) out.push_back(a.bench + " questions");
  // The server's flags: the argv with the artifact's path (the model) left out.
  auto flags = [&at](const json& p) {
    json argv = p.contains("server_command") ? p["server_command"] : json::array();
    const json path = at(p, json::json_pointer("/artifact/path"));
    const std::string model = path.is_string() ? path.get<std::string>() : "";
    json keep = json::array();
    for (auto& x : argv)
      if (!(x.is_string() && !model.empty() && x.get<std::string>() == model)) keep.push_back(x);
    return keep;
  };
  if (flags(pa) != flags(pb)) out.push_back("server flags");
  return out;
}

// ---- the validation gate ---------------------------------------------------------------------------------------

std::optional<double> official_target::target(std::string_view bench) const {
  for (auto& [k, v] : benchmarks)
    if (k == bench) return v;
  return std::nullopt;
}

const official_target* official_targets::for_model(std::string_view model) const {
  std::string m = lower(model);
  for (const auto& t : targets)
    if (lower(t.model) == m) return &t;
  return nullptr;
}

official_targets parse_official_targets(const json& doc, std::string* error) {
  official_targets out;
  auto bad = [&](const std::string& msg) {
    if (error) *error = "official targets: " + msg;
    return official_targets{};
  };
  if (!doc.is_object() || !doc.contains("targets") || !doc["targets"].is_array())
    return bad("expected {\"gate_points\": 2.0, \"targets\": [...]}");
  if (doc.contains("gate_points")) {
    if (!doc["gate_points"].is_number()) return bad("gate_points: expected a number");
    out.gate_points = doc["gate_points"].get<double>();
  }
  for (size_t i = 0; i < doc["targets"].size(); ++i) {
    const json& t = doc["targets"][i];
    std::string where = "targets[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("model") || !t["model"].is_string() || !t.contains("benchmarks") ||
        !t["benchmarks"].is_object())
      return bad(where + ": needs a string \"model\" and an object \"benchmarks\"");
    official_target ot;
    ot.model = t["model"].get<std::string>();
    ot.label = string_field(t, "label").empty() ? ot.model : string_field(t, "label");
    ot.source = string_field(t, "source");
    for (auto& [k, v] : t["benchmarks"].items()) {
      if (!v.is_number()) return bad(where + ".benchmarks." + k + ": expected a number");
      ot.benchmarks.emplace_back(k, v.get<double>());
    }
    out.targets.push_back(std::move(ot));
  }
  if (error) error->clear();
  return out;
}

std::string_view gate_state_name(gate_state s) {
  switch (s) {
    case gate_state::gated: return "gated";
    case gate_state::not_gated: return "not gated";
    case gate_state::no_target: return "no target";
  }
  return "?";
}

gate_status gate_for(std::string_view bench, std::span<const bench_result> results, const official_targets& targets) {
  gate_status g;
  const bench_result* best = nullptr;
  double best_off = 0, best_target = 0;
  for (const auto& r : results) {
    if (r.bench != bench || !r.higher_is_better) continue;
    const official_target* t = targets.for_model(r.model);
    if (!t) continue;
    auto v = t->target(bench);
    if (!v) continue;
    double off = r.acc - *v;
    if (!best || std::abs(off) < std::abs(best_off)) {
      best = &r;
      best_off = off;
      best_target = *v;
    }
  }
  if (!best) return g;
  g.off_by = best_off;
  g.state = std::abs(best_off) <= targets.gate_points + 1e-9 ? gate_state::gated : gate_state::not_gated;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s (%s) %.1f vs official %.1f (%+.1f; gate %.1f points)", best->run.c_str(),
                best->model.c_str(), best->acc, best_target, best_off, targets.gate_points);
  g.evidence = buf;
  return g;
}

}  // namespace razor::results
