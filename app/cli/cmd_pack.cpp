// razor pack MODEL --type T | --recipe R [--imatrix F] [--allow-missing-imatrix] --out FILE.gguf
// Converts a Hugging Face checkpoint to GGUF in the requested ggml types (core/gguf/convert.h).
// --recipe takes a tensor-type recipe (llama-quantize --tensor-type-file syntax) or a razor.recipe/1 JSON
// fake-quant recipe, whose bits (per-expert bits included) are collapsed to one ggml type per GGUF tensor
// (gguf::collapse_bits_recipe; every change is printed).
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>

#include "cli/commands.h"
#include "ggml/types.h"
#include "gguf/convert.h"
#include "gguf/imatrix.h"
#include "model/checkpoint.h"
#include "model/recipe.h"

namespace {
struct pack_args {
  std::string model, recipe, type, imatrix, out, output_type, embd_type, name;
  double shard_gb = 0;
  int threads = 0;
  bool dry_run = false, allow_missing_imatrix = false;
  std::string layers = "all";          // --layers: write a part (docs/slurm.md)
  std::vector<std::string> from_parts;  // --from-part: assemble parts instead of quantizing
};

bool is_json_recipe(const std::string& path) {
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) return true;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  int c = 0;
  while ((c = std::fgetc(f)) != EOF && std::isspace(c)) {
  }
  std::fclose(f);
  return c == '{';
}

// The names of the table's types, all or those llama.cpp refuses without an imatrix ("q4_K, iq3_xxs, ...").
std::string type_names(bool imatrix_only) {
  std::string s;
  for (const auto& ti : razor::ggml::all_types())
    if (!imatrix_only || ti.needs_imatrix) s += (s.empty() ? "" : ", ") + std::string(ti.name);
  return s;
}

RAZOR_COMMAND("pack", "Convert a Hugging Face MoE checkpoint to GGUF (per-tensor types from a recipe)", 300,
              [](CLI::App& sub) {
  auto a = std::make_shared<pack_args>();
  sub.add_option("model", a->model, "checkpoint folder (config.json + *.safetensors)")->required();
  sub.add_option("--type,-t", a->type, "default ggml type: " + type_names(false));
  sub.add_option("--recipe,-r", a->recipe, "tensor-type recipe (llama-quantize --tensor-type-file syntax)");
  sub.add_option("--imatrix", a->imatrix, "importance matrix (.gguf or legacy .dat)");
  sub.add_option("--output-tensor-type", a->output_type, "type of output.weight");
  sub.add_option("--token-embedding-type", a->embd_type, "type of token_embd.weight");
  sub.add_option("--out,-o", a->out, "output .gguf")->required();
  sub.add_option("--name", a->name, "general.name (default: the folder name)");
  sub.add_option("--split-max-gb", a->shard_gb, "split into shards of at most this many GB");
  sub.add_option("--threads", a->threads, "quantizer threads (0: all)");
  sub.add_flag("--dry-run", a->dry_run, "print the plan (types, sizes) without writing");
  sub.add_option("--layers", a->layers,
                 "only layers A:B (half-open), 'rest' or 'A:B,rest': --out is a part directory (docs/slurm.md)");
  sub.add_option("--from-part", a->from_parts,
                 "assemble these parts (repeat) into --out instead of quantizing; same type options as the parts");
  sub.add_flag("--allow-missing-imatrix", a->allow_missing_imatrix,
               "quantize imatrix types (" + type_names(true) +
                   ") without an importance matrix where ggml can (comparisons only; llama-quantize refuses)");
  return [a]() -> int {
    using namespace razor;
    gguf::convert_options o;
    if (!a->recipe.empty() && is_json_recipe(a->recipe)) {
      auto fr = load_recipe(a->recipe);
      if (!fr.ok()) return cli::report(fr.error());
      auto ck = checkpoint::open(a->model);
      if (!ck.ok()) return cli::report(ck.error());
      const bool iq3 = !a->imatrix.empty();
      auto cr = gguf::collapse_bits_recipe(*ck, *fr, iq3);
      if (!cr.ok()) return cli::report(cr.error());
      int changed = 0;
      for (auto& t : cr->tensors)
        if (!t.change.empty()) ++changed;
      std::fprintf(stderr, "pack: fake-quant recipe %s: %zu GGUF tensors typed from its bits (3 bits -> %s), %d changed:\n",
                   a->recipe.c_str(), cr->tensors.size(), iq3 ? "iq3_xxs, --imatrix given" : "q3_K", changed);
      for (auto& t : cr->tensors)
        if (!t.change.empty()) std::fprintf(stderr, "  %-28s %s\n", t.name.c_str(), t.change.c_str());
      o.recipe = std::move(cr->recipe);
    } else if (!a->recipe.empty()) {
      auto r = gguf::load_type_recipe(a->recipe);
      if (!r.ok()) return cli::report(r.error());
      o.recipe = std::move(r).value();
    }
    auto parse_type = [](const std::string& s, std::optional<ggml::type>* dst) -> status {
      if (s.empty()) return {};
      auto t = ggml::type_from_name(s);
      if (!t.ok()) return t.error();  // names the known types
      *dst = *t;
      return {};
    };
    std::optional<ggml::type> def;
    if (auto st = parse_type(a->type, &def); !st.ok()) return cli::report(st);
    if (def) o.recipe.default_type = def;
    if (!o.recipe.default_type && a->recipe.empty())
      return cli::report(make_error(errc::invalid_argument, "give --type or --recipe"));
    if (auto st = parse_type(a->output_type, &o.recipe.output_type); !st.ok()) return cli::report(st);
    if (auto st = parse_type(a->embd_type, &o.recipe.token_embedding_type); !st.ok()) return cli::report(st);
    gguf::imatrix im;
    if (!a->imatrix.empty()) {
      auto r = gguf::read_imatrix(a->imatrix);
      if (!r.ok()) return cli::report(r.error());
      im = std::move(r).value();
      o.imat = &im;
    }
    o.allow_missing_imatrix = a->allow_missing_imatrix;
    if (a->allow_missing_imatrix)
      std::fprintf(stderr,
                   "\n*** WARNING: --allow-missing-imatrix: types that need an importance matrix (%s) are\n"
                   "*** quantized WITHOUT one where none is given. llama-quantize refuses such files; they are much worse.\n"
                   "*** Use this only to measure what the imatrix buys. ***\n\n",
                   type_names(true).c_str());
    o.threads = a->threads;
    o.name = a->name;
    o.max_shard_bytes = uint64_t(a->shard_gb * 1e9);
    cli::stderr_progress prog("pack");
    o.progress = [&prog](double d, double t, const char* w) { return prog(d, t, w); };
    result<gguf::convert_report> rep = make_error(errc::internal, "");
    layer_selection sel;
    if (a->layers != "all") {
      auto ck = checkpoint::open(a->model);
      if (!ck.ok()) return cli::report(ck.error());
      auto ps = parse_layer_selection(a->layers, int(ck->config().num_layers));
      if (!ps.ok()) return cli::report(ps.error());
      sel = *ps;
      if (!a->from_parts.empty() || a->dry_run)
        return cli::report(make_error(errc::invalid_argument, "--layers goes with neither --from-part nor --dry-run"));
    }
    if (!sel.all) {
      rep = gguf::convert_gguf_part(a->model, a->out, o, sel);
      prog.finish();
    } else if (!a->from_parts.empty()) {
      std::error_code ec;
      if (auto parent = std::filesystem::path(a->out).parent_path(); !parent.empty())
        std::filesystem::create_directories(parent, ec);
      rep = gguf::merge_gguf_parts(a->model, a->from_parts, a->out, o);
      prog.finish();
    } else if (a->dry_run) {
      auto ck = checkpoint::open(a->model);
      if (!ck.ok()) return cli::report(ck.error());
      rep = gguf::plan_gguf(*ck, o);
    } else {
      std::error_code ec;
      if (auto parent = std::filesystem::path(a->out).parent_path(); !parent.empty())
        std::filesystem::create_directories(parent, ec);
      rep = gguf::convert_to_gguf(a->model, a->out, o);
      prog.finish();
    }
    if (!rep.ok()) return cli::report(rep.error());
    std::map<std::string, std::pair<uint64_t, int64_t>> by_type;
    for (auto& t : rep->tensors) {
      auto& e = by_type[std::string(ggml::type_name(t.stored))];
      e.first += t.bytes;
      e.second += t.nelements();
    }
    for (auto& n : rep->notes) std::fprintf(stderr, "note: %s\n", n.c_str());
    uint64_t total = 0;
    int64_t nel = 0;
    for (auto& [t, e] : by_type) {
      std::printf("%-8s %12llu bytes  %6.3f bpw\n", t.c_str(), (unsigned long long)e.first, 8.0 * double(e.first) / double(e.second));
      total += e.first;
      nel += e.second;
    }
    std::printf("%s: %zu tensors, %llu tensor bytes, %.3f bpw", rep->arch.c_str(), rep->tensors.size(),
                (unsigned long long)total, 8.0 * double(total) / double(nel));
    if (!sel.all) {
      std::printf(" (part: layers %s, %llu data bytes)\nwrote part %s\n", sel.to_string().c_str(),
                  (unsigned long long)rep->file_bytes, a->out.c_str());
    } else if (!a->dry_run) {
      std::printf(", %llu file bytes\n", (unsigned long long)rep->file_bytes);
      for (auto& p : rep->paths) std::printf("wrote %s\n", p.c_str());
    } else {
      std::printf(" (dry run)\n");
    }
    return 0;
  };
});
}  // namespace
