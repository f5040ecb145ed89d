// The real llama-quantize: libllama's llama_model_quantize from the node-llama-cpp npm package (the oracle,
// shared/docs/llamacpp-oracle.md), loaded with dlopen, so tests compare our ftype mixes with its choices.
// The parameter struct is declared here by hand from the oracle's include/llama.h (llama.cpp v0.4.0 build of
// node-llama-cpp 3.21.1); importance data goes in as llama_model_imatrix_data {name, data, size} entries
// ending with a null name, as tools/quantize/quantize.cpp passes it (per column, experts concatenated).
#pragma once
#include <dlfcn.h>

#include <cstdint>
#include <map>
#include <regex>
#include <string>
#include <vector>

namespace razor_test {

// Options beyond the defaults (llama-quantize --tensor-type, --pure, --output-tensor-type,
// --token-embedding-type); ggml type ids, -1 unset.
struct llama_quantize_options {
  std::vector<std::pair<std::string, int32_t>> overrides;
  bool pure = false;
  int32_t output_type = -1, token_embedding_type = -1;
};

struct llama_quantize_oracle {
  struct imatrix_data {  // llama_model_imatrix_data
    const char* name;
    const float* data;
    size_t size;
  };
  struct tensor_override {  // llama_model_tensor_override
    const char* pattern;
    int32_t type;  // enum ggml_type
  };
  static constexpr int32_t type_count = 43;  // GGML_TYPE_COUNT: "not set"
  struct params {  // llama_model_quantize_params
    int32_t nthread;
    int32_t ftype;                 // enum llama_ftype
    int32_t output_tensor_type;    // enum ggml_type (GGML_TYPE_COUNT: unset)
    int32_t token_embedding_type;  // enum ggml_type
    bool allow_requantize, quantize_output_tensor, only_copy, pure, keep_split, dry_run;
    const imatrix_data* imatrix;
    const void* kv_overrides;
    const void* tt_overrides;
    const int32_t* prune_layers;
    size_t max_buf_size;
  };
  static_assert(sizeof(params) == 64, "llama_model_quantize_params layout (llama.h)");

  void* handle = nullptr;
  std::string path, error;
  params (*default_params)() = nullptr;
  uint32_t (*quantize)(const char* in, const char* out, const params* p) = nullptr;
  void (*log_set)(void (*cb)(int level, const char* text, void* ud), void* ud) = nullptr;
  void (*backend_init)() = nullptr;
  std::string last_log;  // what libllama logged during the last run (errors name the offending tensor)

  bool ok() const { return handle != nullptr; }

  // After a dry run: the type libllama chose for every tensor, by name, from its per-tensor log lines
  // "[  i/  n] NAME - [ne...], type = CUR, size = X MiB -> Y MiB (NEW)" (quantized) or "..., size = X MiB"
  // (kept as is).
  std::map<std::string, std::string> dry_run_types() const {
    static const std::regex line(R"(\[\s*\d+/\s*\d+\]\s+(\S+)\s+- \[[^\]]*\], type =\s*(\S+), size =\s*[0-9.]+ MiB(\s*->\s*[0-9.]+ MiB \((\S+)\))?)");
    std::map<std::string, std::string> out;
    for (auto it = std::sregex_iterator(last_log.begin(), last_log.end(), line); it != std::sregex_iterator(); ++it)
      out[(*it)[1].str()] = (*it)[3].matched ? (*it)[4].str() : (*it)[2].str();
    return out;
  }
  // A dry run that a real run would refuse for want of an importance matrix says so at the end.
  bool dry_run_needs_imatrix() const { return last_log.find("will require an imatrix") != std::string::npos; }

  static std::string default_path() {
    return std::string(RAZOR_ORACLE_DIR) +
           "/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libllama.v0.4.0.so";
  }

  static llama_quantize_oracle& instance() {
    static llama_quantize_oracle o = load();
    return o;
  }

  // Quantizes `in` to `out` as llama-quantize IN OUT FTYPE [--imatrix F] does (default parameters, 2 threads),
  // or with `dry_run` (llama-quantize --dry-run) only decides every tensor's type and logs it (dry_run_types
  // reads the log). Returns llama_model_quantize's result (0 = written / planned).
  using options = llama_quantize_options;
  uint32_t run(const std::string& in, const std::string& out, uint32_t ftype, const std::vector<imatrix_data>* im,
               bool dry_run = false, const options& opt = {}) {
    params p = default_params();
    p.pure = opt.pure;
    if (opt.output_type >= 0) p.output_tensor_type = opt.output_type;
    if (opt.token_embedding_type >= 0) p.token_embedding_type = opt.token_embedding_type;
    std::vector<tensor_override> ov;
    for (auto& [pat, t] : opt.overrides) ov.push_back({pat.c_str(), t});
    if (!ov.empty()) {
      ov.push_back({nullptr, type_count});
      p.tt_overrides = ov.data();
    }
    p.nthread = 2;
    p.ftype = int32_t(ftype);
    p.dry_run = dry_run;
    std::vector<imatrix_data> terminated;
    if (im) {
      terminated = *im;
      terminated.push_back({nullptr, nullptr, 0});
      p.imatrix = terminated.data();
    }
    last_log.clear();
    return quantize(in.c_str(), out.c_str(), &p);
  }

 private:
  template <class F>
  bool sym(F& f, const char* name) {
    f = reinterpret_cast<F>(dlsym(handle, name));
    if (!f) error += std::string("missing symbol ") + name + "; ";
    return f != nullptr;
  }

  static void log_cb(int /*level*/, const char* text, void* ud) {
    auto* self = static_cast<llama_quantize_oracle*>(ud);
    if (self->last_log.size() < (size_t(16) << 20)) self->last_log += text;
  }

  static llama_quantize_oracle load() {
    llama_quantize_oracle o;
    o.path = default_path();
    o.handle = dlopen(o.path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!o.handle) {
      const char* e = dlerror();
      o.error = "cannot dlopen " + o.path + ": " + (e ? e : "?") +
                " (npm i -E node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1 in RAZOR_ORACLE_DIR)";
      return o;
    }
    bool all = true;
    all &= o.sym(o.default_params, "llama_model_quantize_default_params");
    all &= o.sym(o.quantize, "llama_model_quantize");
    all &= o.sym(o.log_set, "llama_log_set");
    all &= o.sym(o.backend_init, "llama_backend_init");
    if (!all) {
      dlclose(o.handle);
      o.handle = nullptr;
      return o;
    }
    o.backend_init();
    return o;
  }

 public:
  // After instance() has settled at its final address: route libllama's log into last_log.
  void capture_log() { log_set(&log_cb, this); }
};

}  // namespace razor_test

#define RAZOR_REQUIRE_LLAMA_QUANTIZE(o)                                                  \
  auto& o = ::razor_test::llama_quantize_oracle::instance();                             \
  if (!o.ok()) GTEST_SKIP() << "llama-quantize oracle unavailable: " << o.error;        \
  o.capture_log()
