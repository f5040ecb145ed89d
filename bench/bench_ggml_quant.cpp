// bench_ggml_quant: our ggml block quantizers (razor::ggml::quantize_tensor) against the real ggml
// (ggml_quantize_chunk from the node-llama-cpp package's libggml-base.so, dlopen'd), on the same
// matrices, the same number of threads and the same row chunking. Reports MB/s of F32 input, the
// ratio ours/ggml and whether the bytes are identical; prints a markdown table.
//
//   bench_ggml_quant [--threads N] [--reps R] [--quick] [--type NAME]... [--lib path/to/libggml-base.so]
//
// --type restricts the run to the named types (repeatable; default: every type below).
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "util/paths.h"
#include "ggml/quants.h"
#include "ggml/types.h"
#include "util/parallel.h"

namespace {

using chunk_fn = size_t (*)(int, const float*, void*, int64_t, int64_t, int64_t, const float*);

struct bench_matrix {
  std::string name;
  int64_t nrows, n_per_row;
  std::vector<float> data;
  std::vector<float> imatrix;
};

bench_matrix make_matrix(std::string name, int64_t nrows, int64_t n_per_row, uint32_t seed) {
  bench_matrix m{std::move(name), nrows, n_per_row, std::vector<float>(static_cast<size_t>(nrows * n_per_row)), {}};
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (auto& v : m.data) {  // weight-like: gaussian with a heavy tail
    v = 0.02f * g(rng);
    if (u(rng) < 0.002f) v *= 20.0f;
  }
  m.imatrix.resize(static_cast<size_t>(n_per_row));
  for (auto& w : m.imatrix) w = std::exp(1.5f * g(rng));
  return m;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int threads = razor::default_threads();
  int reps = 3;
  bool quick = false;
  std::vector<razor::ggml::type> only;
  std::string lib = razor::source_dir() + "/.oracle/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (a == "--lib" && i + 1 < argc) lib = argv[++i];
    else if (a == "--quick") quick = true;
    else if (a == "--type" && i + 1 < argc) {
      const auto t = razor::ggml::type_from_name(argv[++i]);
      if (!t.ok()) {
        std::fprintf(stderr, "--type: %s\n", t.error().to_string().c_str());
        return 2;
      }
      only.push_back(*t);
    } else {
      const bool help = a == "--help" || a == "-h";
      std::fprintf(help ? stdout : stderr,
                   "usage: %s [--threads N] [--reps R] [--quick] [--type NAME]... [--lib libggml-base.so]\n"
                   "  --threads N  threads for both sides (default: all cores)\n"
                   "  --reps R     repetitions, best kept (default 3)\n"
                   "  --quick      1/8 of the rows\n"
                   "  --type NAME  only this type (repeatable): q4_K, q6_K, iq3_xxs\n"
                   "  --lib PATH   ggml's libggml-base.so (default: the .oracle package's)\n",
                   argv[0]);
      return help ? 0 : 2;
    }
  }
  void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    std::fprintf(stderr, "cannot load %s: %s\n", lib.c_str(), dlerror());
    return 1;
  }
  auto ggml_chunk = reinterpret_cast<chunk_fn>(dlsym(h, "ggml_quantize_chunk"));
  auto ggml_init = reinterpret_cast<void (*)(int)>(dlsym(h, "ggml_quantize_init"));
  if (!ggml_chunk || !ggml_init) {
    std::fprintf(stderr, "%s lacks ggml_quantize_chunk / ggml_quantize_init\n", lib.c_str());
    return 1;
  }

  std::vector<bench_matrix> mats;
  const int64_t scale = quick ? 8 : 1;
  mats.push_back(make_matrix("dense 4096x3072", 4096 / scale, 3072, 1));
  // Qwen3.5-122B-A10B routed experts: down_proj is [256, 3072, 1024] (rows of 1024); 4 experts of it
  mats.push_back(make_matrix("122B down_exps, 4 experts (12288x1024)", 4 * 3072 / scale, 1024, 2));

  struct job {
    razor::ggml::type t;
    bool imatrix;
  };
  std::vector<job> jobs = {{razor::ggml::type::q4_k, false},    {razor::ggml::type::q4_k, true},
                           {razor::ggml::type::q6_k, false},    {razor::ggml::type::q6_k, true},
                           {razor::ggml::type::iq3_xxs, false}, {razor::ggml::type::iq3_xxs, true}};
  if (!only.empty())
    std::erase_if(jobs, [&](const job& j) { return std::find(only.begin(), only.end(), j.t) == only.end(); });

  // warm the one-time tables of both sides outside the timings
  ggml_init(int(razor::ggml::info(razor::ggml::type::iq3_xxs).id));
  {
    std::vector<float> z(256, 1.0f);
    std::vector<uint8_t> o(razor::ggml::row_size(razor::ggml::type::iq3_xxs, 256));
    (void)razor::ggml::quantize_rows(razor::ggml::type::iq3_xxs, z.data(), o.data(), 1, 256, z.data());
  }

  std::printf("threads %d, best of %d\n\n", threads, reps);
  std::printf("| matrix | type | imatrix | ours MB/s | ggml MB/s | ours/ggml | bytes identical |\n");
  std::printf("|---|---|---|---:|---:|---:|---|\n");
  int failures = 0;
  for (const auto& m : mats) {
    const double mb = double(m.data.size()) * 4.0 / 1e6;
    for (const auto& j : jobs) {
      const auto& ti = razor::ggml::info(j.t);
      const size_t rs = razor::ggml::row_size(j.t, m.n_per_row);
      const size_t bytes = size_t(m.nrows) * rs;
      std::vector<uint8_t> ours(bytes), theirs(bytes);
      const float* qw = j.imatrix ? m.imatrix.data() : nullptr;
      razor::ggml::quantize_options opt;
      opt.threads = threads;
      opt.allow_missing_imatrix = true;
      double best_ours = 1e30, best_ggml = 1e30;
      for (int r = 0; r < reps; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        auto res = razor::ggml::quantize_tensor(j.t, m.data.data(), ours.data(), bytes, m.nrows, m.n_per_row, qw, opt);
        best_ours = std::min(best_ours, seconds_since(t0));
        if (!res.ok()) {
          std::fprintf(stderr, "%s\n", res.error().to_string().c_str());
          return 1;
        }
        // ggml on the same threads and the same dynamic row chunks as ours
        t0 = std::chrono::steady_clock::now();
        razor::parallel_for(
            size_t(m.nrows),
            [&](size_t b, size_t e) {
              ggml_chunk(int(ti.id), m.data.data(), theirs.data(), int64_t(b) * m.n_per_row, int64_t(e - b),
                         m.n_per_row, qw);
            },
            1, threads);
        best_ggml = std::min(best_ggml, seconds_since(t0));
      }
      const bool same = ours == theirs;
      failures += same ? 0 : 1;
      std::printf("| %s | %s | %s | %.1f | %.1f | %.2f | %s |\n", m.name.c_str(), std::string(ti.name).c_str(),
                  j.imatrix ? "yes" : "no", mb / best_ours, mb / best_ggml, best_ggml / best_ours,
                  same ? "yes" : "NO");
      std::fflush(stdout);
    }
  }
  return failures ? 3 : 0;
}
