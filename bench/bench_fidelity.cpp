// bench_fidelity: our whole-file GGUF allocation against llama-quantize's own mixes at equal file size, scored in
// the real llama.cpp on text calibration never saw (issue 16's benchmark; results in bench/RESULTS.md).
//
// For each model:
//   1. the unquantized reference: `razor pack MODEL --type f32`
//   2. the importance matrix: `razor probe MODEL --tokens N --imatrix` on the bundled calibration half
//      (resources/data/kernel-docs-calib.txt), tokens [0, N)
//   3. for each ftype: the stock file = libllama's llama_model_quantize (what `llama-quantize --imatrix F IN OUT
//      FTYPE` does: default parameters, the imatrix normalised as llama-quantize loads it) of the F32 export;
//      ours = `razor allocate --mode gguf --target <stock file bytes>B --imatrix` (sensitivities on the first
//      --calib-windows windows of the calibration half, measured once per model and reused) then `razor pack`
//   4. both scored with `validate-gguf --ref f32.gguf` (llama.cpp, exact mode) on the bundled held-out half
//      (resources/data/kernel-docs-eval.txt), windows [0, --windows): KL mean / p99 / max, same top-1, ppl (the
//      F32 file's perplexity on the same windows comes with the KL run). The allocation's predicted KL (the sum of
//      its tensors' measured KLs on the calibration windows) is printed beside the measured one.
// The commands run are printed; a markdown table and a JSON file (--out) are written at the end.
//
//   bench_fidelity [--models tiny-qwen3-moe,tiny-qwen3-5-moe] [--ftypes Q2_K,IQ3_XXS,IQ3_S,Q3_K_M,Q4_K_M]
//                  [--work DIR] [--windows 200] [--imatrix-tokens 102400] [--calib-windows 8]
//                  [--sensitivity full|fit|weights] [--out fidelity.json] [--razor PATH]
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/llama_quantize_oracle.h"
#include "gguf/ftype.h"
#include "gguf/imatrix.h"
#include "gguf/validate.h"
#include "util/atomic_file.h"
#include "util/child_process.h"
#include "util/json_limits.h"
#include "util/paths.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct options {
  std::vector<std::string> models = {"tiny-qwen3-moe", "tiny-qwen3-5-moe"};
  std::vector<std::string> ftypes = {"Q2_K", "IQ3_XXS", "IQ3_S", "Q3_K_M", "Q4_K_M"};
  std::string work = "/tmp/razor-fidelity", out, razor = RAZOR_CLI_EXE, sensitivity = "full";
  int windows = 200, calib_windows = 8;
  int64_t imatrix_tokens = 102400;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ','))
    if (!x.empty()) v.push_back(x);
  return v;
}

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "bench_fidelity: %s\n", m.c_str());
  std::exit(1);
}

// Runs a razor command, printing it; dies with its output when it fails. Returns stdout.
std::string run_razor(const options& o, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {o.razor};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string line;
  for (auto& a : argv) line += (line.empty() ? "" : " ") + a;
  std::fprintf(stderr, "$ %s\n", line.c_str());
  auto r = razor::run_child(argv);
  if (!r.ok()) die(r.error().to_string());
  if (r->exit_code != 0) die("failed (" + std::to_string(r->exit_code) + "):\n" + r->out + r->err);
  return r->out;
}

// The imatrix as llama-quantize hands it to llama_model_quantize: per tensor, sum_sq / count per expert
// (1 where the expert was never reached), experts concatenated.
struct llama_imatrix {
  std::vector<std::string> names;
  std::vector<std::vector<float>> values;
  std::vector<razor_test::llama_quantize_oracle::imatrix_data> entries;
};
llama_imatrix to_llama(const razor::gguf::imatrix& im) {
  llama_imatrix out;
  for (auto& e : im.entries) {
    std::vector<float> v(e.in_sum2.size(), 1.0f);
    const size_t n = size_t(e.n_per_row);
    for (size_t m = 0; m < size_t(e.n_mat); ++m)
      if (m < e.counts.size() && e.counts[m] > 0)
        for (size_t j = 0; j < n; ++j) v[m * n + j] = e.in_sum2[m * n + j] / e.counts[m];
    out.names.push_back(e.name);
    out.values.push_back(std::move(v));
  }
  for (size_t i = 0; i < out.names.size(); ++i)
    out.entries.push_back({out.names[i].c_str(), out.values[i].data(), out.values[i].size()});
  return out;
}

json score(const std::string& gguf, const std::string& ref, const options& o) {
  razor::gguf::validate_options vo;
  vo.text_path = razor::bundled_eval_text();
  vo.windows = o.windows;
  vo.ref_path = ref;
  std::fprintf(stderr, "$ %s validate-gguf %s --ref %s --windows %d\n", o.razor.c_str(), gguf.c_str(), ref.c_str(),
               o.windows);
  auto r = razor::gguf::validate_with_llamacpp(gguf, vo);
  if (!r.ok()) die(gguf + ": " + r.error().to_string());
  if (!r->kl) die(gguf + ": no KL in the answer");
  return {{"bytes", fs::file_size(gguf)}, {"ppl", r->ppl},           {"kl_mean", r->kl->mean},
          {"kl_p99", r->kl->p99},         {"kl_max", r->kl->max},    {"same_top1", r->kl->same_top1},
          {"ppl_ref", r->kl->ppl_ref},    {"positions", r->kl->positions}};
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--models") o.models = split(val());
    else if (a == "--ftypes") o.ftypes = split(val());
    else if (a == "--work") o.work = val();
    else if (a == "--windows") o.windows = std::stoi(val());
    else if (a == "--imatrix-tokens") o.imatrix_tokens = std::stoll(val());
    else if (a == "--calib-windows") o.calib_windows = std::stoi(val());
    else if (a == "--sensitivity") o.sensitivity = val();
    else if (a == "--out") o.out = val();
    else if (a == "--razor") o.razor = val();
    else die("unknown option " + a + " (see the file comment)");
  }
  auto& lq = razor_test::llama_quantize_oracle::instance();
  if (!lq.ok()) die(lq.error);
  lq.capture_log();
  json results = json::array();
  for (const auto& model_name : o.models) {
    const std::string model = razor::find_data_dir("models") + "/" + model_name;
    const std::string w = o.work + "/" + model_name;
    fs::create_directories(w);
    const std::string f32 = w + "/f32.gguf", imat = w + "/imatrix.gguf", sens = w + "/sensitivity.json";
    if (!fs::exists(f32)) run_razor(o, {"pack", model, "--type", "f32", "--out", f32});
    if (!fs::exists(imat))
      run_razor(o, {"probe", model, "--tokens", std::to_string(o.imatrix_tokens), "--out", w + "/probe.h5", "--imatrix", imat});
    auto im = razor::gguf::read_imatrix(imat);
    if (!im.ok()) die(im.error().to_string());
    const llama_imatrix lim = to_llama(*im);
    for (const auto& ft_name : o.ftypes) {
      auto ft = razor::gguf::ftype_from_name(ft_name);
      if (!ft.ok()) die(ft.error().to_string());
      const std::string stock = w + "/stock-" + ft_name + ".gguf";
      std::fprintf(stderr, "$ llama_model_quantize %s %s %s (imatrix %s)\n", f32.c_str(), stock.c_str(),
                   ft_name.c_str(), imat.c_str());
      if (uint32_t rc = lq.run(f32, stock, razor::gguf::info(*ft).id, &lim.entries); rc != 0)
        die("llama_model_quantize " + ft_name + " failed (" + std::to_string(rc) + "): " + lq.last_log);
      const uint64_t bytes = fs::file_size(stock);
      const std::string recipe = w + "/ours-" + ft_name + ".txt", ours = w + "/ours-" + ft_name + ".gguf";
      run_razor(o, {"allocate", model, "--mode", "gguf", "--target", std::to_string(bytes) + "B", "--imatrix", imat,
                "--calib-windows", std::to_string(o.calib_windows), "--sensitivity", o.sensitivity, "--cache", sens,
                "--out", recipe});
      run_razor(o, {"pack", model, "--recipe", recipe, "--imatrix", imat, "--out", ours});
      const json s = score(stock, f32, o), r = score(ours, f32, o);
      auto rep = razor::read_json_file(w + "/ours-" + ft_name + ".report.json");
      json row = {{"model", model_name}, {"ftype", ft_name}, {"stock", s}, {"ours", r}, {"ref_ppl", s["ppl_ref"]},
                  {"kl_change", r["kl_mean"].get<double>() / s["kl_mean"].get<double>() - 1.0},
                  {"predicted_kl", rep.ok() ? (*rep)["predicted_kl"] : json()}};
      std::fprintf(stderr, "%s %s: stock %llu B KL %.5f ppl %.4f | ours %llu B KL %.5f ppl %.4f | KL %+.1f %%\n",
                   model_name.c_str(), ft_name.c_str(), (unsigned long long)s["bytes"].get<uint64_t>(),
                   s["kl_mean"].get<double>(), s["ppl"].get<double>(), (unsigned long long)r["bytes"].get<uint64_t>(),
                   r["kl_mean"].get<double>(), r["ppl"].get<double>(), 100.0 * row["kl_change"].get<double>());
      results.push_back(row);
    }
  }
  std::printf("| model | size of | stock bytes | ours bytes | stock KL | ours KL | KL change | stock p99 | ours p99 | "
              "stock ppl | ours ppl | F32 ppl | stock top-1 | ours top-1 | ours predicted KL |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (auto& r : results) {
    const json &s = r["stock"], &u = r["ours"];
    std::printf("| %s | %s | %llu | %llu | %.5f | %.5f | %+.1f %% | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.5f |\n",
                r["model"].get<std::string>().c_str(), r["ftype"].get<std::string>().c_str(),
                (unsigned long long)s["bytes"].get<uint64_t>(), (unsigned long long)u["bytes"].get<uint64_t>(),
                s["kl_mean"].get<double>(), u["kl_mean"].get<double>(), 100.0 * r["kl_change"].get<double>(),
                s["kl_p99"].get<double>(), u["kl_p99"].get<double>(), s["ppl"].get<double>(), u["ppl"].get<double>(), r["ref_ppl"].get<double>(),
                s["same_top1"].get<double>(), u["same_top1"].get<double>(),
                r["predicted_kl"].is_number() ? r["predicted_kl"].get<double>() : 0.0);
  }
  if (!o.out.empty()) {
    json doc = {{"format", "razor.bench_fidelity/1"}, {"windows", o.windows}, {"imatrix_tokens", o.imatrix_tokens},
                {"calib_windows", o.calib_windows}, {"sensitivity", o.sensitivity}, {"rows", results}};
    if (auto s = razor::write_file_atomic(o.out, doc.dump(2) + "\n"); !s.ok()) die(s.to_string());
  }
  return 0;
}
