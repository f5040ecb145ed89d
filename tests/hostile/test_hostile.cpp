// The hostile-input corpus (tests/hostile/README.md): every reproduction of issue 15 replayed against the real
// `razor` CLI, each in its own scratch folder with a copy of a bundled fixture. Acceptance for every case: no
// death by a signal, an end within 20 s (a guard: the process is killed after it and the case fails), and when
// razor refuses, a non-zero exit with a message on stderr that names the input. Cases marked `reject` must
// refuse; cases marked `finish` may also succeed (a pathological but legal input, e.g. a regex that a linear-time
// engine simply does not match). Some cases check more: the victim folder of the data-loss cases is intact, the
// memory blow-ups stay under a bound, error messages print no raw control bytes.
// Small inputs are files in tests/hostile/cases/; large or structural ones (a 50 MB header, an 8 GB sparse GGUF,
// FIFOs, symlink loops) are generated here, in the scratch folder, at test time.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The issue's bound for any hostile input: an answer within 20 s. Past it the process group is killed and the
// case fails as a hang; it is a guard against hangs, not a measurement.
constexpr auto k_limit = std::chrono::seconds(20);
// Peak resident memory allowed for the memory blow-up cases (a 50 MB header, 4 million GGUF entries): the fixture
// itself needs well under 200 MB; before the fix these took 4 GB and 1.2 GB.
constexpr long k_rss_limit_kib = 1L << 20;  // 1 GiB

const std::string k_cases = RAZOR_SOURCE_DIR_T "/tests/hostile/cases";

// ---- running razor -------------------------------------------------------------------------------------------
struct run_result {
  bool started = false, timed_out = false, signaled = false;
  int code = -1, signal = 0;
  long max_rss_kib = 0;
  std::string out, err;
  std::string describe() const {
    std::ostringstream s;
    if (timed_out) s << "still running after " << k_limit.count() << " s (killed)";
    else if (signaled) s << "killed by signal " << signal << " (" << strsignal(signal) << ")";
    else s << "exit " << code;
    s << "\n--- stderr (last 2 KB):\n" << err.substr(err.size() > 2048 ? err.size() - 2048 : 0);
    return s.str();
  }
};

// Runs razor with `args` (no shell), stdin from `stdin_path` (or /dev/null), in its own process group; kills the
// group after k_limit. stdout and stderr go to files in `dir`.
run_result run_razor_bounded(const std::vector<std::string>& args, const fs::path& dir, const std::string& stdin_path = "") {
  run_result r;
  const fs::path out = dir / "razor.stdout", err = dir / "razor.stderr";
  std::vector<std::string> argv_s = {RAZOR_CLI_EXE};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return r;
  if (pid == 0) {
    setpgid(0, 0);
    int in = open(stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY);
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || o < 0 || e < 0) _exit(126);
    dup2(in, 0), dup2(o, 1), dup2(e, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  setpgid(pid, pid);
  r.started = true;
  const auto deadline = std::chrono::steady_clock::now() + k_limit;
  int st = 0;
  struct rusage ru {};
  for (;;) {
    const pid_t w = wait4(pid, &st, WNOHANG, &ru);
    if (w == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      r.timed_out = true;
      kill(-pid, SIGKILL);
      wait4(pid, &st, 0, &ru);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(-pid, SIGKILL);  // anything the command left running in its group
  r.max_rss_kib = ru.ru_maxrss;
  if (!r.timed_out) {
    r.signaled = WIFSIGNALED(st);
    if (r.signaled) r.signal = WTERMSIG(st);
    else r.code = WEXITSTATUS(st);
  }
  r.out = razor::test::slurp(out);
  r.err = razor::test::slurp(err);
  return r;
}

// ---- building inputs -----------------------------------------------------------------------------------------
void write_bytes(const fs::path& p, const std::string& bytes) {
  std::error_code ec;
  fs::remove(p, ec);  // never write through a hard link to the repository's fixture
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

// A working copy of a bundled fixture: small files copied, model.safetensors hard-linked when the file system
// allows (else copied). Inputs are always replaced by new files (write_bytes removes first), so the repository's
// fixture is never written.
fs::path make_fixture(const std::string& name, const fs::path& dir) {
  const fs::path src = fs::path(RAZOR_MODELS_DIR) / name, dst = dir / name;
  fs::create_directories(dst);
  for (auto& e : fs::directory_iterator(src)) {
    const fs::path to = dst / e.path().filename();
    std::error_code ec;
    if (e.path().extension() == ".safetensors") fs::create_hard_link(e.path(), to, ec);
    if (e.path().extension() != ".safetensors" || ec) fs::copy_file(e.path(), to, fs::copy_options::overwrite_existing);
  }
  return dst;
}

void patch_config(const fs::path& model, const std::string& patch_file) {
  json cfg = json::parse(razor::test::slurp(model / "config.json"));
  cfg.merge_patch(json::parse(razor::test::slurp(fs::path(k_cases) / patch_file)));
  write_bytes(model / "config.json", cfg.dump(2));
}

// GGUF v3 bytes (gguf_file.h): enough to write headers, metadata and tensor infos by hand.
struct gguf_bytes {
  std::string b;
  void u32(uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); }
  void u64(uint64_t v) { b.append(reinterpret_cast<const char*>(&v), 8); }
  void f32(float v) { b.append(reinterpret_cast<const char*>(&v), 4); }
  void str(std::string_view s) { u64(s.size()), b.append(s); }
  void header(uint64_t n_tensors, uint64_t n_kv) { b += "GGUF", u32(3), u64(n_tensors), u64(n_kv); }
  void kv_str(std::string_view k, std::string_view v) { str(k), u32(8), str(v); }
  void kv_u32(std::string_view k, uint32_t v) { str(k), u32(4), u32(v); }
  void kv_u8(std::string_view k, uint8_t v) { str(k), u32(0), b.push_back(char(v)); }
  void align(size_t a = 32) { b.append((a - b.size() % a) % a, '\0'); }
};

// A llama.cpp GGUF imatrix with one entry for tiny-qwen3-moe's blk.0.ffn_gate_exps.weight (256 columns, 16
// experts), every in_sum2 value `v`.
std::string imatrix_gguf(float v) {
  const int64_t n = 256, m = 16;
  gguf_bytes g;
  g.header(2, 4);
  g.kv_str("general.type", "imatrix");
  g.str("imatrix.datasets"), g.u32(9), g.u32(8), g.u64(1), g.str("hostile");
  g.kv_u32("imatrix.chunk_count", 4);
  g.kv_u32("imatrix.chunk_size", 256);
  const std::string e = "blk.0.ffn_gate_exps.weight";
  g.str(e + ".counts"), g.u32(2), g.u64(1), g.u64(m), g.u32(0), g.u64(0);
  g.str(e + ".in_sum2"), g.u32(2), g.u64(n), g.u64(m), g.u32(0), g.u64(64);
  g.align();
  for (int64_t i = 0; i < m; ++i) g.f32(64.0f);
  g.align();
  for (int64_t i = 0; i < n * m; ++i) g.f32(v);
  return g.b;
}

// The fixture's safetensors split into header JSON text and data.
struct safetensors_parts {
  std::string header, data;
};
safetensors_parts read_safetensors(const fs::path& p) {
  const std::string all = razor::test::slurp(p);
  uint64_t n = 0;
  std::memcpy(&n, all.data(), 8);
  return {all.substr(8, n), all.substr(8 + n)};
}
void write_safetensors(const fs::path& p, std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  const uint64_t n = header.size();
  write_bytes(p, std::string(reinterpret_cast<const char*>(&n), 8) + header + data);
}

std::string eval_text_head(size_t bytes) { return razor::test::slurp(razor::test::eval_text_path()).substr(0, bytes); }

std::string deep_json_array(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// ---- the cases -----------------------------------------------------------------------------------------------
enum class expect { reject, finish };

struct env {
  fs::path dir;    // the case's scratch folder
  fs::path model;  // the fixture copy (empty when the case needs none)
  std::string stdin_path;
};

struct hostile_case {
  const char* name;
  const char* fixture;  // bundled fixture copied into the scratch folder, or nullptr
  std::function<void(env&)> setup;
  std::function<std::vector<std::string>(const env&)> args;
  expect what;
  // stderr must contain one of these (the input named by the message); empty: no requirement
  std::function<std::vector<std::string>(const env&)> names;
  std::function<void(const env&, const run_result&)> check;  // extra assertions, or empty
};

std::vector<std::string> names_of(std::initializer_list<std::string> v) { return v; }

void check_printable_stderr(const env&, const run_result& r) {
  for (unsigned char c : r.err)
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
      ADD_FAILURE() << "stderr carries the raw control byte 0x" << std::hex << int(c) << " (a terminal would act on it)";
      return;
    }
}

void check_rss(const env&, const run_result& r) {
  EXPECT_LT(r.max_rss_kib, k_rss_limit_kib) << "peak resident memory " << r.max_rss_kib / 1024 << " MiB";
}

void check_victim(const env& e, const run_result&) {
  EXPECT_EQ(razor::test::slurp(e.dir / "victim" / "thesis.txt"), "x\n") << "the folder razor did not write lost a file";
}

// The source checkpoint of `quantize M --out M`: its files are still there, byte for byte.
void check_source_intact(const env& e, const run_result&) {
  const fs::path src = fs::path(RAZOR_MODELS_DIR) / "tiny-qwen3-moe";
  for (const char* f : {"config.json", "tokenizer.json"})
    EXPECT_EQ(razor::test::slurp(e.model / f), razor::test::slurp(src / f)) << f << " of the source was replaced";
  std::error_code ec;
  EXPECT_EQ(fs::file_size(e.model / "model.safetensors", ec), fs::file_size(src / "model.safetensors"))
      << "model.safetensors of the source was replaced";
}

// The worker's protocol lines on stdout, parsed.
std::vector<json> events(const run_result& r) {
  std::vector<json> v;
  std::istringstream s(r.out);
  for (std::string line; std::getline(s, line);) {
    auto j = json::parse(line, nullptr, false);
    if (!j.is_discarded()) v.push_back(j);
  }
  return v;
}

// After a hostile line the worker still answers the echo with id 2 and ends cleanly at end of input.
void check_worker_survives(const env&, const run_result& r) {
  EXPECT_EQ(r.code, 0) << "the worker did not end cleanly at end of input";
  bool error = false, echoed = false, bye = false;
  for (auto& ev : events(r)) {
    const std::string t = ev.value("t", "");
    if (t == "error") error = true;
    // id 2 answered: its result, or "shutting_down" when end of input came before it ran (either way the worker
    // read and answered the line after the hostile one)
    if ((t == "result" || t == "error") && ev.contains("id") && ev["id"] == 2) echoed = true;
    if (t == "bye") bye = true;
    if (ev.contains("id") && ev["id"].is_number_integer() && ev["id"].get<int64_t>() < 0)
      ADD_FAILURE() << "an event carries a negative id: " << ev.dump();
  }
  EXPECT_TRUE(error) << "no error event for the hostile line";
  EXPECT_TRUE(echoed) << "the request after the hostile line was not answered";
  EXPECT_TRUE(bye);
}

std::string text_of(const env& e, const char* f) { return (e.dir / f).string(); }
std::string model_of(const env& e) { return e.model.string(); }
std::string cases(const char* f) { return k_cases + "/" + f; }

const std::vector<hostile_case>& all_cases() {
  static const std::vector<hostile_case> v = {
      // ---- data loss: never delete or replace a folder razor did not write
      {"quantize_into_foreign_folder", "tiny-qwen3-moe",
       [](env& e) {
         fs::create_directories(e.dir / "victim");
         write_bytes(e.dir / "victim" / "thesis.txt", "x\n");
       },
       [](const env& e) { return std::vector<std::string>{"quantize", model_of(e), "--recipe", "seed-default", "--out", text_of(e, "victim")}; },
       expect::reject, [](const env&) { return names_of({"victim"}); }, check_victim},
      {"quantize_out_is_source", "tiny-qwen3-moe", {},
       [](const env& e) { return std::vector<std::string>{"quantize", model_of(e), "--recipe", "seed-default", "--out", model_of(e)}; },
       expect::reject, [](const env& e) { return names_of({model_of(e), "tiny-qwen3-moe"}); }, check_source_intact},
      {"synth_into_foreign_folder", "tiny-qwen3-moe",
       [](env& e) {
         fs::create_directories(e.dir / "victim");
         write_bytes(e.dir / "victim" / "thesis.txt", "x\n");
       },
       [](const env& e) {
         return std::vector<std::string>{"synth", "--config", (e.model / "config.json").string(), "--out", text_of(e, "victim"), "--sparse"};
       },
       expect::reject, [](const env&) { return names_of({"victim"}); }, check_victim},

      // ---- config.json values the engine and the exporter use
      {"partial_rotary_factor_above_1", "tiny-qwen3-5-moe", [](env& e) { patch_config(e.model, "config-partial-rotary-4.patch.json"); },
       [](const env& e) { return std::vector<std::string>{"eval-ppl", model_of(e), "--text", razor::test::eval_text_path(), "--windows", "1"}; },
       expect::reject, [](const env&) { return names_of({"partial_rotary_factor"}); }, {}},
      {"num_hidden_layers_1e9_inspect", "tiny-qwen3-moe", [](env& e) { patch_config(e.model, "config-layers-1e9.patch.json"); },
       [](const env& e) { return std::vector<std::string>{"inspect", model_of(e)}; },
       expect::reject, [](const env&) { return names_of({"num_hidden_layers"}); }, {}},
      {"num_hidden_layers_1e9_eval_ppl", "tiny-qwen3-moe", [](env& e) { patch_config(e.model, "config-layers-1e9.patch.json"); },
       [](const env& e) { return std::vector<std::string>{"eval-ppl", model_of(e), "--text", razor::test::eval_text_path(), "--windows", "1"}; },
       expect::reject, [](const env&) { return names_of({"num_hidden_layers"}); }, {}},
      {"vocab_size_1e12", "tiny-qwen3-moe", [](env& e) { patch_config(e.model, "config-vocab-1e12.patch.json"); },
       [](const env& e) { return std::vector<std::string>{"eval-ppl", model_of(e), "--text", razor::test::eval_text_path(), "--windows", "1"}; },
       expect::reject, [](const env&) { return names_of({"vocab_size"}); }, {}},
      {"rms_norm_eps_negative", "tiny-qwen3-moe", [](env& e) { patch_config(e.model, "config-rms-norm-eps-negative.patch.json"); },
       [](const env& e) { return std::vector<std::string>{"eval-ppl", model_of(e), "--text", razor::test::eval_text_path(), "--windows", "1"}; },
       expect::reject, [](const env&) { return names_of({"rms_norm_eps"}); }, {}},
      {"rope_theta_zero", "tiny-qwen3-moe", [](env& e) { patch_config(e.model, "config-rope-theta-0.patch.json"); },
       [](const env& e) { return std::vector<std::string>{"eval-ppl", model_of(e), "--text", razor::test::eval_text_path(), "--windows", "1"}; },
       expect::reject, [](const env&) { return names_of({"rope_theta"}); }, {}},
      {"pack_block_count_1e12", "tiny-qwen3-moe", [](env& e) { patch_config(e.model, "config-layers-1e12.patch.json"); },
       [](const env& e) { return std::vector<std::string>{"pack", model_of(e), "--type", "q8_0", "--out", text_of(e, "out.gguf")}; },
       expect::reject, [](const env&) { return names_of({"num_hidden_layers"}); }, {}},
      {"pack_expert_used_count_64", "tiny-qwen3-moe", [](env& e) { patch_config(e.model, "config-experts-used-64.patch.json"); },
       [](const env& e) { return std::vector<std::string>{"pack", model_of(e), "--type", "q8_0", "--out", text_of(e, "out.gguf")}; },
       expect::reject, [](const env&) { return names_of({"num_experts_per_tok"}); }, {}},

      // ---- tensors that disagree with config.json, or with each other
      {"pack_transposed_embedding", "tiny-qwen3-moe",
       [](env& e) {
         auto st = read_safetensors(e.model / "model.safetensors");
         json h = json::parse(st.header);
         auto& shape = h.at("model.embed_tokens.weight").at("shape");
         shape = json::array({shape[1], shape[0]});
         write_safetensors(e.model / "model.safetensors", h.dump(), st.data);
       },
       [](const env& e) { return std::vector<std::string>{"pack", model_of(e), "--type", "q8_0", "--out", text_of(e, "out.gguf")}; },
       expect::reject, [](const env&) { return names_of({"embed_tokens"}); }, {}},
      {"duplicate_tensor_names", "tiny-qwen3-moe",
       [](env& e) {
         auto st = read_safetensors(e.model / "model.safetensors");
         const json h = json::parse(st.header);
         // The same name twice in the header object (nlohmann would silently keep the last one).
         std::string dup = "{\"model.norm.weight\":" + h.at("model.norm.weight").dump() + "," + st.header.substr(1);
         write_safetensors(e.model / "model.safetensors", dup, st.data);
       },
       [](const env& e) { return std::vector<std::string>{"inspect", model_of(e)}; },
       expect::reject, [](const env&) { return names_of({"model.norm.weight"}); }, {}},
      {"index_with_empty_weight_map", "tiny-qwen3-moe",
       [](env& e) { write_bytes(e.model / "model.safetensors.index.json", R"({"metadata": {"total_size": 0}, "weight_map": {}})"); },
       [](const env& e) { return std::vector<std::string>{"quantize", model_of(e), "--recipe", "seed-default", "--out", text_of(e, "out")}; },
       expect::reject, [](const env&) { return names_of({"model.safetensors.index.json", "weight_map"}); }, {}},
      {"safetensors_header_50MB_of_brackets", "tiny-qwen3-moe",
       [](env& e) {
         const uint64_t n = 50u << 20;
         write_bytes(e.model / "model.safetensors", std::string(reinterpret_cast<const char*>(&n), 8) + std::string(n, '['));
       },
       [](const env& e) { return std::vector<std::string>{"inspect", model_of(e)}; },
       expect::reject, [](const env&) { return names_of({"model.safetensors"}); }, check_rss},

      // ---- the model folder itself
      {"symlink_loop_in_model_folder", "tiny-qwen3-moe",
       [](env& e) {
         fs::create_symlink("loop-b.safetensors", e.model / "loop-a.safetensors");
         fs::create_symlink("loop-a.safetensors", e.model / "loop-b.safetensors");
         fs::create_directory_symlink(".", e.model / "self");
         fs::create_symlink("self-loop", e.model / "self-loop");
       },
       [](const env& e) { return std::vector<std::string>{"inspect", model_of(e)}; },
       expect::finish, [](const env&) { return names_of({"loop"}); }, {}},
      {"fifo_as_config_json", "tiny-qwen3-moe",
       [](env& e) {
         fs::remove(e.model / "config.json");
         ASSERT_EQ(mkfifo((e.model / "config.json").c_str(), 0644), 0);
       },
       [](const env& e) { return std::vector<std::string>{"inspect", model_of(e)}; },
       expect::reject, [](const env&) { return names_of({"config.json"}); }, {}},

      // ---- evaluation and calibration text
      {"invalid_utf8_text_eval_ppl", "tiny-qwen3-moe",
       [](env& e) {
         std::mt19937 rng(20000);
         std::string s(20000, '\0');
         for (auto& c : s) c = char(rng() & 0xff);
         write_bytes(e.dir / "r.txt", s);
       },
       [](const env& e) { return std::vector<std::string>{"eval-ppl", model_of(e), "--text", text_of(e, "r.txt"), "--windows", "1"}; },
       expect::reject, [](const env&) { return names_of({"r.txt"}); }, {}},
      {"invalid_utf8_text_probe", "tiny-qwen3-moe",
       [](env& e) {
         std::mt19937 rng(20000);
         std::string s(20000, '\0');
         for (auto& c : s) c = char(rng() & 0xff);
         write_bytes(e.dir / "r.txt", s);
       },
       [](const env& e) {
         return std::vector<std::string>{"probe", model_of(e), "--text", text_of(e, "r.txt"), "--tokens", "256", "--out", text_of(e, "p.h5")};
       },
       expect::reject, [](const env&) { return names_of({"r.txt"}); }, {}},
      {"text_100k_spaces", "tiny-qwen3-moe",
       [](env& e) { write_bytes(e.dir / "spaces.txt", std::string(100000, ' ') + eval_text_head(4000)); },
       [](const env& e) { return std::vector<std::string>{"eval-ppl", model_of(e), "--text", text_of(e, "spaces.txt"), "--windows", "1"}; },
       expect::finish, [](const env&) { return names_of({"spaces.txt"}); }, {}},
      {"text_2MB_whitespace", "tiny-qwen3-moe",
       [](env& e) {
         std::string ws;
         ws.reserve(2u << 20);
         while (ws.size() < (2u << 20)) ws += "      \t    \t\t  ";
         write_bytes(e.dir / "ws.txt", ws + eval_text_head(4000));
       },
       [](const env& e) { return std::vector<std::string>{"eval-ppl", model_of(e), "--text", text_of(e, "ws.txt"), "--windows", "1"}; },
       expect::finish, [](const env&) { return names_of({"ws.txt"}); }, {}},

      // ---- GGUF files
      {"gguf_info_json_invalid_utf8", nullptr,
       [](env& e) {
         gguf_bytes g;
         g.header(0, 2);
         g.kv_str("general.architecture", "qwen3moe");
         g.kv_str("general.name", "bad \xff\xfe name \xc3");
         write_bytes(e.dir / "bad-utf8.gguf", g.b);
       },
       [](const env& e) { return std::vector<std::string>{"gguf-info", text_of(e, "bad-utf8.gguf"), "--json"}; },
       expect::finish, [](const env&) { return names_of({"bad-utf8.gguf"}); },
       [](const env&, const run_result& r) {
         if (r.code == 0) {
           EXPECT_FALSE(json::parse(r.out, nullptr, false).is_discarded()) << "--json printed invalid JSON";
         }
       }},
      {"gguf_huge_counts_sparse_8GB", nullptr,
       [](env& e) {
         gguf_bytes g;
         g.header(0, 400000000);  // 400 M entries: they would fit 8 GB at 20 bytes each
         write_bytes(e.dir / "huge.gguf", g.b);
         ASSERT_EQ(truncate((e.dir / "huge.gguf").c_str(), off_t(8) << 30), 0);  // sparse: no disk blocks
       },
       [](const env& e) { return std::vector<std::string>{"gguf-info", text_of(e, "huge.gguf")}; },
       expect::reject, [](const env&) { return names_of({"huge.gguf"}); }, check_rss},
      {"gguf_4_million_kv_entries", nullptr,
       [](env& e) {
         gguf_bytes g;
         const uint64_t n = 4000000;
         g.b.reserve(size_t(n) * 17 + 64);
         g.header(0, n);
         char key[5] = {};
         static const char* k_sym = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.";
         for (uint64_t i = 0; i < n; ++i) {
           for (int d = 0; d < 4; ++d) key[d] = k_sym[(i >> (6 * d)) & 63];
           g.kv_u8(std::string_view(key, 4), 1);
         }
         write_bytes(e.dir / "many-kv.gguf", g.b);
       },
       [](const env& e) { return std::vector<std::string>{"gguf-info", text_of(e, "many-kv.gguf")}; },
       expect::finish, [](const env&) { return names_of({"many-kv.gguf"}); }, check_rss},
      {"fifo_as_gguf", nullptr, [](env& e) { ASSERT_EQ(mkfifo((e.dir / "fifo.gguf").c_str(), 0644), 0); },
       [](const env& e) { return std::vector<std::string>{"gguf-info", text_of(e, "fifo.gguf")}; },
       expect::reject, [](const env&) { return names_of({"fifo.gguf"}); }, {}},

      // ---- importance matrices
      {"imatrix_nan", "tiny-qwen3-moe", [](env& e) { write_bytes(e.dir / "nan.imatrix.gguf", imatrix_gguf(NAN)); },
       [](const env& e) {
         return std::vector<std::string>{"pack", model_of(e), "--type", "q4_K", "--imatrix", text_of(e, "nan.imatrix.gguf"), "--out", text_of(e, "out.gguf")};
       },
       expect::reject, [](const env&) { return names_of({"nan.imatrix.gguf"}); }, {}},
      {"imatrix_negative", "tiny-qwen3-moe", [](env& e) { write_bytes(e.dir / "neg.imatrix.gguf", imatrix_gguf(-4.0f)); },
       [](const env& e) {
         return std::vector<std::string>{"pack", model_of(e), "--type", "q4_K", "--imatrix", text_of(e, "neg.imatrix.gguf"), "--out", text_of(e, "out.gguf")};
       },
       expect::reject, [](const env&) { return names_of({"neg.imatrix.gguf"}); }, {}},

      // ---- recipes (razor.recipe/1 JSON and llama-quantize tensor-type lines)
      {"recipe_json_30000_nested_groups", "tiny-qwen3-moe",
       [](env& e) {
         const std::string re = std::string(30000, '(') + "experts" + std::string(30000, ')');
         write_bytes(e.dir / "groups.json", json{{"format", "razor.recipe/1"}, {"name", "groups"}, {"roles", {{"routed_expert", 3}}},
                                                 {"overrides", json::array({{{"pattern", re}, {"bits", 4}}})}}.dump());
       },
       [](const env& e) { return std::vector<std::string>{"footprint", model_of(e), "--recipe", text_of(e, "groups.json")}; },
       expect::finish, [](const env&) { return names_of({"groups.json"}); }, {}},
      {"recipe_types_30000_nested_groups", "tiny-qwen3-moe",
       [](env& e) { write_bytes(e.dir / "groups.txt", std::string(30000, '(') + "exps" + std::string(30000, ')') + "=q4_K\n"); },
       [](const env& e) {
         return std::vector<std::string>{"pack", model_of(e), "--recipe", text_of(e, "groups.txt"), "--dry-run", "--out", text_of(e, "out.gguf")};
       },
       expect::finish, [](const env&) { return names_of({"groups.txt"}); }, {}},
      {"recipe_json_nested_300k_deep", "tiny-qwen3-moe",
       [](env& e) {
         write_bytes(e.dir / "deep.json", R"({"format": "razor.recipe/1", "name": "deep", "notes": )" + deep_json_array(300000) + "}");
       },
       [](const env& e) { return std::vector<std::string>{"footprint", model_of(e), "--recipe", text_of(e, "deep.json")}; },
       expect::reject, [](const env&) { return names_of({"deep.json"}); }, {}},
      {"recipe_json_catastrophic_regex", "tiny-qwen3-moe", {},
       [](const env& e) { return std::vector<std::string>{"footprint", model_of(e), "--recipe", cases("recipe-catastrophic.json")}; },
       expect::finish, [](const env&) { return names_of({"recipe-catastrophic.json"}); }, {}},
      {"recipe_types_catastrophic_regex", "tiny-qwen3-moe", {},
       [](const env& e) {
         return std::vector<std::string>{"pack", model_of(e), "--recipe", cases("recipe-catastrophic.txt"), "--dry-run", "--out", text_of(e, "out.gguf")};
       },
       expect::finish, [](const env&) { return names_of({"recipe-catastrophic.txt"}); }, {}},
      {"recipe_group_2p40", "tiny-qwen3-moe", {},
       [](const env& e) { return std::vector<std::string>{"footprint", model_of(e), "--recipe", cases("recipe-group-2p40.json")}; },
       expect::reject, [](const env&) { return names_of({"recipe-group-2p40.json"}); }, {}},
      {"recipe_group_64_5", "tiny-qwen3-moe", {},
       [](const env& e) { return std::vector<std::string>{"footprint", model_of(e), "--recipe", cases("recipe-group-64.5.json")}; },
       expect::reject, [](const env&) { return names_of({"recipe-group-64.5.json"}); }, {}},
      {"recipe_bits_99", "tiny-qwen3-moe", {},
       [](const env& e) { return std::vector<std::string>{"footprint", model_of(e), "--recipe", cases("recipe-bits-99.json")}; },
       expect::reject, [](const env&) { return names_of({"recipe-bits-99.json"}); }, {}},
      {"recipe_clip_steps_256", "tiny-qwen3-moe", {},
       [](const env& e) { return std::vector<std::string>{"footprint", model_of(e), "--recipe", cases("recipe-clip-steps-256.json")}; },
       expect::reject, [](const env&) { return names_of({"recipe-clip-steps-256.json"}); }, {}},
      {"recipe_json_binary_bytes", "tiny-qwen3-moe", {},
       [](const env& e) { return std::vector<std::string>{"footprint", model_of(e), "--recipe", cases("recipe-binary.json")}; },
       expect::reject, [](const env&) { return names_of({"recipe-binary.json"}); }, check_printable_stderr},
      {"recipe_types_binary_bytes", "tiny-qwen3-moe", {},
       [](const env& e) {
         return std::vector<std::string>{"pack", model_of(e), "--recipe", cases("recipe-binary.txt"), "--dry-run", "--out", text_of(e, "out.gguf")};
       },
       expect::reject, [](const env&) { return names_of({"recipe-binary.txt"}); }, check_printable_stderr},

      // ---- the worker and command-line values
      {"worker_request_nested_200k_deep", nullptr,
       [](env& e) {
         write_bytes(e.dir / "requests.jsonl", R"({"t":"req","id":1,"method":"echo","params":{"x":)" + deep_json_array(200000) +
                                                   "}}\n" + R"({"t":"req","id":2,"method":"echo","params":{"after":"deep"}})" + "\n");
         e.stdin_path = (e.dir / "requests.jsonl").string();
       },
       [](const env&) { return std::vector<std::string>{"worker", "--cpu", "--telemetry-ms", "0"}; },
       expect::finish, {}, check_worker_survives},
      {"worker_id_u64_max", nullptr, [](env& e) { e.stdin_path = cases("worker-id-u64-max.jsonl"); },
       [](const env&) { return std::vector<std::string>{"worker", "--cpu", "--telemetry-ms", "0"}; },
       expect::finish, {}, check_worker_survives},
      {"worker_max_queue_negative", nullptr, {},
       [](const env&) { return std::vector<std::string>{"worker", "--cpu", "--telemetry-ms", "0", "--max-queue", "-1"}; },
       expect::reject, [](const env&) { return names_of({"--max-queue"}); }, {}},
      {"quantize_layers_empty", "tiny-qwen3-moe", {},
       [](const env& e) { return std::vector<std::string>{"quantize", model_of(e), "--recipe", "seed-default", "--layers=", "--out", text_of(e, "part")}; },
       expect::reject, [](const env&) { return names_of({"--layers"}); }, {}},
  };
  return v;
}

class hostile : public ::testing::TestWithParam<size_t> {};

TEST_P(hostile, answers_cleanly) {
  const hostile_case& c = all_cases()[GetParam()];
  env e;
  e.dir = fs::temp_directory_path() / ("razor-hostile-" + std::string(c.name) + "-" + std::to_string(getpid()));
  std::error_code ec;
  fs::remove_all(e.dir, ec);
  fs::create_directories(e.dir);
  if (c.fixture) e.model = make_fixture(c.fixture, e.dir);
  if (c.setup) c.setup(e);
  if (HasFatalFailure()) return;
  const auto args = c.args(e);
  std::string cmdline = "razor";
  for (auto& a : args) cmdline += " " + (a.size() > 120 ? a.substr(0, 120) + "..." : a);
  SCOPED_TRACE(cmdline);
  const run_result r = run_razor_bounded(args, e.dir, e.stdin_path);
  ASSERT_TRUE(r.started);
  EXPECT_FALSE(r.timed_out) << r.describe();
  EXPECT_FALSE(r.signaled) << r.describe();
  if (!r.timed_out && !r.signaled) {
    if (c.what == expect::reject) {
      EXPECT_NE(r.code, 0) << "accepted a hostile input\n" << r.describe();
    }
    if (r.code != 0) {
      EXPECT_FALSE(r.err.empty()) << "failed without a message";
      if (c.names) {
        bool named = false;
        for (auto& n : c.names(e)) named = named || r.err.find(n) != std::string::npos;
        std::string want;
        for (auto& n : c.names(e)) want += (want.empty() ? "" : " or ") + n;
        EXPECT_TRUE(named) << "the message does not name the input (" << want << ")\n" << r.describe();
      }
    }
  }
  if (c.check) c.check(e, r);
  fs::remove_all(e.dir, ec);
}

INSTANTIATE_TEST_SUITE_P(corpus, hostile, ::testing::Range(size_t(0), all_cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& i) { return std::string(all_cases()[i.param].name); });

}  // namespace
