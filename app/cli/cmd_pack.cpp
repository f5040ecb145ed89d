// razor pack MODEL --type T | --recipe R | --ftype F [--imatrix F] [--allow-missing-imatrix] --out FILE.gguf
// Converts a Hugging Face checkpoint to GGUF in the requested ggml types (core/gguf/convert.h).
// --recipe takes a tensor-type recipe (llama-quantize --tensor-type-file syntax) or a razor.recipe/1 JSON
// fake-quant recipe, whose bits (per-expert bits included) are collapsed to one ggml type per GGUF tensor
// (gguf::collapse_bits_recipe; every change is printed).
// --ftype takes one of llama-quantize's file types (Q3_K_M, IQ2_XS, ...) and chooses every tensor's type as
// llama-quantize does (core/gguf/ftype.h); a tensor-type --recipe then acts as its --tensor-type overrides.
// --dry-run lists every tensor's type and why; --json prints the plan (and what was written) as JSON.
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "ggml/types.h"
#include "gguf/convert.h"
#include "gguf/ftype.h"
#include "gguf/imatrix.h"
#include "model/checkpoint.h"
#include "model/recipe.h"
#include "util/mapped_file.h"

namespace {
struct pack_args {
  std::string model, recipe, type, ftype, imatrix, out, output_type, embd_type, name;
  double shard_gb = 0;
  int threads = 0;
  bool cpu = false;
  bool dry_run = false, allow_missing_imatrix = false, json = false, pure = false;
  std::string layers = "all";          // --layers: write a part (docs/slurm.md)
  std::vector<std::string> from_parts;  // --from-part: assemble parts instead of quantizing
};

bool is_json_recipe(const std::string& path) {
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) return true;
  // Not a regular file (a FIFO would block here): not JSON; load_type_recipe then says what it is.
  auto fd = razor::open_regular_file(path);
  if (!fd.ok()) return false;
  std::FILE* f = ::fdopen(*fd, "rb");
  if (!f) {
    ::close(*fd);
    return false;
  }
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
  std::string ftypes;
  for (auto& f : razor::gguf::all_ftypes()) ftypes += (ftypes.empty() ? "" : ", ") + std::string(f.name);
  sub.add_option("--ftype,-f", a->ftype, "llama-quantize file type, its per-tensor mix exactly: " + ftypes);
  sub.add_flag("--pure", a->pure, "with --ftype: the file type's default type for every tensor (llama-quantize --pure)");
  sub.add_option("--imatrix", a->imatrix, "importance matrix (.gguf or legacy .dat)");
  sub.add_option("--output-tensor-type", a->output_type, "type of output.weight");
  sub.add_option("--token-embedding-type", a->embd_type, "type of token_embd.weight");
  sub.add_option("--out,-o", a->out, "output .gguf")->required();
  sub.add_option("--name", a->name, "general.name (default: the folder name)");
  sub.add_option("--split-max-gb", a->shard_gb, "split into shards of at most this many GB");
  sub.add_option("--threads", a->threads, "quantizer threads (0: all)");
  sub.add_flag("--cpu", a->cpu, "never use the GPU packer (the bytes are the same; for comparisons)");
  sub.add_flag("--dry-run", a->dry_run, "print the plan (every tensor's type, size and why) without writing");
  sub.add_flag("--json", a->json, "print the plan (per tensor: type, bytes, why) and the result as JSON");
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
    if (!a->ftype.empty() && !a->type.empty())
      return cli::report(make_error(errc::invalid_argument, "give --ftype or --type, not both"));
    if (!a->ftype.empty() && !a->recipe.empty() && is_json_recipe(a->recipe))
      return cli::report(make_error(errc::invalid_argument,
                                    "--ftype takes a tensor-type --recipe (its overrides), not a fake-quant JSON recipe"));
    if (a->pure && a->ftype.empty()) return cli::report(make_error(errc::invalid_argument, "--pure goes with --ftype"));
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
    if (!o.recipe.default_type && a->recipe.empty() && a->ftype.empty())
      return cli::report(make_error(errc::invalid_argument, "give --type, --ftype or --recipe"));
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
    std::optional<gguf::ftype_plan> fplan;
    if (!a->ftype.empty()) {
      auto f = gguf::ftype_from_name(a->ftype);
      if (!f.ok()) return cli::report(f.error());
      auto ck = checkpoint::open(a->model);
      if (!ck.ok()) return cli::report(ck.error());
      gguf::ftype_options fo;
      fo.overrides = o.recipe.rules;  // a tensor-type recipe: llama-quantize's --tensor-type overrides
      fo.output_type = o.recipe.output_type;
      fo.token_embedding_type = o.recipe.token_embedding_type;
      fo.pure = a->pure;
      auto fp = gguf::plan_ftype(*ck, *f, fo, o.imat, a->allow_missing_imatrix);
      if (!fp.ok()) return cli::report(fp.error());
      o.recipe = fp->recipe;
      o.file_type = gguf::info(*f).id;
      fplan = std::move(fp).value();
      for (auto& n : fplan->notes) std::fprintf(stderr, "note: %s\n", n.c_str());
    }
    if (a->allow_missing_imatrix)
      std::fprintf(stderr,
                   "\n*** WARNING: --allow-missing-imatrix: types that need an importance matrix (%s) are\n"
                   "*** quantized WITHOUT one where none is given. llama-quantize refuses such files; they are much worse.\n"
                   "*** Use this only to measure what the imatrix buys. ***\n\n",
                   type_names(true).c_str());
    o.threads = a->threads;
    o.allow_gpu = !a->cpu;
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
    if (fplan) {  // the mix's reasons instead of "--ftype X line 0"
      std::map<std::string, const gguf::ftype_choice*> by_name;
      for (auto& c : fplan->tensors) by_name[c.name] = &c;
      for (auto& t : rep->tensors)
        if (auto it = by_name.find(t.name); it != by_name.end() && it->second->quantized) t.why = it->second->why;
    }
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
      total += e.first;
      nel += e.second;
    }
    if (a->json) {
      nlohmann::json j;
      j["arch"] = rep->arch;
      j["ftype"] = fplan ? nlohmann::json(std::string(gguf::info(*gguf::ftype_from_name(a->ftype)).name)) : nlohmann::json();
      j["dry_run"] = a->dry_run;
      auto& ts = j["tensors"] = nlohmann::json::array();
      for (auto& t : rep->tensors)
        ts.push_back({{"name", t.name}, {"role", t.role}, {"ne", t.ne}, {"type", ggml::type_name(t.stored)},
                      {"requested", ggml::type_name(t.requested)}, {"bytes", t.bytes}, {"why", t.why},
                      {"fallback", t.fallback}, {"imatrix", t.imatrix_used}});
      auto& bt = j["by_type"] = nlohmann::json::object();
      for (auto& [t, e] : by_type) bt[t] = {{"bytes", e.first}, {"elements", e.second}};
      std::map<std::string, std::pair<uint64_t, int64_t>> by_role;
      for (auto& t : rep->tensors) {
        auto& e = by_role[t.role];
        e.first += t.bytes;
        e.second += t.nelements();
      }
      auto& br = j["by_role"] = nlohmann::json::object();
      for (auto& [r, e] : by_role)
        br[r] = {{"bytes", e.first}, {"elements", e.second}, {"bpw", e.second > 0 ? 8.0 * double(e.first) / double(e.second) : 0.0}};
      j["tensor_bytes"] = total;
      j["bpw"] = nel > 0 ? 8.0 * double(total) / double(nel) : 0.0;
      j["notes"] = rep->notes;
      if (!sel.all) j["part_layers"] = sel.to_string();
      if (sel.all) j["file_bytes"] = rep->file_bytes;  // written, or (dry run) exactly what would be
      if (!a->dry_run) j["paths"] = rep->paths;
      std::printf("%s\n", j.dump(1).c_str());
      return 0;
    }
    if (a->dry_run)
      for (auto& t : rep->tensors) {
        std::string shape;
        for (auto d : t.ne) shape += (shape.empty() ? "" : "x") + std::to_string(d);
        std::printf("%-34s %-16s %-8s %11llu  %s\n", t.name.c_str(), shape.c_str(),
                    std::string(ggml::type_name(t.stored)).c_str(), (unsigned long long)t.bytes, t.why.c_str());
      }
    for (auto& [t, e] : by_type)
      std::printf("%-8s %12llu bytes  %6.3f bpw\n", t.c_str(), (unsigned long long)e.first, 8.0 * double(e.first) / double(e.second));
    std::printf("%s: %zu tensors, %llu tensor bytes, %.3f bpw", rep->arch.c_str(), rep->tensors.size(),
                (unsigned long long)total, 8.0 * double(total) / double(nel));
    if (!sel.all) {
      std::printf(" (part: layers %s, %llu data bytes)\nwrote part %s\n", sel.to_string().c_str(),
                  (unsigned long long)rep->file_bytes, a->out.c_str());
    } else if (!a->dry_run) {
      std::printf(", %llu file bytes\n", (unsigned long long)rep->file_bytes);
      for (auto& p : rep->paths) std::printf("wrote %s\n", p.c_str());
    } else {
      std::printf(" (dry run), %llu file bytes\n", (unsigned long long)rep->file_bytes);  // exact: plan_gguf
    }
    return 0;
  };
});
}  // namespace
