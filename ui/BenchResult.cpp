#include "BenchResult.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "util/json_limits.h"

using nlohmann::json;

namespace {

constexpr BenchmarkInfo kBenchmarks[] = {
#define X(key, name, accKey, accKeyAlt, prefix, group, hib) {#key, name, accKey, accKeyAlt, prefix, group, hib},
    RAZOR_BENCHMARKS(X)
#undef X
};

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = char(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string describe(const json& v) {
  std::string d = v.dump();
  if (d.size() > 40) d = d.substr(0, 37) + "...";
  return d;
}

// Reads a percentage in [0, 100]; returns an error message, or "" when fine.
std::string readPercent(const json& doc, const std::string& key, double* out) {
  const json& v = doc.at(key);
  if (!v.is_number()) return key + ": expected a number (percent), got " + describe(v);
  double x = v.get<double>();
  if (!std::isfinite(x) || x < 0.0 || x > 100.0) return key + ": " + describe(v) + " is not a percentage in [0, 100]";
  *out = x;
  return {};
}

std::string readCount(const json& doc, const std::string& key, int* out) {
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

std::string stemOf(const std::string& source) {
  std::filesystem::path p(source);
  return p.stem().string().empty() ? source : p.stem().string();
}

std::string stringField(const json& doc, const char* key) {
  auto it = doc.find(key);
  return (it != doc.end() && it->is_string()) ? it->get<std::string>() : std::string();
}

// Fills n / n_finished / trunc / acc_finished of `r` from "<prefix>_n" etc. Returns an error or "".
std::string readCounts(const json& doc, const std::string& prefix, const std::string& finKey, BenchResult& r) {
  std::string e;
  if (doc.contains(prefix + "_n") && !(e = readCount(doc, prefix + "_n", &r.n)).empty()) return e;
  if (doc.contains(prefix + "_n_finished")) {
    int v = 0;
    if (!(e = readCount(doc, prefix + "_n_finished", &v)).empty()) return e;
    r.nFinished = v;
  }
  if (doc.contains(prefix + "_trunc")) {
    int v = 0;
    if (!(e = readCount(doc, prefix + "_trunc", &v)).empty()) return e;
    r.trunc = v;
  }
  if (doc.contains(finKey)) {
    double v = 0;
    if (!(e = readPercent(doc, finKey, &v)).empty()) return e;
    r.accFinished = v;
  }
  if (r.trunc && r.n > 0 && *r.trunc > r.n)
    return prefix + "_trunc: " + std::to_string(*r.trunc) + " truncations out of " + std::to_string(r.n) + " questions";
  if (r.nFinished && r.n > 0 && *r.nFinished > r.n)
    return prefix + "_n_finished: " + std::to_string(*r.nFinished) + " is more than " + prefix + "_n " + std::to_string(r.n);
  return {};
}

std::optional<int> intField(const json& doc, const char* key) {
  auto it = doc.find(key);
  if (it == doc.end() || !it->is_number()) return std::nullopt;
  return int(it->get<double>());
}

ImportResult importQuantCompare(const json& doc, const std::string& source) {
  ImportResult out;
  const json& summary = doc.at("summary");
  if (!summary.is_object() || summary.empty()) {
    out.error = "summary: expected an object of methods";
    return out;
  }
  std::string model = stringField(doc, "model");
  for (auto& [method, s] : summary.items()) {
    if (!s.is_object() || !s.contains("mean_nmse") || !s["mean_nmse"].is_number()) {
      out.error = "summary." + method + ".mean_nmse: expected a number";
      out.results.clear();
      return out;
    }
    BenchResult r;
    r.run = stemOf(source) + ":" + method;
    r.bench = "expert_nmse";
    r.acc = s["mean_nmse"].get<double>();
    if (!std::isfinite(r.acc) || r.acc < 0) {
      out.error = "summary." + method + ".mean_nmse: " + describe(s["mean_nmse"]) + " is not a non-negative number";
      out.results.clear();
      return out;
    }
    if (auto n = intField(s, "n_experts")) r.n = *n;
    r.backend = "moe_compare";
    r.model = model;
    r.source = source;
    r.variant = SchemaVariant::QuantCompare;
    r.higherIsBetter = false;
    out.results.push_back(std::move(r));
  }
  return out;
}

ImportResult importRazor(const json& doc, const std::string& source) {
  ImportResult out;
  auto it = doc.find("results");
  if (it == doc.end() || !it->is_array()) {
    out.error = "results: expected an array of {bench, acc, n, ...}";
    return out;
  }
  std::string run = stringField(doc, "run");
  if (run.empty()) run = stemOf(source);
  for (size_t i = 0; i < it->size(); ++i) {
    const json& e = (*it)[i];
    std::string where = "results[" + std::to_string(i) + "].";
    if (!e.is_object() || !e.contains("bench") || !e["bench"].is_string() || !e.contains("acc")) {
      out.error = where + "bench/acc: each entry needs a string \"bench\" and a numeric \"acc\"";
      out.results.clear();
      return out;
    }
    BenchResult r;
    r.run = run;
    r.bench = lower(e["bench"].get<std::string>());
    std::string err = readPercent(e, "acc", &r.acc);
    if (err.empty() && e.contains("acc_finished")) {
      double v = 0;
      err = readPercent(e, "acc_finished", &v);
      r.accFinished = v;
    }
    if (err.empty() && e.contains("n")) err = readCount(e, "n", &r.n);
    if (err.empty() && e.contains("n_finished")) {
      int v = 0;
      err = readCount(e, "n_finished", &v);
      r.nFinished = v;
    }
    if (err.empty() && e.contains("trunc")) {
      int v = 0;
      err = readCount(e, "trunc", &v);
      r.trunc = v;
    }
    if (err.empty() && r.trunc && r.n > 0 && *r.trunc > r.n) err = "trunc: more truncations than questions";
    if (!err.empty()) {
      out.error = where + err;
      out.results.clear();
      return out;
    }
    r.budget = intField(doc, "budget");
    r.backend = stringField(doc, "backend").empty() ? "razor" : stringField(doc, "backend");
    if (auto f = doc.find("footprint_gb"); f != doc.end() && f->is_number()) r.footprint = f->get<double>();
    r.model = stringField(doc, "model");
    r.source = source;
    r.variant = SchemaVariant::Razor;
    out.results.push_back(std::move(r));
  }
  if (out.results.empty()) out.error = "results: the array is empty";
  return out;
}

}  // namespace

std::span<const BenchmarkInfo> benchmarkTable() { return kBenchmarks; }

const BenchmarkInfo* findBenchmark(std::string_view key) {
  for (const auto& b : kBenchmarks)
    if (b.key == key) return &b;
  return nullptr;
}

std::string benchmarkName(std::string_view key) {
  const BenchmarkInfo* b = findBenchmark(key);
  return b ? std::string(b->name) : std::string(key);
}

int benchmarkOrder(std::string_view key) {
  for (size_t i = 0; i < std::size(kBenchmarks); ++i)
    if (kBenchmarks[i].key == key) return int(i);
  return int(std::size(kBenchmarks));
}

std::string_view schemaVariantName(SchemaVariant v) {
  switch (v) {
    case SchemaVariant::Eval8: return "vllm_eval8";
    case SchemaVariant::EvalLegacy: return "vllm_eval (legacy)";
    case SchemaVariant::Bench8: return "bench8 (early)";
    case SchemaVariant::LlamaCpp: return "llamacpp_eval8";
    case SchemaVariant::Multimodal: return "mm_eval";
    case SchemaVariant::SingleBench: return "single benchmark";
    case SchemaVariant::QuantCompare: return "quant_compare";
    case SchemaVariant::Razor: return "razor-bench/1";
  }
  return "?";
}

bool isDebugDump(const json& doc) {
  if (!doc.is_object() || doc.empty()) return false;
  for (auto& [k, v] : doc.items()) {
    if (!v.is_array()) return false;
    for (auto& e : v)
      if (!e.is_object() || !e.contains("gold")) return false;
  }
  return true;
}

ImportResult importResultJson(const json& doc, const std::string& source) {
  ImportResult out;
  auto fail = [&](std::string msg) {
    out.results.clear();
    out.error = source + ": " + msg;
    return out;
  };
  if (!doc.is_object()) return fail("the top level is not a JSON object");
  if (isDebugDump(doc)) return fail("a per-question debug dump ({gold, parsed, tail} lists), not a result file");

  if (stringField(doc, "format").rfind("razor-bench/", 0) == 0) {
    if (stringField(doc, "format") != "razor-bench/1") return fail("format " + stringField(doc, "format") + " is newer than this workbench reads (razor-bench/1)");
    out = importRazor(doc, source);
    if (!out.ok()) return fail(out.error);
    return out;
  }
  if (doc.contains("summary") && (doc.contains("per_layer") || doc.contains("bits"))) {
    out = importQuantCompare(doc, source);
    if (!out.ok()) return fail(out.error);
    return out;
  }

  std::string run = stringField(doc, "tag");
  if (run.empty()) run = stringField(doc, "run");
  if (run.empty()) run = stemOf(source);
  std::string model = stringField(doc, "model");
  if (model.empty()) model = stringField(doc, "tokenizer");
  std::string backend = stringField(doc, "backend");
  std::optional<int> budget = intField(doc, "budget");

  // Single-benchmark files: {"bench": "bbeh", "n": 100, "acc": 51.0, ...}
  if (doc.contains("bench") && doc["bench"].is_string() && doc.contains("acc")) {
    BenchResult r;
    r.run = run;
    r.bench = lower(doc["bench"].get<std::string>());
    if (auto e = readPercent(doc, "acc", &r.acc); !e.empty()) return fail(e);
    if (doc.contains("n"))
      if (auto e = readCount(doc, "n", &r.n); !e.empty()) return fail(e);
    r.budget = budget ? budget : intField(doc, "think_cap");
    r.backend = backend.empty() ? "vllm" : backend;
    r.model = model;
    r.source = source;
    r.variant = SchemaVariant::SingleBench;
    out.results.push_back(std::move(r));
    return out;
  }

  bool anyFinished = false;
  for (auto& [k, v] : doc.items())
    if (endsWith(k, "_acc_finished") || endsWith(k, "_pass1_finished")) anyFinished = true;
  SchemaVariant variant;
  if (lower(backend) == "llama.cpp") variant = SchemaVariant::LlamaCpp;
  else if (anyFinished) variant = SchemaVariant::Eval8;
  else if (doc.contains("humaneval_pass@1") || budget) variant = SchemaVariant::EvalLegacy;
  else if (!doc.contains("think") && !doc.contains("seconds")) variant = SchemaVariant::Multimodal;
  else variant = SchemaVariant::Bench8;
  if (backend.empty()) backend = "vllm";

  std::set<std::string> consumed;
  auto add = [&](const std::string& bench, const std::string& accKey, const std::string& prefix,
                 const std::string& finKey) -> std::string {
    BenchResult r;
    r.run = run;
    r.bench = bench;
    if (auto e = readPercent(doc, accKey, &r.acc); !e.empty()) return e;
    if (auto e = readCounts(doc, prefix, finKey, r); !e.empty()) return e;
    r.budget = budget;
    r.backend = backend;
    r.model = model;
    r.source = source;
    r.variant = variant;
    consumed.insert(accKey);
    out.results.push_back(std::move(r));
    return {};
  };
  for (const auto& b : kBenchmarks) {
    std::string key(b.key);
    std::string prefix = b.countPrefix.empty() ? key : std::string(b.countPrefix);
    std::string accKey = b.accKey.empty() ? key + "_acc" : std::string(b.accKey);
    std::string finKey = accKey + "_finished";
    if (!doc.contains(accKey) && !b.accKeyAlt.empty() && doc.contains(std::string(b.accKeyAlt)))
      accKey = std::string(b.accKeyAlt);
    if (!doc.contains(accKey)) continue;
    if (auto e = add(key, accKey, prefix, finKey); !e.empty()) return fail(e);
  }
  // Benchmarks the table does not know yet are kept under their own key.
  for (auto& [k, v] : doc.items()) {
    if (!endsWith(k, "_acc") || consumed.count(k)) continue;
    std::string bench = k.substr(0, k.size() - 4);
    if (findBenchmark(bench)) continue;
    if (auto e = add(bench, k, bench, k + "_finished"); !e.empty()) return fail(e);
  }
  if (out.results.empty())
    return fail("no benchmark score found (expected keys like \"gpqa_acc\", \"humaneval_pass@1\", "
                "\"results\":[...] or \"summary\":{...})");
  std::stable_sort(out.results.begin(), out.results.end(),
                   [](const BenchResult& a, const BenchResult& b) { return benchmarkOrder(a.bench) < benchmarkOrder(b.bench); });
  return out;
}

ImportResult importResultFile(const std::string& path) {
  ImportResult out;
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
  return importResultJson(*doc, path);
}

// ---- statistics ------------------------------------------------------------------------------------------------

Interval wilsonInterval(double pct, int n, double z) {
  if (n <= 0) return {0, 100};
  double p = std::clamp(pct / 100.0, 0.0, 1.0);
  double z2 = z * z;
  double denom = 1.0 + z2 / n;
  double centre = (p + z2 / (2.0 * n)) / denom;
  double half = z * std::sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * double(n))) / denom;
  return {100.0 * std::max(0.0, centre - half), 100.0 * std::min(1.0, centre + half)};
}

double twoProportionZ(double pctA, int nA, double pctB, int nB) {
  if (nA <= 0 || nB <= 0) return 0;
  double pa = pctA / 100.0, pb = pctB / 100.0;
  double pooled = (pa * nA + pb * nB) / double(nA + nB);
  double var = pooled * (1.0 - pooled) * (1.0 / nA + 1.0 / nB);
  if (var <= 0) return 0;
  return (pb - pa) / std::sqrt(var);
}

std::string_view verdictName(Verdict v) {
  switch (v) {
    case Verdict::Baseline: return "baseline";
    case Verdict::Better: return "better";
    case Verdict::WithinNoise: return "within noise";
    case Verdict::RecoverableGap: return "recoverable gap";
    case Verdict::Worse: return "worse";
    case Verdict::NoTest: return "no test";
    case Verdict::Missing: return "missing";
  }
  return "?";
}

namespace {
std::string fmt1(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.1f", x);
  return buf;
}
std::string fmtZ(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", x);
  return buf;
}
}  // namespace

BenchComparison compareResults(const BenchResult* base, const BenchResult* cand) {
  BenchComparison c;
  if (!base || !cand) {
    c.verdict = Verdict::Missing;
    c.why = "no result on one side";
    return c;
  }
  if (base == cand || (base->run == cand->run && base->source == cand->source)) {
    c.verdict = Verdict::Baseline;
    return c;
  }
  c.delta = cand->acc - base->acc;
  if (base->accFinished && cand->accFinished) c.deltaFinished = *cand->accFinished - *base->accFinished;
  if (!base->isProportion() || !cand->isProportion()) {
    c.verdict = Verdict::NoTest;
    c.why = base->higherIsBetter ? "no sample size on one side: delta only" : "not a proportion: delta only";
    return c;
  }
  c.z = twoProportionZ(base->acc, base->n, cand->acc, cand->n);
  int nfb = base->nFinished.value_or(0), nfc = cand->nFinished.value_or(0);
  if (c.deltaFinished && nfb > 0 && nfc > 0) c.zFinished = twoProportionZ(*base->accFinished, nfb, *cand->accFinished, nfc);
  if (std::abs(c.z) < kZ95) {
    c.verdict = Verdict::WithinNoise;
    c.why = "delta " + fmt1(c.delta) + " points, |z| = " + fmtZ(std::abs(c.z)) + " < 1.96 (two-proportion test, 95%)";
  } else if (c.z > 0) {
    c.verdict = Verdict::Better;
    c.why = "delta " + fmt1(c.delta) + " points, z = " + fmtZ(c.z) + " >= 1.96";
  } else if (c.zFinished && *c.zFinished > -kZ95) {
    c.verdict = Verdict::RecoverableGap;
    c.why = "acc " + fmt1(c.delta) + " points (z = " + fmtZ(c.z) + "), but among finished generations " +
            fmt1(*c.deltaFinished) + " (z = " + fmtZ(*c.zFinished) + ", within noise): the loss is truncation (" +
            std::to_string(cand->trunc.value_or(0)) + " vs " + std::to_string(base->trunc.value_or(0)) + " truncated)";
  } else {
    c.verdict = Verdict::Worse;
    c.why = "delta " + fmt1(c.delta) + " points, z = " + fmtZ(c.z) + " <= -1.96" +
            (c.zFinished ? ", also among finished generations (z = " + fmtZ(*c.zFinished) + ")"
                         : std::string(", no finished-only accuracy to tell truncation apart"));
  }
  return c;
}

// ---- the validation gate ---------------------------------------------------------------------------------------

std::optional<double> OfficialTarget::target(std::string_view bench) const {
  for (auto& [k, v] : benchmarks)
    if (k == bench) return v;
  return std::nullopt;
}

const OfficialTarget* OfficialTargets::forModel(std::string_view model) const {
  std::string m = lower(model);
  for (const auto& t : targets)
    if (lower(t.model) == m) return &t;
  return nullptr;
}

OfficialTargets parseOfficialTargets(const json& doc, std::string* error) {
  OfficialTargets out;
  auto bad = [&](const std::string& msg) {
    if (error) *error = "official targets: " + msg;
    return OfficialTargets{};
  };
  if (!doc.is_object() || !doc.contains("targets") || !doc["targets"].is_array())
    return bad("expected {\"gate_points\": 2.0, \"targets\": [...]}");
  if (doc.contains("gate_points")) {
    if (!doc["gate_points"].is_number()) return bad("gate_points: expected a number");
    out.gatePoints = doc["gate_points"].get<double>();
  }
  for (size_t i = 0; i < doc["targets"].size(); ++i) {
    const json& t = doc["targets"][i];
    std::string where = "targets[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("model") || !t["model"].is_string() || !t.contains("benchmarks") ||
        !t["benchmarks"].is_object())
      return bad(where + ": needs a string \"model\" and an object \"benchmarks\"");
    OfficialTarget ot;
    ot.model = t["model"].get<std::string>();
    ot.label = stringField(t, "label").empty() ? ot.model : stringField(t, "label");
    ot.source = stringField(t, "source");
    for (auto& [k, v] : t["benchmarks"].items()) {
      if (!v.is_number()) return bad(where + ".benchmarks." + k + ": expected a number");
      ot.benchmarks.emplace_back(k, v.get<double>());
    }
    out.targets.push_back(std::move(ot));
  }
  if (error) error->clear();
  return out;
}

std::string_view gateStateName(GateState s) {
  switch (s) {
    case GateState::Gated: return "gated";
    case GateState::NotGated: return "not gated";
    case GateState::NoTarget: return "no target";
  }
  return "?";
}

GateStatus gateFor(std::string_view bench, std::span<const BenchResult> results, const OfficialTargets& targets) {
  GateStatus g;
  const BenchResult* best = nullptr;
  double bestOff = 0, bestTarget = 0;
  for (const auto& r : results) {
    if (r.bench != bench || !r.higherIsBetter) continue;
    const OfficialTarget* t = targets.forModel(r.model);
    if (!t) continue;
    auto v = t->target(bench);
    if (!v) continue;
    double off = r.acc - *v;
    if (!best || std::abs(off) < std::abs(bestOff)) {
      best = &r;
      bestOff = off;
      bestTarget = *v;
    }
  }
  if (!best) return g;
  g.offBy = bestOff;
  g.state = std::abs(bestOff) <= targets.gatePoints + 1e-9 ? GateState::Gated : GateState::NotGated;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s (%s) %.1f vs official %.1f (%+.1f; gate %.1f points)", best->run.c_str(),
                best->model.c_str(), best->acc, bestTarget, bestOff, targets.gatePoints);
  g.evidence = buf;
  return g;
}
