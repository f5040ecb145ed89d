// razor quantize --layers (parts) + razor merge == one razor quantize, byte for byte, on the bundled fixtures;
// and the merge's refusals (missing, overlapping, truncated, foreign parts) name the part or the layer.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "common/test_util.h"

namespace fs = std::filesystem;

namespace {

const auto run = razor::test::run_razor;
using razor::test::slurp;

const std::string kModels = RAZOR_MODELS_DIR;

struct scratch : razor::test::scratch_dir {
  scratch() : scratch_dir("split") {}
};

// Every file of the single run is in the merge with the same bytes, except the summary, whose only differences
// may be the run's time, backend and the list of parts.
void expect_same_checkpoint(const std::string& single, const std::string& merged) {
  size_t n = 0;
  for (auto& e : fs::directory_iterator(single)) {
    const std::string name = e.path().filename().string();
    ASSERT_TRUE(fs::exists(fs::path(merged) / name)) << name;
    ++n;
    if (name == "razor_quant_summary.json" || name == ".razor-output") continue;  // time, command, pid differ
    EXPECT_TRUE(slurp(e.path()) == slurp(fs::path(merged) / name)) << name << " differs";
  }
  size_t m = std::distance(fs::directory_iterator(merged), fs::directory_iterator{});
  EXPECT_EQ(n, m);
  auto a = nlohmann::json::parse(slurp(fs::path(single) / "razor_quant_summary.json"));
  auto b = nlohmann::json::parse(slurp(fs::path(merged) / "razor_quant_summary.json"));
  EXPECT_TRUE(b.contains("parts"));
  for (auto* k : {"seconds", "backend", "parts"}) a.erase(k), b.erase(k);
  EXPECT_EQ(a.dump(), b.dump());  // totals (bit-identical floating point), tensors, experts in the same order
}

}  // namespace

TEST(SplitMerge, PartsMergeIntoTheSingleRunByteForByte) {
  // The fixtures are single-shard; a synthetic copy of one with 0.01 GB shards (4 shards + index) checks that
  // parts keep one file per source shard and the merge rebuilds every shard.
  scratch synth;
  auto r0 = run("synth --config " + kModels + "/tiny-qwen3-5-moe/config.json --shard-gb 0.01 --out " + (synth / "m"));
  ASSERT_EQ(r0.code, 0) << r0.out;
  ASSERT_TRUE(fs::exists(synth / "m/model.safetensors.index.json"));
  for (const std::string m : {kModels + "/tiny-qwen3-5-moe", kModels + "/tiny-qwen3-moe", synth / "m"}) {
    scratch s;
    auto r = run("quantize " + m + " --cpu --out " + (s / "single"));
    ASSERT_EQ(r.code, 0) << r.out;
    // Three uneven parts, "rest" alone.
    for (auto [layers, dir] : {std::pair{"0:1", "p0"}, {"1:4", "p1"}, {"rest", "p2"}}) {
      r = run("quantize " + m + " --cpu --layers " + layers + " --out " + (s / dir));
      ASSERT_EQ(r.code, 0) << r.out;
      EXPECT_NE(r.out.find("wrote part"), std::string::npos) << r.out;
      EXPECT_FALSE(fs::exists(s / (std::string(dir) + "/config.json")));  // a part holds tensors only
    }
    r = run("merge " + m + " --out " + (s / "merged") + " --part " + (s / "p2") + " --part " + (s / "p0") +
            " --part " + (s / "p1"));
    ASSERT_EQ(r.code, 0) << r.out;
    expect_same_checkpoint(s / "single", s / "merged");
    // --parts-dir finds the same parts (the order of the parts does not matter).
    fs::create_directories(s / "all");
    for (auto* d : {"p0", "p1", "p2"}) fs::rename(s / d, s / (std::string("all/") + d));
    r = run("merge " + m + " --out " + (s / "merged2") + " --parts-dir " + (s / "all"));
    ASSERT_EQ(r.code, 0) << r.out;
    expect_same_checkpoint(s / "single", s / "merged2");
  }
}

TEST(SplitMerge, MergeRefusesIncompleteOrWrongParts) {
  scratch s;
  const std::string m = kModels + "/tiny-qwen3-5-moe";
  ASSERT_EQ(run("quantize " + m + " --cpu --layers 0:2,rest --out " + (s / "p0")).code, 0);
  ASSERT_EQ(run("quantize " + m + " --cpu --layers 2:4 --out " + (s / "p1")).code, 0);
  ASSERT_EQ(run("quantize " + m + " --cpu --layers 1:3 --out " + (s / "overlap")).code, 0);
  // A task that never finished: its part is absent; the missing layers are named.
  auto r = run("merge " + m + " --out " + (s / "o") + " --part " + (s / "p0"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("(layer 2) is in no part"), std::string::npos) << r.out;
  r = run("merge " + m + " --out " + (s / "o") + " --part " + (s / "p0") + " --part " + (s / "task-7"));
  EXPECT_NE(r.out.find("task-7 does not exist"), std::string::npos) << r.out;
  // Overlapping ranges.
  r = run("merge " + m + " --out " + (s / "o") + " --part " + (s / "p0") + " --part " + (s / "p1") + " --part " +
          (s / "overlap"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("is in two parts"), std::string::npos) << r.out;
  // Another recipe.
  r = run("merge " + m + " --recipe uniform-int3 --out " + (s / "o") + " --part " + (s / "p0") + " --part " + (s / "p1"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("another recipe"), std::string::npos) << r.out;
  // Another checkpoint.
  r = run("merge " + kModels + "/tiny-qwen3-moe --out " + (s / "o") + " --part " + (s / "p0") + " --part " + (s / "p1"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("another checkpoint"), std::string::npos) << r.out;
  // A truncated shard in a part (a disk that filled up after the rename, a copy cut short).
  fs::path shard;
  for (auto& e : fs::directory_iterator(s / "p1"))
    if (e.path().extension() == ".safetensors") shard = e.path();
  ASSERT_FALSE(shard.empty());
  fs::resize_file(shard, fs::file_size(shard) - 100);
  r = run("merge " + m + " --out " + (s / "o") + " --part " + (s / "p0") + " --part " + (s / "p1"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("part " + (s / "p1")), std::string::npos) << r.out;
  // A part without its manifest.
  fs::remove(s / "p0/razor_part.json");
  r = run("merge " + m + " --out " + (s / "o") + " --part " + (s / "p0"));
  EXPECT_NE(r.out.find("razor_part.json is missing"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(s / "o"));  // nothing under the final name
  // Bad ranges are refused before anything is written.
  r = run("quantize " + m + " --cpu --layers 3:9 --out " + (s / "bad"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("4 layers"), std::string::npos) << r.out;
}

// razor pack --layers (GGUF parts) + razor pack --from-part == one razor pack: the same file, byte for byte
// (metadata, header, tensor data), for a type, a tensor-type recipe and a split output.
TEST(SplitMerge, PackPartsMergeIntoTheSingleGgufByteForByte) {
  scratch s;
  const std::string m = kModels + "/tiny-qwen3-5-moe";
  const std::string recipe = std::string(RAZOR_SOURCE_DIR_T) + "/recipes/gguf/instinct-q3.txt";
  int n = 0;
  for (std::string opts : {std::string("--type q4_K"), "--recipe " + recipe, std::string("--type q8_0 --split-max-gb 0.004")}) {
    const std::string tag = std::to_string(n++);
    auto r = run("pack " + m + " " + opts + " --out " + (s / ("single" + tag + "/m.gguf")));
    ASSERT_EQ(r.code, 0) << r.out;
    for (auto [layers, dir] : {std::pair{"rest", "a"}, {"0:3", "b"}, {"3:4", "c"}}) {
      r = run("pack " + m + " " + opts + " --layers " + layers + " --out " + (s / (dir + tag)));
      ASSERT_EQ(r.code, 0) << r.out;
    }
    r = run("pack " + m + " " + opts + " --out " + (s / ("merged" + tag + "/m.gguf")) + " --from-part " +
            (s / ("c" + tag)) + " --from-part " + (s / ("a" + tag)) + " --from-part " + (s / ("b" + tag)));
    ASSERT_EQ(r.code, 0) << r.out;
    size_t files = 0;
    for (auto& e : fs::directory_iterator(s / ("single" + tag))) {
      ++files;
      EXPECT_TRUE(slurp(e.path()) == slurp(fs::path(s / ("merged" + tag)) / e.path().filename()))
          << opts << ": " << e.path().filename() << " differs";
    }
    EXPECT_EQ(files, size_t(std::distance(fs::directory_iterator(s / ("merged" + tag)), fs::directory_iterator{})));
    if (opts.find("split") != std::string::npos) EXPECT_GT(files, 1u) << "the split case should write shards";
  }
  // Refusals: a missing task, parts made with other types, a truncated part.
  auto r = run("pack " + m + " --type q4_K --out " + (s / "x.gguf") + " --from-part " + (s / "a0") + " --from-part " +
               (s / "b0"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("(layer 3) is in no part"), std::string::npos) << r.out;
  r = run("pack " + m + " --type q8_0 --out " + (s / "x.gguf") + " --from-part " + (s / "a0") + " --from-part " +
          (s / "b0") + " --from-part " + (s / "c0"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("other types"), std::string::npos) << r.out;
  fs::resize_file(s / "b0/gguf_part.bin", fs::file_size(s / "b0/gguf_part.bin") - 1);
  r = run("pack " + m + " --type q4_K --out " + (s / "x.gguf") + " --from-part " + (s / "a0") + " --from-part " +
          (s / "b0") + " --from-part " + (s / "c0"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("part " + (s / "b0")), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("truncated"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(s / "x.gguf"));
}
