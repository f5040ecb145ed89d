// razor validate-gguf FILE [--text T] [--ref REF.gguf] [--windows N --first-window F --window W]: loads the file
// in the real llama.cpp (node-llama-cpp, in a child process, so a llama.cpp abort fails only the check) and
// reports its perplexity on T; with --ref (the unquantized export) also the KL divergence from REF per
// position (mean, percentiles, maximum) and how often both agree on the most probable token, as
// llama-perplexity --kl-divergence reports them.
#include <cstdio>

#include "cli/commands.h"
#include "gguf/validate.h"

namespace {
struct validate_args {
  std::string file;
  razor::gguf::validate_options o;
  bool json = false, fast = false;
};

RAZOR_COMMAND("validate-gguf", "Load a GGUF file in the real llama.cpp: perplexity, and KL against a reference file", 320,
              [](CLI::App& sub) {
  auto a = std::make_shared<validate_args>();
  sub.add_option("file", a->file, "GGUF file (the first shard of a split file)")->required();
  sub.add_option("--text", a->o.text_path, "evaluation text (default: the bundled held-out kernel-docs-eval.txt)");
  sub.add_option("--ref", a->o.ref_path,
                 "reference GGUF (the unquantized F32/BF16 export): also report KL(REF || FILE) and same top-1");
  sub.add_option("--windows", a->o.windows, "windows of --window tokens to score (default 200)");
  sub.add_option("--first-window,--window-offset", a->o.first_window,
                 "score windows from this one on (default 0; skip the windows calibration used)");
  sub.add_option("--window,--ctx", a->o.window, "tokens per window, each from an empty cache (default 256)");
  sub.add_option("--batch", a->o.batch, "llama.cpp batch size (default 256)");
  sub.add_option("--threads", a->o.threads, "llama.cpp threads (default: cores - 1)");
  sub.add_option("--node", a->o.node, "node executable");
  sub.add_option("--oracle", a->o.oracle_dir, "folder with node_modules/node-llama-cpp");
  sub.add_flag("--fast", a->fast, "llama.cpp defaults (flash attention auto, F16 KV) instead of exact mode");
  sub.add_option("--generate", a->o.generate, "also generate N tokens greedily after the first 16 tokens of the text");
  sub.add_flag("--json", a->json, "print the script's JSON answer");
  return [a]() -> int {
    using namespace razor;
    if (auto st = cli::default_text(a->o.text_path, cli::bundled_text::evaluation); !st.ok()) return cli::report(st);
    a->o.exact = !a->fast;
    std::fprintf(stderr, "validate-gguf: llama.cpp scoring %d windows of %d tokens%s%s...\n", a->o.windows, a->o.window,
                 a->o.first_window > 0 ? (" from window " + std::to_string(a->o.first_window)).c_str() : "",
                 a->o.ref_path.empty() ? "" : (", against " + a->o.ref_path).c_str());
    auto r = gguf::validate_with_llamacpp(a->file, a->o);
    if (!r.ok()) return cli::report(r.error());
    if (a->json) {
      std::printf("%s\n", r->json.c_str());
    } else {
      std::printf("%s: loads in llama.cpp; perplexity %.4f over %d windows%s (%d predictions, %s), load %.0f ms, eval %.1f s\n",
                  a->file.c_str(), r->ppl, r->windows,
                  r->first_window > 0 ? (" from window " + std::to_string(r->first_window)).c_str() : "",
                  r->predictions, a->o.exact ? "exact mode" : "default mode",
                  r->load_ms, r->eval_ms / 1000.0);
      if (r->kl) {
        const auto& k = *r->kl;
        std::printf("against %s (perplexity %.4f, ln(PPL/PPL_ref) %+.5f):\n", a->o.ref_path.c_str(), k.ppl_ref,
                    k.ln_ppl_ratio);
        std::printf("  KL mean %.6f +- %.6f  median %.6f  p90 %.6f  p99 %.6f  p99.9 %.6f  max %.6f  (%lld positions)\n",
                    k.mean, k.mean_err, k.median, k.p90, k.p99, k.p999, k.max, (long long)k.positions);
        std::printf("  same top-1 %.3f +- %.3f %%  delta p mean %+.4f %%  rms %.4f %%\n", 100.0 * k.same_top1,
                    100.0 * k.same_top1_err, 100.0 * k.delta_p_mean, 100.0 * k.delta_p_rms);
        if (k.clamped > 0)
          std::printf("  note: %lld probabilities of FILE underflowed to 0 where REF's did not (taken as 1.4e-45)\n",
                      (long long)k.clamped);
      }
      if (a->o.generate > 0) {
        std::string ids;
        for (auto id : r->generated_ids) ids += (ids.empty() ? "" : " ") + std::to_string(id);
        std::printf("generated %zu tokens: \"%s\" (ids %s)\n", r->generated_ids.size(), r->generated.c_str(), ids.c_str());
      }
    }
    if (a->o.generate > 0 && r->generated_ids.empty())
      return cli::report(make_error(errc::external, a->file + ": llama.cpp generated no tokens"));
    return 0;
  };
});
}  // namespace
