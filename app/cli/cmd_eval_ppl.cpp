// razor eval-ppl MODEL [--ref MODEL] [--text T] [--windows 200 --ctx 256]
// razor eval-ppl MODEL --recipe R.json --text T      fake-quantized MODEL, in memory, vs MODEL
// razor eval-ppl MODEL --gguf F.gguf --text T [--llamacpp]   F dequantized back to MODEL's layout, vs MODEL
// Perplexity of a Hugging Face checkpoint with the reference CPU engine and the fixtures' protocol
// (resources/models/README.md); with --ref, also KL divergence of MODEL's next-token distributions against
// the reference model's (mean, p99, p99.9, topk_kl, same-top-1 rate). With --recipe or --gguf the model
// scored is the quantized one and the reference (KL) is MODEL itself unless --ref says otherwise:
//   --recipe: every tensor through core/quant's fake_quant with the recipe's bits as it is loaded
//             (engine::fake_quant_weights); no checkpoint is written;
//   --gguf:   the GGUF's tensors dequantized by ggml's dequantize_row and mapped back to Hugging Face names
//             and layout, the conversion's transformations inverted (engine::gguf_weights); the engine computes
//             in float32 on the dequantized weights. --llamacpp also scores the file in the real llama.cpp
//             (validate-gguf; ggml quantizes activations to q8 inside quantized matmuls, so its perplexity
//             differs slightly from the engine's on the same weights).
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "engine/eval.h"
#include "gguf/validate.h"
#include "model/checkpoint.h"
#include "model/recipe.h"
#include "util/atomic_file.h"
#include "util/json_limits.h"

namespace {

struct eval_ppl_args {
  std::string model, ref, text, recipe, gguf;
  bool llamacpp = false;
  int windows = 200, ctx = 256, batch = 16, topk = 256;
  bool json = false, plan = true;
  std::string device = "cpu";
};

razor::status read_file(const std::string& path, std::string* out) {
  auto t = razor::read_text_file(path);  // regular files only: a FIFO would block forever
  if (!t.ok()) return t.error();
  *out = std::move(t).value();
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
  auto tok = engine::protocol_tokens(*tk, text, a.text);
  if (!tok.ok()) return cli::report(tok.error());
  const std::vector<int32_t>& tokens = *tok;
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
  opt.run.device = a.device == "cuda" || a.device == "gpu" ? engine::backend::cuda
                   : a.device == "auto"                    ? engine::backend::automatic
                                                           : engine::backend::cpu;
  if (!a.recipe.empty() && !a.gguf.empty())
    return cli::report(make_error(errc::invalid_argument, "give --recipe or --gguf, not both"));
  nlohmann::json out = {{"model", a.model}, {"text", a.text}, {"windows", a.windows}, {"ctx", a.ctx},
                        {"n_tokens", tokens.size()}};
  std::unique_ptr<engine::weight_provider> wp;
  result<recipe> rec = make_error(errc::internal, "");
  std::string ref = a.ref;
  if (!a.recipe.empty()) {
    rec = load_recipe(a.recipe);
    if (!rec.ok()) return cli::report(rec.error());
    wp = engine::fake_quant_weights(*ck, *rec);
    out["recipe"] = a.recipe;
    if (ref.empty()) ref = a.model;
    std::fprintf(stderr, "eval-ppl: MODEL fake-quantized in memory with %s (KL against %s)\n", a.recipe.c_str(), ref.c_str());
  } else if (!a.gguf.empty()) {
    auto g = engine::gguf_weights(a.gguf, ck->config());
    if (!g.ok()) return cli::report(g.error());
    wp = std::move(g).value();
    out["gguf"] = a.gguf;
    if (ref.empty()) ref = a.model;
    std::fprintf(stderr, "eval-ppl: %s dequantized to MODEL's layout (KL against %s)\n", a.gguf.c_str(), ref.c_str());
    if (a.llamacpp) {
      gguf::validate_options vo;
      vo.text_path = a.text;
      vo.windows = a.windows;
      vo.window = a.ctx;
      auto v = gguf::validate_with_llamacpp(a.gguf, vo);
      if (!v.ok()) return cli::report(v.error());
      out["llamacpp_ppl"] = v->ppl;
      if (!a.json) std::printf("llama.cpp ppl %.4f  (exact mode, %d windows)\n", v->ppl, v->windows);
    }
  } else {
    wp = engine::checkpoint_weights(*ck);
  }
  if (ref.empty()) {
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
    auto rck = checkpoint::open(ref);
    if (!rck.ok()) return cli::report(rck.error());
    auto rtk = bpe_tokenizer::load(ref + "/tokenizer.json");
    if (auto rt = rtk.ok() ? engine::protocol_tokens(*rtk, text, a.text) : tok; !rt.ok() || *rt != tokens)
      return cli::report(make_error(errc::invalid_argument, "MODEL and --ref tokenize the text differently"));
    auto rp = engine::checkpoint_weights(*rck);
    auto r = engine::kl_divergence(*wp, *rp, tokens, opt);
    prog.finish();
    if (!r.ok()) return cli::report(r.error());
    out["ref"] = ref;
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
  if (a.json) std::printf("%s\n", dump_json(out).c_str());
  return 0;
}

RAZOR_COMMAND("eval-ppl", "Perplexity (and KL against --ref) with the reference engine (CPU, or CUDA with --device)", 300,
              [](CLI::App& sub) {
                auto a = std::make_shared<eval_ppl_args>();
                sub.add_option("model", a->model, "Hugging Face checkpoint directory")->required();
                sub.add_option("--ref", a->ref, "reference checkpoint: also report KL divergence against it");
                sub.add_option("--text", a->text, "UTF-8 text file (default: the bundled held-out text, kernel-docs-eval.txt)");
                sub.add_option("--recipe", a->recipe, "razor.recipe/1 fake-quant recipe: score MODEL fake-quantized in memory");
                sub.add_option("--gguf", a->gguf, "score this GGUF export of MODEL (dequantized back to MODEL's layout)");
                sub.add_flag("--llamacpp", a->llamacpp, "with --gguf: also score the file in llama.cpp (validate-gguf)");
                sub.add_option("--windows", a->windows, "number of windows scored (default 200)");
                sub.add_option("--ctx", a->ctx, "tokens per window (default 256)");
                sub.add_option("--batch", a->batch, "windows run through the layers together (default 16)");
                sub.add_option("--topk", a->topk, "K of topk_kl (default 256)");
                sub.add_flag("--json", a->json, "print one JSON object instead of text");
                sub.add_option("--device", a->device, "cpu (the reference, default), cuda, or auto (cuda when a GPU is present)")
                    ->check(CLI::IsMember({"cpu", "cuda", "gpu", "auto"}));
                return [a] {
                  if (auto st = razor::cli::default_text(a->text, razor::cli::bundled_text::evaluation); !st.ok())
                    return razor::cli::report(st);
                  return run_eval_ppl(*a);
                };
              });

}  // namespace
