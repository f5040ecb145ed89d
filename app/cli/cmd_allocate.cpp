// razor allocate MODEL --probe P --target 47GB|3.05bits [--strategy solver|composite|...] --out recipe.json
// Routed-expert bit allocation from a probe file (razor probe): the seed's salience strategies or the budget
// solver (docs/allocation.md). Writes a razor.recipe/1 file `razor quantize` accepts as is, whose footprint is
// what `razor footprint --recipe` reports, and a report (razor.allocation/1) beside it; with --measure, also the
// measured KL against the unquantized model on text windows after the probe's calibration tokens.
// --mode gguf: one ggml type per quantized tensor of the whole GGUF file under an exact byte budget, from KL
// sensitivities measured in memory (core/alloc, docs/allocation.md "Whole-file GGUF allocation"), written as a
// tensor-type recipe that `razor pack --recipe` takes unchanged.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "alloc/job.h"
#include "cli/commands.h"
#include "engine/eval.h"
#include "engine/probe.h"
#include "engine/tokenizer.h"
#include "model/checkpoint.h"
#include "quant/allocate.h"
#include "quant/allocate_engine.h"
#include "util/atomic_file.h"
#include "util/json_limits.h"
#include "util/output_guard.h"

namespace {

struct allocate_args {
  std::string model, probe, target, mode = "fake", strategy = "solver", out, base = "seed-default", report;
  std::string tags = "1.58,4", choices = "1.58,2,3,4,8", salience = "output", text, imatrix, types;
  bool per_layer = false, per_proj = false, plain_error = false, no_cache = false, measure = false, json = false;
  uint64_t seed = 0;
  int windows = 32, ctx = 256;
  int64_t eval_offset = -1;
  // gguf mode
  std::vector<std::string> role_types;
  bool allow_missing_imatrix = false;
  int calib_windows = 8, fit_types = 3;
  int64_t calib_offset = 0;
  std::string sensitivity = "full", cache, eval_text;
};

razor::result<std::vector<double>> parse_list(const std::string& s, const char* what) {
  std::vector<double> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      v.push_back(std::stod(item));
    } catch (...) {
      return razor::make_error(razor::errc::invalid_argument, std::string(what) + ": '" + item + "' is not a number");
    }
  }
  if (v.empty()) return razor::make_error(razor::errc::invalid_argument, std::string(what) + ": empty list");
  return v;
}

// --mode gguf: one ggml type per quantized tensor of the file under an exact byte budget (core/alloc/job.h).
int run_allocate_gguf(const allocate_args& a) {
  using namespace razor;
  alloc::gguf_alloc_params p;
  p.model = a.model;
  p.target = a.target;
  p.out = a.out;
  p.report = a.report;
  p.imatrix = a.imatrix;
  p.types = a.types;
  p.role_types = a.role_types;
  p.allow_missing_imatrix = a.allow_missing_imatrix;
  p.text = a.text;
  p.measure_text = a.eval_text;
  if (auto st = cli::default_text(p.text, cli::bundled_text::calibration); !st.ok()) return cli::report(st);
  if (a.measure)
    if (auto st = cli::default_text(p.measure_text, cli::bundled_text::evaluation); !st.ok()) return cli::report(st);
  p.windows = a.calib_windows;
  p.ctx = a.ctx;
  p.offset = a.calib_offset;
  p.sensitivity = a.sensitivity;
  p.fit_types = a.fit_types;
  p.cache = a.cache;
  p.no_cache = a.no_cache;
  p.measure = a.measure;
  p.measure_windows = a.windows;
  p.measure_offset = a.eval_offset;
  cli::stderr_progress prog("sensitivity");
  auto rep = alloc::run_gguf_allocation(p, [&](double d, double t, const char* w) { return prog(d, t, w); });
  prog.finish();
  if (!rep.ok()) return cli::report(rep.error());
  const nlohmann::json& r = *rep;
  if (a.json) {
    std::printf("%s\n", r.dump().c_str());
    return 0;
  }
  const auto& sz = r["size"];
  std::printf("gguf whole-file allocation, target %s: %llu bytes (%.4f bits per weight), predicted KL %.6g%s\n",
              a.target.c_str(), (unsigned long long)sz["file_bytes"].get<uint64_t>(), sz["bpw"].get<double>(),
              r["predicted_kl"].get<double>(), r["solver"]["exact"].get<bool>() ? " (exact optimum)" : "");
  const auto& se = r["sensitivity"];
  std::printf("sensitivities: %s, %d KL measurements on %zu positions%s\n", se["mode"].get<std::string>().c_str(),
              se["measurements"].get<int>(), r["calibration"]["positions"].get<size_t>(),
              se["from_cache"].get<bool>() ? " (reused from " : " (cached in ");
  std::printf("  %s)\n", se["cache"].get<std::string>().c_str());
  std::printf("%-34s %-18s %-8s %8s %12s\n", "tensor", "role", "type", "bpw", "KL");
  for (auto& t : r["tensors"])
    std::printf("%-34s %-18s %-8s %8.3f %12.4g\n", t["tensor"].get<std::string>().c_str(),
                t["role"].get<std::string>().c_str(), t["type"].get<std::string>().c_str(), t["bpw"].get<double>(),
                t["damage"].get<double>());
  if (r.contains("measured"))
    std::printf("measured (whole allocation, in memory): KL mean %.6f  p99 %.6f  same top-1 %.4f  (predicted %.6f)\n",
                r["measured"]["kl_mean"].get<double>(), r["measured"]["kl_p99"].get<double>(),
                r["measured"]["same_top1"].get<double>(), r["predicted_kl"].get<double>());
  std::printf("wrote %s and %s (razor pack MODEL --recipe %s%s%s --out F.gguf)\n", a.out.c_str(),
              r["report"].get<std::string>().c_str(), a.out.c_str(), a.imatrix.empty() ? "" : " --imatrix ",
              a.imatrix.c_str());
  return 0;
}

int run_allocate(const allocate_args& a) {
  using namespace razor;
  if (a.mode == "gguf") return run_allocate_gguf(a);
  if (a.mode != "fake")
    return cli::report(make_error(errc::invalid_argument, "--mode " + a.mode + ": expected fake or gguf"));
  if (a.probe.empty()) return cli::report(make_error(errc::invalid_argument, "--probe is required in fake mode"));
  auto ck = checkpoint::open(a.model);
  if (!ck.ok()) return cli::report(ck.error());
  auto base = load_recipe(a.base);
  if (!base.ok()) return cli::report(base.error());
  auto pr = engine::read_probe_h5(a.probe);
  if (!pr.ok()) return cli::report(pr.error());
  auto st = quant::stats_from_probe(*pr);
  if (!st.ok()) return cli::report(st.error());
  auto tgt = quant::parse_target(a.target);
  if (!tgt.ok()) return cli::report(tgt.error());
  auto strat = quant::strategy_from_name(a.strategy);
  if (!strat.ok()) return cli::report(strat.error());
  std::string report_path = a.report;
  if (report_path.empty()) {
    report_path = a.out;
    if (report_path.size() > 5 && report_path.substr(report_path.size() - 5) == ".json")
      report_path.resize(report_path.size() - 5);
    report_path += ".report.json";
  }
  // Both outputs may replace only razor's own earlier ones (util/output_guard.h): checked before the work.
  const std::vector<std::string> inputs = {a.model, a.probe, a.base, a.text};
  auto razor_json = [](const std::string& p) { return razor_json_file(p); };
  if (auto s = check_output_file(a.out, razor_json, inputs); !s.ok()) return cli::report(s);
  if (auto s = check_output_file(report_path, razor_json, inputs); !s.ok()) return cli::report(s);
  quant::allocate_options opt;
  opt.strat = *strat;
  opt.target = *tgt;
  opt.global_rank = !a.per_layer;
  opt.seed = a.seed;
  opt.per_projection = a.per_proj;
  auto tags = parse_list(a.tags, "--tags");
  if (!tags.ok()) return cli::report(tags.error());
  if (tags->size() != 2) return cli::report(make_error(errc::invalid_argument, "--tags: give lo,hi"));
  opt.tags = {(*tags)[0], (*tags)[1]};
  auto ch = parse_list(a.choices, "--choices");
  if (!ch.ok()) return cli::report(ch.error());
  opt.choices = *ch;
  auto sal = quant::salience_from_name(a.salience);
  if (!sal.ok()) return cli::report(sal.error());
  opt.damage.salience = *sal;
  opt.damage.weighted_error = !a.plain_error;

  // Measured errors: every candidate bit width the solver or the tags use, plus the standard set.
  quant::measure_options mo;
  mo.group = base->group;
  mo.clip_steps = base->clip_steps;
  std::vector<double> bits = mo.bits;
  for (double b : opt.choices) bits.push_back(b);
  bits.push_back(opt.tags.lo);
  bits.push_back(opt.tags.hi);
  std::sort(bits.begin(), bits.end());
  bits.erase(std::unique(bits.begin(), bits.end()), bits.end());
  mo.bits = bits;
  cli::stderr_progress mprog("measure errors");
  mo.progress = [&](double d, double t, const char* w) { return mprog(d, t, w); };
  bool cached = false;
  const std::string cache = a.no_cache ? "" : quant::error_cache_path(a.probe, mo.group, mo.clip_steps);
  auto errs = quant::load_or_measure_errors(*ck, *st, mo, cache, quant::probe_identity(a.probe, *pr), &cached);
  mprog.finish();
  if (!errs.ok()) return cli::report(errs.error());
  std::fprintf(stderr, "quantization errors: %s %s\n", cached ? "loaded from" : "measured; cached in",
               cache.empty() ? "(no cache)" : cache.c_str());

  auto al = quant::allocate(*ck, *base, *st, &*errs, opt);
  if (!al.ok()) return cli::report(al.error());
  if (auto s = save_recipe(al->r, a.out); !s.ok()) return cli::report(s);
  nlohmann::json rep = al->report;
  rep["probe"] = a.probe;
  rep["error_cache"] = cache;
  rep["recipe"] = a.out;

  if (a.measure) {
    if (a.text.empty()) return cli::report(make_error(errc::invalid_argument, "--measure needs --text"));
    auto text = read_text_file(a.text);
    if (!text.ok()) return cli::report(text.error());
    auto tk = bpe_tokenizer::load(a.model + "/tokenizer.json");
    if (!tk.ok()) return cli::report(tk.error());
    auto tok = engine::protocol_tokens(*tk, *text, a.text);
    if (!tok.ok()) return cli::report(tok.error());
    const std::vector<int32_t>& tokens = *tok;
    const size_t offset = a.eval_offset >= 0 ? size_t(a.eval_offset)
                                             : (pr->n_tokens + size_t(a.ctx) - 1) / size_t(a.ctx) * size_t(a.ctx);
    engine::eval_options eo;
    eo.windows = a.windows;
    eo.ctx = a.ctx;
    cli::stderr_progress kprog("measure KL");
    eo.run.progress = [&](double d, double t, const char* w) { return kprog(d, t, w); };
    auto kl = quant::measure_recipe_kl(*ck, al->r, tokens, offset, eo);
    kprog.finish();
    if (!kl.ok()) return cli::report(kl.error());
    rep["measured"] = {{"text", a.text},         {"windows", a.windows},     {"ctx", a.ctx},
                       {"eval_offset_tokens", offset}, {"kl_mean", kl->kl_mean}, {"kl_p99", kl->kl_p99},
                       {"topk_kl", kl->topk_kl}, {"same_top1", kl->same_top1}, {"ppl", kl->model.ppl},
                       {"ref_ppl", kl->ref.ppl}, {"n_positions", kl->n_positions}};
  }
  if (auto s = write_file_atomic(report_path, dump_json(rep, 2) + "\n"); !s.ok()) return cli::report(s);
  if (a.json) {
    std::printf("%s\n", dump_json(rep).c_str());
    return 0;
  }
  auto& fp = rep["footprint"];
  std::printf("strategy %s, target %s: expert bits %.4f, packed %.6f GB (%.6f GiB), seed effective bits %.4f\n",
              a.strategy.c_str(), a.target.c_str(), fp["expert_avg_bits"].get<double>(),
              fp["packed_gb"].get<double>(), fp["packed_gib"].get<double>(), fp["seed_effective_bits"].get<double>());
  if (!rep["predicted_damage"].is_null())
    std::printf("predicted damage %.6g%s\n", rep["predicted_damage"].get<double>(),
                rep.contains("solver") ? (rep["solver"]["exact"].get<bool>() ? " (exact optimum)" : " (greedy)") : "");
  std::printf("layer  avg bits  bits histogram\n");
  for (auto& l : rep["layers"]) {
    std::string h;
    for (auto it = l["bits_histogram"].begin(); it != l["bits_histogram"].end(); ++it)
      h += it.key() + ":" + std::to_string(it.value().get<int>()) + " ";
    std::printf("%5d  %8.3f  %s\n", l["layer"].get<int>(), l["avg_bits"].get<double>(), h.c_str());
  }
  if (rep.contains("measured"))
    std::printf("measured: KL mean %.6f  p99 %.6f  ppl %.4f (ref %.4f)  same top-1 %.4f\n",
                rep["measured"]["kl_mean"].get<double>(), rep["measured"]["kl_p99"].get<double>(),
                rep["measured"]["ppl"].get<double>(), rep["measured"]["ref_ppl"].get<double>(),
                rep["measured"]["same_top1"].get<double>());
  std::printf("wrote %s and %s\n", a.out.c_str(), report_path.c_str());
  return 0;
}

RAZOR_COMMAND("allocate", "Bit allocation: per-expert bits from a probe (fake mode) or a ggml type per GGUF tensor (gguf mode)", 320,
              [](CLI::App& sub) {
                auto a = std::make_shared<allocate_args>();
                std::string strategies;
                for (auto& s : razor::quant::all_strategies())
                  strategies += std::string(strategies.empty() ? "" : ", ") + std::string(s.name);
                sub.add_option("model", a->model, "Hugging Face checkpoint directory")->required();
                sub.add_option("--probe", a->probe, "probe file written by `razor probe` (HDF5; fake mode)");
                sub.add_option("--target", a->target,
                               "budget: packed footprint ('47GB', '45GiB', '7879360B') or bits ('3.05bits': average "
                               "routed-expert bits in fake mode, bits per weight of the whole file in gguf mode)")
                    ->required();
                sub.add_option("--mode", a->mode,
                               "fake (razor.recipe/1 for razor quantize) or gguf (tensor-type recipe for razor pack: one "
                               "ggml type per quantized tensor of the whole file, from measured KL sensitivities)");
                sub.add_option("--imatrix", a->imatrix,
                               "gguf mode: importance matrix (the quantizers' weights, as pack uses it; enables the "
                               "types llama.cpp only quantizes with one)");
                sub.add_option("--types", a->types, "gguf mode: the type ladder (default: every ggml type and f16)");
                sub.add_option("--role-types", a->role_types,
                               "gguf mode: ROLE=TYPE[,TYPE...]: the only types for a role (embedding, output_head, "
                               "attention, linear_attention, shared_expert, routed_expert); repeatable");
                sub.add_flag("--allow-missing-imatrix", a->allow_missing_imatrix,
                             "gguf mode: offer types that need an importance matrix without one (llama-quantize refuses)");
                sub.add_option("--calib-windows", a->calib_windows,
                               "gguf mode: calibration windows of --ctx tokens from --text (default 8)");
                sub.add_option("--calib-offset", a->calib_offset, "gguf mode: first calibration token (default 0)");
                sub.add_option("--sensitivity", a->sensitivity,
                               "gguf mode: full (KL at every type, default) or fit (KL at --fit-types types, fitted curve)");
                sub.add_option("--fit-types", a->fit_types, "gguf mode, --sensitivity fit: types measured per tensor (default 3)");
                sub.add_option("--cache", a->cache,
                               "gguf mode: sensitivity measurements, reused when model, imatrix, tokens and ladder match "
                               "(default <out>.sensitivity.json)");
                sub.add_option("--strategy", a->strategy, "one of: " + strategies + " (default solver)");
                sub.add_option("--out", a->out, "output recipe (razor.recipe/1)")->required();
                sub.add_option("--base", a->base, "fake mode: recipe for everything but the routed experts (default seed-default)");
                sub.add_option("--report", a->report, "report file (default <out>.report.json)");
                sub.add_option("--tags", a->tags, "seed strategies: lo,hi tags (default 1.58,4)");
                sub.add_flag("--per-layer", a->per_layer, "seed strategies: rank within each layer instead of globally");
                sub.add_option("--seed", a->seed, "random strategy: seed (default 0)");
                sub.add_option("--choices", a->choices, "solver: allowed bits (default 1.58,2,3,4,8)");
                sub.add_flag("--per-proj", a->per_proj, "solver: choose gate_up and down bits separately (per-expert layouts)");
                sub.add_option("--salience", a->salience, "solver salience: output (default), wmass, asal, freq");
                sub.add_flag("--plain-error", a->plain_error, "solver: unweighted relative error (ignore the imatrix)");
                sub.add_flag("--no-cache", a->no_cache, "measure the errors again and do not write the cache");
                sub.add_flag("--measure", a->measure, "also measure KL against the unquantized model");
                sub.add_option("--text", a->text,
                               "fake mode: the --measure text (default the bundled held-out text); gguf mode: the "
                               "calibration text (default the bundled calibration text)");
                sub.add_option("--eval-text", a->eval_text,
                               "gguf mode: the --measure text (default the bundled held-out text)");
                sub.add_option("--windows", a->windows, "--measure: windows (default 32)");
                sub.add_option("--ctx", a->ctx, "tokens per window (default 256)");
                sub.add_option("--eval-offset", a->eval_offset,
                               "--measure: first token evaluated (default: after the probe's tokens, rounded to ctx; gguf "
                               "mode: 0 of --eval-text)");
                sub.add_flag("--json", a->json, "print the report JSON");
                return [a] {
                  if (a->measure && a->mode != "gguf") {
                    if (auto st = razor::cli::default_text(a->text, razor::cli::bundled_text::evaluation); !st.ok())
                      return razor::cli::report(st);
                  }
                  return run_allocate(*a);
                };
              });

}  // namespace
