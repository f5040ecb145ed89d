// razor probe MODEL [--text T] [--tokens N --seqlen 256 --offset K] [--out probe.h5] [--imatrix imatrix.gguf]
// One layer-streamed forward pass over N tokens of the text (fixtures' protocol tokens) starting at token K,
// writing per layer x expert routing statistics, weight norms and imatrix input statistics
// (docs/probe-format.md) and/or a llama.cpp GGUF importance matrix named by GGUF tensor
// (engine::probe_to_imatrix). Calibrate on tokens disjoint from the scored windows: the reference imatrix
// used windows 256..655 of the protocol stream, i.e. --offset 65536 --tokens 102400.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "engine/eval.h"
#include "engine/probe.h"
#include "gguf/imatrix.h"
#include "gguf/output_check.h"
#include "util/output_guard.h"
#include "model/checkpoint.h"
#include "util/atomic_file.h"

namespace {

struct probe_args {
  std::string model, text, out, imatrix, dataset;
  size_t tokens = 8192, seqlen = 256, offset = 0;
  bool no_imatrix = false;
};

int run_probe_cmd(const probe_args& a) {
  using namespace razor;
  if (a.out.empty() && a.imatrix.empty())
    return cli::report(make_error(errc::invalid_argument, "give --out (HDF5) and/or --imatrix (GGUF)"));
  if (a.no_imatrix && !a.imatrix.empty())
    return cli::report(make_error(errc::invalid_argument, "--imatrix needs the input statistics (drop --no-imatrix)"));
  // Both outputs may replace only razor's own earlier ones (util/output_guard.h): checked before the probe runs.
  if (!a.out.empty())
    if (auto st = check_output_file(a.out, engine::probe_h5_file, {a.model, a.text}); !st.ok()) return cli::report(st);
  if (!a.imatrix.empty())
    if (auto st = check_output_file(a.imatrix, gguf::imatrix_file, {a.model, a.text, a.out}); !st.ok())
      return cli::report(st);
  auto text = read_text_file(a.text);  // regular files only: a FIFO would block forever
  if (!text.ok()) return cli::report(text.error());
  auto ck = checkpoint::open(a.model);
  if (!ck.ok()) return cli::report(ck.error());
  auto tk = bpe_tokenizer::load(a.model + "/tokenizer.json");
  if (!tk.ok()) return cli::report(tk.error());
  auto tok = engine::protocol_tokens(*tk, *text, a.text);
  if (!tok.ok()) return cli::report(tok.error());
  const std::vector<int32_t>& tokens = *tok;
  auto wp = engine::checkpoint_weights(*ck);
  auto d = engine::dims_for(*wp);
  if (!d.ok()) return cli::report(d.error());
  if (a.offset >= tokens.size())
    return cli::report(make_error(errc::invalid_argument, "--offset " + std::to_string(a.offset) + " is past the " +
                                                              std::to_string(tokens.size()) + " tokens of the text"));
  size_t n = std::min(a.tokens, tokens.size() - a.offset);
  auto plan = engine::plan_memory(*d, n, (n + a.seqlen - 1) / a.seqlen, a.seqlen, 512);
  std::fprintf(stderr, "%s\n", plan.to_string().c_str());
  engine::probe_options opt;
  opt.n_tokens = a.tokens;
  opt.seqlen = a.seqlen;
  opt.first_token = a.offset;
  opt.collect_inputs = !a.no_imatrix;
  cli::stderr_progress prog("probe");
  opt.progress = [&](double d2, double t, const char* w) { return prog(d2, t, w); };
  auto r = engine::run_probe(*wp, tokens, opt);
  prog.finish();
  if (!r.ok()) return cli::report(r.error());
  r->model = a.model;
  if (!a.out.empty())
    if (auto st = engine::write_probe_h5(*r, a.out); !st.ok()) return cli::report(st);
  std::printf("tokens [%zu, %zu) in %zu sequences, %.1f s (%.0f tokens/s)%s%s\n", r->first_token,
              r->first_token + r->n_tokens, r->n_seqs, r->seconds, r->tokens_per_s, a.out.empty() ? "" : " -> ",
              a.out.c_str());
  if (!a.imatrix.empty()) {
    std::vector<std::string> notes;
    std::string ds = a.dataset.empty() ? a.text + " [tokens " + std::to_string(r->first_token) + ".." +
                                             std::to_string(r->first_token + r->n_tokens) + ")"
                                       : a.dataset;
    auto im = engine::probe_to_imatrix(*r, ck->config(), ds, &notes);
    if (!im.ok()) return cli::report(im.error());
    for (auto& n : notes) std::fprintf(stderr, "note: %s\n", n.c_str());
    if (auto st = gguf::write_imatrix_gguf(*im, a.imatrix); !st.ok()) return cli::report(st);
    std::printf("imatrix: %zu entries (GGUF tensor names), %lld chunks of %lld -> %s\n", im->entries.size(),
                (long long)im->chunk_count, (long long)im->chunk_size, a.imatrix.c_str());
  }
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
                sub.add_option("--text", a->text, "UTF-8 calibration text (default: the bundled kernel-docs-calib.txt)");
                sub.add_option("--tokens", a->tokens, "tokens probed from the start of the text (default 8192)");
                sub.add_option("--seqlen", a->seqlen, "tokens per sequence, each from an empty cache (default 256)");
                sub.add_option("--offset", a->offset, "tokens of the stream skipped first (default 0; the reference imatrix: 65536)");
                sub.add_option("--out", a->out, "output HDF5 file");
                sub.add_option("--imatrix", a->imatrix, "also write a llama.cpp GGUF importance matrix (GGUF tensor names)");
                sub.add_option("--dataset", a->dataset, "imatrix.datasets entry (default: the text and token range)");
                sub.add_flag("--no-imatrix", a->no_imatrix, "skip the per-tensor input statistics");
                return [a] {
                  if (auto st = razor::cli::default_text(a->text, razor::cli::bundled_text::calibration); !st.ok())
                    return razor::cli::report(st);
                  return run_probe_cmd(*a);
                };
              });

}  // namespace
