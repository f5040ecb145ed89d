// razor validate-gguf FILE [--text T]: loads the file in the real llama.cpp (node-llama-cpp, in a child
// process, so a llama.cpp abort fails only the check) and reports its perplexity on T.
#include <cstdio>

#include "cli/commands.h"
#include "gguf/validate.h"

namespace {
struct validate_args {
  std::string file;
  razor::gguf::validate_options o;
  bool json = false, fast = false;
};

RAZOR_COMMAND("validate-gguf", "Load a GGUF file in the real llama.cpp and measure its perplexity", 320,
              [](CLI::App& sub) {
  auto a = std::make_shared<validate_args>();
  sub.add_option("file", a->file, "GGUF file (the first shard of a split file)")->required();
  sub.add_option("--text", a->o.text_path, "evaluation text (default: the bundled held-out kernel-docs-eval.txt)");
  sub.add_option("--windows", a->o.windows, "windows of --window tokens to score (default 200)");
  sub.add_option("--window", a->o.window, "tokens per window (default 256)");
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
    std::fprintf(stderr, "validate-gguf: llama.cpp scoring %d windows of %d tokens...\n", a->o.windows, a->o.window);
    auto r = gguf::validate_with_llamacpp(a->file, a->o);
    if (!r.ok()) return cli::report(r.error());
    if (a->json) {
      std::printf("%s\n", r->json.c_str());
    } else {
      std::printf("%s: loads in llama.cpp; perplexity %.4f over %d windows (%d predictions, %s), load %.0f ms, eval %.1f s\n",
                  a->file.c_str(), r->ppl, r->windows, r->predictions, a->o.exact ? "exact mode" : "default mode",
                  r->load_ms, r->eval_ms / 1000.0);
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
