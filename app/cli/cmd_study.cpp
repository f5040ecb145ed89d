// razor study MODEL --probe P --budgets 3.0,2.5 --strategies solver,asal,... --text T --windows N --out study.json
// For every (strategy, budget): the allocation (as `razor allocate` builds it), the model fake-quantized in
// memory through the engine's weight transform (no checkpoint written), and KL (mean, p99), perplexity and
// same-top-1 against the unquantized model, on windows after the probe's calibration tokens. Prints a
// markdown table and writes plot-ready JSON (razor.study/1).
#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>

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

struct study_args {
  std::string model, probe, budgets = "3.0,2.5", strategies = "solver,asal,wmass,freq,composite,wfro,random,blind,inverse";
  std::string text, out, base = "seed-default", choices = "1.58,2,3,4,8", salience = "output";
  int windows = 32, ctx = 256, batch = 16;
  int64_t eval_offset = -1;
  uint64_t seed = 0;
  bool per_layer = false;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) v.push_back(item);
  return v;
}

int run_study(const study_args& a) {
  using namespace razor;
  if (!a.out.empty())  // may replace only an earlier study (util/output_guard.h): checked before the work
    if (auto s = check_output_file(a.out, [](const std::string& p) { return razor_json_file(p, "razor.study/"); },
                                   {a.model, a.probe, a.text});
        !s.ok())
      return cli::report(s);
  auto ck = checkpoint::open(a.model);
  if (!ck.ok()) return cli::report(ck.error());
  auto base = load_recipe(a.base);
  if (!base.ok()) return cli::report(base.error());
  auto pr = engine::read_probe_h5(a.probe);
  if (!pr.ok()) return cli::report(pr.error());
  auto st = quant::stats_from_probe(*pr);
  if (!st.ok()) return cli::report(st.error());
  auto text = read_text_file(a.text);
  if (!text.ok()) return cli::report(text.error());
  auto tk = bpe_tokenizer::load(a.model + "/tokenizer.json");
  if (!tk.ok()) return cli::report(tk.error());
  auto tok = engine::protocol_tokens(*tk, *text, a.text);
  if (!tok.ok()) return cli::report(tok.error());
  const std::vector<int32_t>& tokens = *tok;
  const size_t offset = a.eval_offset >= 0 ? size_t(a.eval_offset)
                                           : (pr->n_tokens + size_t(a.ctx) - 1) / size_t(a.ctx) * size_t(a.ctx);
  if (offset < pr->n_tokens)
    std::fprintf(stderr, "warning: evaluation starts at token %zu, inside the probe's %zu calibration tokens\n", offset,
                 size_t(pr->n_tokens));

  std::vector<double> choices;
  for (auto& c : split(a.choices)) choices.push_back(std::stod(c));
  quant::measure_options mo;
  mo.group = base->group;
  mo.clip_steps = base->clip_steps;
  for (double b : choices) mo.bits.push_back(b);
  std::sort(mo.bits.begin(), mo.bits.end());
  mo.bits.erase(std::unique(mo.bits.begin(), mo.bits.end()), mo.bits.end());
  cli::stderr_progress mprog("measure errors");
  mo.progress = [&](double d, double t, const char* w) { return mprog(d, t, w); };
  bool cached = false;
  const std::string cache = quant::error_cache_path(a.probe, mo.group, mo.clip_steps);
  auto errs = quant::load_or_measure_errors(*ck, *st, mo, cache, quant::probe_identity(a.probe, *pr), &cached);
  mprog.finish();
  if (!errs.ok()) return cli::report(errs.error());
  auto sal = quant::salience_from_name(a.salience);
  if (!sal.ok()) return cli::report(sal.error());

  engine::eval_options eo;
  eo.windows = a.windows;
  eo.ctx = a.ctx;
  eo.batch_windows = a.batch;
  std::fprintf(stderr, "study: %zu protocol tokens, evaluating %d windows of %d from token %zu (probe: %zu tokens)\n",
               tokens.size(), a.windows, a.ctx, offset, size_t(pr->n_tokens));

  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  std::map<std::string, nlohmann::ordered_json> series;
  double ref_ppl = 0;
  std::printf("| strategy | budget | expert bits | packed MB | predicted damage | KL mean | KL p99 | ppl | same top-1 |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);
  for (auto& bs : split(a.budgets)) {
    auto tgt = quant::parse_target(bs.find_first_not_of("0123456789.") == std::string::npos ? bs + "bits" : bs);
    if (!tgt.ok()) return cli::report(tgt.error());
    for (auto& sname : split(a.strategies)) {
      auto t0 = std::chrono::steady_clock::now();
      recipe r;
      nlohmann::json rep;
      if (sname == "flat") {
        // every routed expert at the budget's bit width (the seed's "uniform int3" spec), when it is one
        if (tgt->k != quant::alloc_target::kind::expert_bits || !valid_bits(tgt->value)) continue;
        r = *base;
        r.expert_bits.clear();
        for (int L = 0; L < st->n_layers; ++L) r.expert_bits[L] = std::vector<double>(size_t(st->n_experts), tgt->value);
        auto fpr = compute_footprint(*ck, r);
        if (!fpr.ok()) return cli::report(fpr.error());
        const footprint& fp = *fpr;
        auto dm = quant::make_damage_model(*st, *errs, {*sal, true, 0.02});
        double d = 0;
        if (dm.ok())
          for (int L = 0; L < st->n_layers; ++L)
            for (int e = 0; e < st->n_experts; ++e) d += dm->damage(L, e, tgt->value, tgt->value);
        rep = {{"footprint", {{"expert_avg_bits", fp.expert_avg_bits()}, {"packed_bytes", fp.packed_bytes()}}},
               {"predicted_damage", std::isnan(d) ? nlohmann::json(nullptr) : nlohmann::json(d)}};
      } else {
        auto strat = quant::strategy_from_name(sname);
        if (!strat.ok()) return cli::report(strat.error());
        quant::allocate_options opt;
        opt.strat = *strat;
        opt.target = *tgt;
        opt.global_rank = !a.per_layer;
        opt.seed = a.seed;
        opt.choices = choices;
        opt.damage.salience = *sal;
        auto al = quant::allocate(*ck, *base, *st, &*errs, opt);
        if (!al.ok()) return cli::report(al.error());
        r = al->r;
        rep = al->report;
      }
      cli::stderr_progress kprog("KL " + sname + " " + bs);
      eo.run.progress = [&](double d, double t, const char* w) { return kprog(d, t, w); };
      auto kl = quant::measure_recipe_kl(*ck, r, tokens, offset, eo);
      kprog.finish();
      if (!kl.ok()) return cli::report(kl.error());
      ref_ppl = kl->ref.ppl;
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double bits = rep["footprint"]["expert_avg_bits"].get<double>();
      const double bytes = rep["footprint"]["packed_bytes"].get<double>();
      nlohmann::ordered_json row;
      row["strategy"] = sname;
      row["budget"] = bs;
      row["expert_bits"] = bits;
      row["packed_bytes"] = bytes;
      row["predicted_damage"] = rep["predicted_damage"];
      row["kl_mean"] = kl->kl_mean;
      row["kl_p99"] = kl->kl_p99;
      row["kl_p999"] = kl->kl_p999;
      row["topk_kl"] = kl->topk_kl;
      row["ppl"] = kl->model.ppl;
      row["same_top1"] = kl->same_top1;
      row["n_positions"] = kl->n_positions;
      row["seconds"] = secs;
      if (rep.contains("layers")) {
        std::vector<double> lb;
        for (auto& l : rep["layers"]) lb.push_back(l["avg_bits"].get<double>());
        row["layer_bits"] = lb;
      }
      row["expert_bits_by_layer"] = r.expert_bits;
      rows.push_back(row);
      auto& s = series[sname];
      s["budget"].push_back(bs);
      s["expert_bits"].push_back(bits);
      s["kl_mean"].push_back(kl->kl_mean);
      s["kl_p99"].push_back(kl->kl_p99);
      s["ppl"].push_back(kl->model.ppl);
      s["same_top1"].push_back(kl->same_top1);
      char dmg[32] = "-";
      if (!rep["predicted_damage"].is_null()) std::snprintf(dmg, sizeof dmg, "%.4g", rep["predicted_damage"].get<double>());
      std::printf("| %s | %s | %.4f | %.3f | %s | %.5f | %.5f | %.4f | %.4f |\n", sname.c_str(), bs.c_str(), bits,
                  bytes / 1e6, dmg, kl->kl_mean, kl->kl_p99, kl->model.ppl, kl->same_top1);
      std::fflush(stdout);
    }
  }
  std::printf("\nreference (unquantized) ppl %.4f on %d windows of %d from token %zu\n", ref_ppl, a.windows, a.ctx,
              offset);
  nlohmann::ordered_json out;
  out["format"] = "razor.study/1";
  out["model"] = a.model;
  out["probe"] = a.probe;
  out["probe_tokens"] = pr->n_tokens;
  out["base_recipe"] = base->name;
  out["text"] = a.text;
  out["windows"] = a.windows;
  out["ctx"] = a.ctx;
  out["eval_offset_tokens"] = offset;
  out["ref_ppl"] = ref_ppl;
  out["choices"] = choices;
  out["salience"] = a.salience;
  out["error_cache"] = cache;
  out["rows"] = rows;
  nlohmann::ordered_json sj = nlohmann::ordered_json::object();
  for (auto& [k, v] : series) sj[k] = v;
  out["series"] = sj;
  if (!a.out.empty()) {
    if (auto s = write_file_atomic(a.out, dump_json(out, 2) + "\n"); !s.ok()) return cli::report(s);
    std::fprintf(stderr, "wrote %s\n", a.out.c_str());
  }
  return 0;
}

RAZOR_COMMAND("study", "Allocation study: KL / ppl of every strategy x budget, fake-quantized in memory", 330,
              [](CLI::App& sub) {
                auto a = std::make_shared<study_args>();
                sub.add_option("model", a->model, "Hugging Face checkpoint directory")->required();
                sub.add_option("--probe", a->probe, "probe file (razor probe)")->required();
                sub.add_option("--budgets", a->budgets, "comma list: expert bits (3.0) or sizes (47GB) (default 3.0,2.5)");
                sub.add_option("--strategies", a->strategies,
                               "comma list of razor allocate strategies, plus 'flat' (every expert at the budget's "
                               "bits) (default solver,asal,wmass,freq,composite,wfro,random,blind,inverse)");
                sub.add_option("--text", a->text, "evaluation text (default: the bundled held-out kernel-docs-eval.txt)");
                sub.add_option("--windows", a->windows, "windows evaluated (default 32)");
                sub.add_option("--ctx", a->ctx, "tokens per window (default 256)");
                sub.add_option("--batch", a->batch, "windows run together (default 16)");
                sub.add_option("--eval-offset", a->eval_offset,
                               "first token evaluated (default: after the probe's tokens, rounded up to ctx)");
                sub.add_option("--base", a->base, "recipe for the rest of the model (default seed-default)");
                sub.add_option("--choices", a->choices, "solver bit choices (default 1.58,2,3,4,8)");
                sub.add_option("--salience", a->salience, "solver salience (default output)");
                sub.add_option("--seed", a->seed, "random strategy seed (default 0)");
                sub.add_flag("--per-layer", a->per_layer, "seed strategies rank within each layer");
                sub.add_option("--out", a->out, "study JSON (razor.study/1)");
                return [a] {
                  if (auto st = razor::cli::default_text(a->text, razor::cli::bundled_text::evaluation); !st.ok())
                    return razor::cli::report(st);
                  return run_study(*a);
                };
              });

}  // namespace
