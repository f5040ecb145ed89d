#include "gguf/validate.h"

#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "util/child_process.h"
#include "util/json_limits.h"
#include "util/mapped_file.h"
#include "util/paths.h"
#include "util/temp_registry.h"

namespace fs = std::filesystem;

namespace razor::gguf {

static std::string env_or(const char* name, const std::string& def) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : def;
}

// The installed copy (<prefix>/share/razor/llamacpp: the Debian package, the portable bundle) before the source
// tree's tools/llamacpp.
static std::string llamacpp_script(const std::string& name) {
  std::error_code ec;
  for (auto& d : data_dirs("llamacpp"))
    if (fs::is_regular_file(fs::path(d) / name, ec)) return (fs::path(d) / name).string();
  return source_dir() + "/tools/llamacpp/" + name;
}

static void fill_defaults(validate_options& o) {
  if (o.script.empty()) o.script = env_or("RAZOR_VALIDATE_SCRIPT", llamacpp_script("validate.mjs"));
  if (o.oracle_dir.empty()) o.oracle_dir = env_or("RAZOR_ORACLE_DIR", source_dir() + "/.oracle");
  if (const char* n = std::getenv("RAZOR_NODE"); n && *n && o.node == "node") o.node = n;
}

static bool in_path(const std::string& exe) {
  if (exe.find('/') != std::string::npos) return access(exe.c_str(), X_OK) == 0;
  const char* p = std::getenv("PATH");
  std::string path = p ? p : "/usr/bin:/bin";
  size_t b = 0;
  while (b <= path.size()) {
    size_t e = path.find(':', b);
    if (e == std::string::npos) e = path.size();
    std::string cand = path.substr(b, e - b) + "/" + exe;
    if (access(cand.c_str(), X_OK) == 0) return true;
    b = e + 1;
  }
  return false;
}

std::string validate_unavailable_reason(const validate_options& in) {
  validate_options o = in;
  fill_defaults(o);
  if (!in_path(o.node)) return "node (" + o.node + ") is not installed or not in PATH";
  if (!fs::exists(o.oracle_dir + "/node_modules/node-llama-cpp"))
    return "node-llama-cpp is not installed in " + o.oracle_dir + " (scripts/install-oracle.sh)";
  if (!fs::exists(o.script)) return "validation script " + o.script + " is missing";
  return "";
}

static result<nlohmann::json> run_script(const std::string& gguf_path, const std::vector<std::string>& argv);

// The user's GGUF or text must be a regular file (open_regular_file): a missing one, a symlink loop or a FIFO
// is an error naming it here, not a throw or a hung llama.cpp.
static status need_regular_file(const std::string& path) {
  RAZOR_ASSIGN_OR_RETURN(int fd, open_regular_file(path));
  ::close(fd);
  return {};
}

result<validate_result> validate_with_llamacpp(const std::string& gguf_path, const validate_options& in) {
  validate_options o = in;
  fill_defaults(o);
  if (std::string why = validate_unavailable_reason(o); !why.empty()) return make_error(errc::not_found, why);
  RAZOR_TRY(need_regular_file(gguf_path));
  RAZOR_TRY(need_regular_file(o.text_path));
  if (!o.ref_path.empty()) RAZOR_TRY(need_regular_file(o.ref_path));
  if (o.windows < 1 || o.window < 1 || o.first_window < 0)
    return make_error(errc::invalid_argument, "validate: windows and window must be >= 1, first_window >= 0");
  std::vector<std::string> argv = {o.node, o.script, "--oracle", o.oracle_dir, "--model", gguf_path, "--text",
                                   o.text_path, "--windows", std::to_string(o.windows), "--window",
                                   std::to_string(o.window), "--batch", std::to_string(o.batch)};
  if (o.first_window > 0) argv.insert(argv.end(), {"--first-window", std::to_string(o.first_window)});
  if (!o.ref_path.empty()) argv.insert(argv.end(), {"--ref", o.ref_path});
  if (o.threads > 0) argv.insert(argv.end(), {"--threads", std::to_string(o.threads)});
  if (!o.exact) argv.push_back("--fast");
  if (o.generate > 0) argv.insert(argv.end(), {"--generate", std::to_string(o.generate)});
  RAZOR_ASSIGN_OR_RETURN(nlohmann::json j, run_script(gguf_path, argv));
  validate_result r;
  r.ppl = j.value("ppl", 0.0);
  r.nll = j.value("nll", 0.0);
  r.windows = j.value("windows", 0);
  r.predictions = j.value("predictions", 0);
  r.first_window = j.value("first_window", 0);
  if (j.contains("kl") && j["kl"].is_object()) {
    const auto& k = j["kl"];
    // null (a NaN in JSON) reads as NaN; a missing key as 0.
    auto num = [&k](const char* key) {
      auto it = k.find(key);
      if (it == k.end()) return 0.0;
      return it->is_number() ? it->get<double>() : std::nan("");
    };
    kl_stats s;
    s.positions = int64_t(num("positions"));
    s.mean = num("mean");
    s.mean_err = num("mean_err");
    s.max = num("max");
    s.p999 = num("p999");
    s.p99 = num("p99");
    s.p95 = num("p95");
    s.p90 = num("p90");
    s.median = num("median");
    s.p10 = num("p10");
    s.p5 = num("p5");
    s.p1 = num("p1");
    s.min = num("min");
    s.same_top1 = num("same_top1");
    s.same_top1_err = num("same_top1_err");
    s.ppl_ref = num("ppl_ref");
    s.nll_ref = num("nll_ref");
    s.ln_ppl_ratio = num("ln_ppl_ratio");
    s.delta_p_mean = num("delta_p_mean");
    s.delta_p_rms = num("delta_p_rms");
    s.clamped = int64_t(num("kl_clamped"));
    if (k.contains("window_kl") && k["window_kl"].is_array())
      for (auto& v : k["window_kl"]) s.window_kl.push_back(v.is_number() ? v.get<double>() : std::nan(""));
    r.kl = std::move(s);
  } else if (!o.ref_path.empty()) {
    return make_error(errc::external, gguf_path + ": the llama.cpp check answered without KL statistics");
  }
  r.load_ms = j.value("load_ms", 0.0);
  r.eval_ms = j.value("eval_ms", 0.0);
  if (j.contains("generated") && j["generated"].is_string()) r.generated = j["generated"].get<std::string>();
  if (j.contains("generated_ids") && j["generated_ids"].is_array())
    for (auto& v : j["generated_ids"]) r.generated_ids.push_back(v.get<int32_t>());
  r.json = j.dump();
  return r;
}

result<logprobs_result> llamacpp_logprobs(const std::string& gguf_path, const std::vector<int32_t>& tokens,
                                          int64_t n_vocab, const validate_options& in, std::string tmp_dir) {
  validate_options o = in;
  fill_defaults(o);
  if (std::string why = validate_unavailable_reason(o); !why.empty()) return make_error(errc::not_found, why);
  RAZOR_TRY(need_regular_file(gguf_path));
  if (tokens.empty() || n_vocab <= 0) return make_error(errc::invalid_argument, "llamacpp_logprobs: no tokens or vocabulary");
  if (tmp_dir.empty()) tmp_dir = fs::temp_directory_path().string();
  const std::string stem = tmp_dir + "/razor-logprobs-" + std::to_string(getpid()) + "-" +
                           std::to_string(reinterpret_cast<uintptr_t>(&tokens) & 0xffffff);
  const std::string ids_path = stem + ".ids", lp_path = stem + ".f32";
  const scoped_temp ids_temp(ids_path, temp_kind::file), lp_temp(lp_path, temp_kind::file);  // gone on SIGINT
  {
    std::ofstream f(ids_path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(tokens.data()), std::streamsize(tokens.size() * sizeof(int32_t)));
    if (!f) return make_error(errc::io, ids_path + ": cannot write");
  }
  std::vector<std::string> argv = {o.node, o.script, "--oracle", o.oracle_dir, "--model", gguf_path,
                                   "--logprobs-in", ids_path, "--logprobs-out", lp_path, "--n-vocab",
                                   std::to_string(n_vocab)};
  if (o.threads > 0) argv.insert(argv.end(), {"--threads", std::to_string(o.threads)});
  if (!o.exact) argv.push_back("--fast");
  auto j = run_script(gguf_path, argv);
  std::error_code ec;
  fs::remove(ids_path, ec);
  if (!j.ok()) {
    fs::remove(lp_path, ec);
    return j.error();
  }
  logprobs_result r;
  r.n_vocab = n_vocab;
  r.json = j->dump();
  r.logprobs.resize(tokens.size() * size_t(n_vocab));
  std::ifstream f(lp_path, std::ios::binary);
  f.read(reinterpret_cast<char*>(r.logprobs.data()), std::streamsize(r.logprobs.size() * sizeof(float)));
  const bool good = bool(f) && f.peek() == std::ifstream::traits_type::eof();
  f.close();
  fs::remove(lp_path, ec);
  if (!good)
    return make_error(errc::external, gguf_path + ": llama.cpp's log-probabilities file is not " +
                                          std::to_string(tokens.size()) + " x " + std::to_string(n_vocab) + " floats");
  return r;
}

// Runs the script and returns its JSON answer (the last line of stdout) when it says ok.
static result<nlohmann::json> run_script(const std::string& gguf_path, const std::vector<std::string>& argv) {
  RAZOR_ASSIGN_OR_RETURN(child_output co, run_child(argv));
  auto tail = [](const std::string& s) {
    std::string t = s.size() > 1500 ? "..." + s.substr(s.size() - 1500) : s;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    return t;
  };
  if (co.term_signal != 0)
    return make_error(errc::external, gguf_path + ": llama.cpp was killed by signal " + std::to_string(co.term_signal) +
                                          (co.term_signal == SIGABRT ? " (abort: it rejected the file)" : "") +
                                          "; its stderr: " + tail(co.err));
  // The answer is the last JSON line of stdout.
  std::string line;
  size_t end = co.out.find_last_not_of("\n ");
  if (end != std::string::npos) {
    size_t b = co.out.rfind('\n', end);
    line = co.out.substr(b == std::string::npos ? 0 : b + 1, end - (b == std::string::npos ? 0 : b + 1) + 1);
  }
  auto parsed = parse_json(line, "the llama.cpp check's answer");
  nlohmann::json j = parsed.ok() ? std::move(parsed).value() : nlohmann::json();
  if (!j.is_object())
    return make_error(errc::external, gguf_path + ": the llama.cpp check exited with " + std::to_string(co.exit_code) +
                                          " without an answer; stderr: " + tail(co.err));
  if (!j.value("ok", false))
    return make_error(errc::external, gguf_path + ": llama.cpp: " + j.value("error", std::string("failed")) +
                                          (co.err.empty() ? "" : "; stderr: " + tail(co.err)));
  return j;
}

}  // namespace razor::gguf
