// razor probe MODEL --text T [--tokens N --seqlen 256] --out probe.h5
// One layer-streamed forward pass over the first N tokens of the text (fixtures' protocol tokens), writing
// per layer x expert routing statistics, weight norms and imatrix input statistics (docs/probe-format.md).
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "engine/eval.h"
#include "engine/probe.h"
#include "model/checkpoint.h"

namespace {

struct probe_args {
  std::string model, text, out;
  size_t tokens = 8192, seqlen = 256;
  bool no_imatrix = false;
};

int run_probe_cmd(const probe_args& a) {
  using namespace razor;
  std::ifstream f(a.text, std::ios::binary);
  if (!f) return cli::report(make_error(errc::not_found, a.text + ": cannot open text file"));
  std::stringstream ss;
  ss << f.rdbuf();
  auto ck = checkpoint::open(a.model);
  if (!ck.ok()) return cli::report(ck.error());
  auto tk = bpe_tokenizer::load(a.model + "/tokenizer.json");
  if (!tk.ok()) return cli::report(tk.error());
  auto tokens = engine::protocol_tokens(*tk, ss.str());
  auto d = engine::dims_from_config(ck->config());
  if (!d.ok()) return cli::report(d.error());
  size_t n = std::min(a.tokens, tokens.size());
  auto plan = engine::plan_memory(*d, n, (n + a.seqlen - 1) / a.seqlen, a.seqlen, 512);
  std::fprintf(stderr, "%s\n", plan.to_string().c_str());
  engine::probe_options opt;
  opt.n_tokens = a.tokens;
  opt.seqlen = a.seqlen;
  opt.collect_inputs = !a.no_imatrix;
  cli::stderr_progress prog("probe");
  opt.progress = [&](double d2, double t, const char* w) { return prog(d2, t, w); };
  auto wp = engine::checkpoint_weights(*ck);
  auto r = engine::run_probe(*wp, tokens, opt);
  prog.finish();
  if (!r.ok()) return cli::report(r.error());
  r->model = a.model;
  if (auto st = engine::write_probe_h5(*r, a.out); !st.ok()) return cli::report(st);
  std::printf("%zu tokens in %zu sequences, %.1f s (%.0f tokens/s) -> %s\n", r->n_tokens, r->n_seqs, r->seconds,
              r->tokens_per_s, a.out.c_str());
  std::printf("layer  entropy  max/mean  maxshare  cold\n");
  for (int L = 0; L < r->n_layers; ++L)
    std::printf("%5d  %7.3f  %8.2f  %8.3f  %4.2f\n", L, r->entropy[size_t(L)], r->max_mean[size_t(L)],
                r->maxshare[size_t(L)], r->cold_frac[size_t(L)]);
  return 0;
}

RAZOR_COMMAND("probe", "Routing statistics, weight norms and imatrix inputs to HDF5 (reference CPU engine)", 310,
              [](CLI::App& sub) {
                auto a = std::make_shared<probe_args>();
                sub.add_option("model", a->model, "Hugging Face checkpoint directory")->required();
                sub.add_option("--text", a->text, "UTF-8 calibration text")->required();
                sub.add_option("--tokens", a->tokens, "tokens probed from the start of the text (default 8192)");
                sub.add_option("--seqlen", a->seqlen, "tokens per sequence, each from an empty cache (default 256)");
                sub.add_option("--out", a->out, "output HDF5 file")->required();
                sub.add_flag("--no-imatrix", a->no_imatrix, "skip the per-tensor input statistics");
                return [a] { return run_probe_cmd(*a); };
              });

}  // namespace
