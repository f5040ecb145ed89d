// razor eval-ppl MODEL [--ref MODEL] --text T [--windows 200 --ctx 256]
// Perplexity of a Hugging Face checkpoint with the reference CPU engine and the fixtures' protocol
// (shared/models/README.md); with --ref, also KL divergence of MODEL's next-token distributions against
// the reference model's (mean, p99, p99.9, topk_kl, same-top-1 rate).
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "engine/eval.h"
#include "model/checkpoint.h"

namespace {

struct eval_ppl_args {
  std::string model, ref, text;
  int windows = 200, ctx = 256, batch = 16, topk = 256;
  bool json = false, plan = true;
};

razor::status read_file(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return razor::make_error(razor::errc::not_found, path + ": cannot open text file");
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return {};
}

int run_eval_ppl(const eval_ppl_args& a) {
  using namespace razor;
  std::string text;
  if (auto st = read_file(a.text, &text); !st.ok()) return cli::report(st);
  auto ck = checkpoint::open(a.model);
  if (!ck.ok()) return cli::report(ck.error());
  auto tk = bpe_tokenizer::load(a.model + "/tokenizer.json");
  if (!tk.ok()) return cli::report(tk.error());
  auto tokens = engine::protocol_tokens(*tk, text);
  std::fprintf(stderr, "%s: %zu tokens with the protocol; %d windows of %d\n", a.text.c_str(), tokens.size(),
               a.windows, a.ctx);
  engine::eval_options opt;
  opt.windows = a.windows;
  opt.ctx = a.ctx;
  opt.batch_windows = a.batch;
  opt.topk = a.topk;
  opt.print_plan = a.plan;
  cli::stderr_progress prog("eval-ppl");
  opt.run.progress = [&](double d, double t, const char* w) { return prog(d, t, w); };
  auto wp = engine::checkpoint_weights(*ck);
  nlohmann::json out = {{"model", a.model}, {"text", a.text}, {"windows", a.windows}, {"ctx", a.ctx},
                        {"n_tokens", tokens.size()}};
  if (a.ref.empty()) {
    auto r = engine::perplexity(*wp, tokens, opt);
    prog.finish();
    if (!r.ok()) return cli::report(r.error());
    out["ppl"] = r->ppl;
    out["mean_nll"] = r->mean_nll;
    out["n_predictions"] = r->n_predictions;
    out["seconds"] = r->seconds;
    out["tokens_per_s"] = r->tokens_per_s;
    if (!a.json)
      std::printf("ppl %.4f  (mean NLL %.6f, %zu predictions, %.1f s, %.0f tokens/s)\n", r->ppl, r->mean_nll,
                  r->n_predictions, r->seconds, r->tokens_per_s);
  } else {
    auto rck = checkpoint::open(a.ref);
    if (!rck.ok()) return cli::report(rck.error());
    auto rtk = bpe_tokenizer::load(a.ref + "/tokenizer.json");
    if (rtk.ok() && engine::protocol_tokens(*rtk, text) != tokens)
      return cli::report(make_error(errc::invalid_argument, "MODEL and --ref tokenize the text differently"));
    auto rp = engine::checkpoint_weights(*rck);
    auto r = engine::kl_divergence(*wp, *rp, tokens, opt);
    prog.finish();
    if (!r.ok()) return cli::report(r.error());
    out["ref"] = a.ref;
    out["ppl"] = r->model.ppl;
    out["ref_ppl"] = r->ref.ppl;
    out["kl_mean"] = r->kl_mean;
    out["kl_p99"] = r->kl_p99;
    out["kl_p999"] = r->kl_p999;
    out["kl_max"] = r->kl_max;
    out["topk_kl"] = r->topk_kl;
    out["topk"] = a.topk;
    out["same_top1"] = r->same_top1;
    out["n_predictions"] = r->n_positions;
    out["tokens_per_s"] = r->model.tokens_per_s;
    if (!a.json)
      std::printf("ppl %.4f  ref ppl %.4f\nKL mean %.6f  p99 %.6f  p99.9 %.6f  max %.6f\ntopk_kl (K=%d) %.6f  "
                  "same top-1 %.4f  (%zu predictions)\n",
                  r->model.ppl, r->ref.ppl, r->kl_mean, r->kl_p99, r->kl_p999, r->kl_max, a.topk, r->topk_kl,
                  r->same_top1, r->n_positions);
  }
  if (a.json) std::printf("%s\n", out.dump().c_str());
  return 0;
}

RAZOR_COMMAND("eval-ppl", "Perplexity (and KL against --ref) with the reference CPU engine", 300,
              [](CLI::App& sub) {
                auto a = std::make_shared<eval_ppl_args>();
                sub.add_option("model", a->model, "Hugging Face checkpoint directory")->required();
                sub.add_option("--ref", a->ref, "reference checkpoint: also report KL divergence against it");
                sub.add_option("--text", a->text, "UTF-8 text file")->required();
                sub.add_option("--windows", a->windows, "number of windows scored (default 200)");
                sub.add_option("--ctx", a->ctx, "tokens per window (default 256)");
                sub.add_option("--batch", a->batch, "windows run through the layers together (default 16)");
                sub.add_option("--topk", a->topk, "K of topk_kl (default 256)");
                sub.add_flag("--json", a->json, "print one JSON object instead of text");
                return [a] { return run_eval_ppl(*a); };
              });

}  // namespace
