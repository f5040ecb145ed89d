// Indexing a checkpoint at the scale of Qwen3.5-122B-A10B: open every shard (mmap + header parse),
// classify every tensor, build expert views, and compute a recipe footprint. The checkpoint is the
// synthetic one from `razor synth --sparse` (exact names and shapes, 61 shards, 245 GB of holes).
//
//   bench_index [--keep DIR] [--per-expert] [--repeat N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <unistd.h>

#include "util/paths.h"
#include "model/checkpoint.h"
#include "model/footprint.h"
#include "model/recipe.h"
#include "model/synth.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;
using clk = std::chrono::steady_clock;

int main(int argc, char** argv) {
  bool per_expert = false;
  int repeat = 20;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--per-expert")) per_expert = true;
    if (!std::strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = std::atoi(argv[++i]);
  }
  auto cfg_text = razor::read_text_file(razor::source_dir() + "/resources/configs/qwen3.5-122b-a10b.json");
  if (!cfg_text) return std::fprintf(stderr, "%s\n", cfg_text.error().to_string().c_str()), 1;
  auto dir = fs::temp_directory_path() / ("razor_bench_index_" + std::to_string(getpid()));
  razor::synth_options opt;
  opt.sparse = true;
  opt.fused_experts = !per_expert;
  auto t0 = clk::now();
  auto st = razor::synth_checkpoint(nlohmann::json::parse(*cfg_text), dir.string(), opt);
  if (!st) return std::fprintf(stderr, "%s\n", st.to_string().c_str()), 1;
  double synth_s = std::chrono::duration<double>(clk::now() - t0).count();
  auto recipe = razor::load_recipe("seed-default");
  if (!recipe) return std::fprintf(stderr, "%s\n", recipe.error().to_string().c_str()), 1;
  std::vector<double> open_ms, fp_ms;
  size_t n_tensors = 0, n_shards = 0;
  double bits = 0;
  for (int r = 0; r < repeat; ++r) {
    auto a = clk::now();
    auto ck = razor::checkpoint::open(dir.string());
    auto b = clk::now();
    if (!ck) return std::fprintf(stderr, "%s\n", ck.error().to_string().c_str()), 1;
    auto f = razor::compute_footprint(*ck, *recipe);
    if (!f) return std::fprintf(stderr, "%s\n", f.error().to_string().c_str()), 1;
    auto c = clk::now();
    open_ms.push_back(std::chrono::duration<double, std::milli>(b - a).count());
    fp_ms.push_back(std::chrono::duration<double, std::milli>(c - b).count());
    n_tensors = ck->tensors().size();
    n_shards = ck->shards().size();
    bits = f->seed_effective_bits();
  }
  std::sort(open_ms.begin(), open_ms.end());
  std::sort(fp_ms.begin(), fp_ms.end());
  std::printf("layout %s: %zu tensors in %zu shards (synth %.2f s)\n", per_expert ? "per-expert" : "fused", n_tensors,
              n_shards, synth_s);
  std::printf("| step | median ms | min ms | max ms |\n|---|---|---|---|\n");
  std::printf("| open + index + classify | %.2f | %.2f | %.2f |\n", open_ms[open_ms.size() / 2], open_ms.front(),
              open_ms.back());
  std::printf("| footprint (seed-default, %.3f bits) | %.2f | %.2f | %.2f |\n", bits, fp_ms[fp_ms.size() / 2],
              fp_ms.front(), fp_ms.back());
  fs::remove_all(dir);
  return 0;
}
