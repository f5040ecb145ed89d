// razor allocate --mode gguf (core/quant/allocate_gguf.h): one ggml type per (layer, routed-expert projection)
// from measured ggml quantization errors and the fake mode's salience and solver. On tiny-qwen3-moe with a probe
// made here: the recipe parses, pack takes it unchanged and stores exactly the allocated types, the written file
// is within the byte target, a bits target is met, more budget never predicts more damage, the error cache
// round-trips, and with an importance matrix the ladder gains iq3_xxs and pack (with --imatrix) accepts it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/test_util.h"
#include "engine/probe.h"
#include "gguf/convert.h"
#include "gguf/imatrix.h"
#include "model/checkpoint.h"
#include "quant/allocate_engine.h"
#include "quant/allocate_gguf.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {

std::string fixture(const std::string& name) { return std::string(RAZOR_MODELS_DIR) + "/" + name; }
std::string text_path() { return razor::test::calib_text_path(); }  // calibration: resources/data/README.md
std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct probed {
  engine::probe_result r;
  quant::alloc_stats st;
  gguf::imatrix im;
};

// 16 windows of 256 tokens of the calibration text (as tests/gguf/test_imatrix_export.cpp): a few seconds.
probed make_probe(const checkpoint& ck, const std::string& model) {
  probed p;
  auto tk = bpe_tokenizer::load(model + "/tokenizer.json");
  EXPECT_TRUE(tk.ok());
  auto toks = engine::protocol_tokens(*tk, read_text(text_path()), "text").value();
  engine::probe_options o;
  o.n_tokens = 16 * 256;
  auto r = engine::run_probe(*engine::checkpoint_weights(ck), toks, o);
  EXPECT_TRUE(r.ok()) << r.error().to_string();
  p.r = std::move(r).value();
  auto st = quant::stats_from_probe(p.r);
  EXPECT_TRUE(st.ok()) << st.error().to_string();
  p.st = std::move(st).value();
  auto im = engine::probe_to_imatrix(p.r, ck.config(), "test", nullptr);
  EXPECT_TRUE(im.ok()) << im.error().to_string();
  p.im = std::move(im).value();
  return p;
}

std::string base_text(bool iq3) {
  auto t = quant::read_gguf_base_recipe(std::string(RAZOR_SOURCE_DIR_T) + "/recipes/gguf/" +
                                        (iq3 ? "instinct-iq3.txt" : "instinct-q3.txt"));
  EXPECT_TRUE(t.ok());
  return t.ok() ? *t : std::string();
}

fs::path scratch() {
  auto d = fs::temp_directory_path() / ("razor-alloc-gguf-" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

// Packs `recipe_text` (after a write / load round trip, as `razor pack --recipe` reads it) and checks the stored
// types of the routed-expert tensors against the allocation. Returns the file size.
uint64_t pack_and_check(const std::string& model, const quant::gguf_allocation& al, const fs::path& dir,
                        const std::string& stem, gguf::imatrix* im) {
  const auto rpath = (dir / (stem + ".txt")).string();
  { std::ofstream(rpath) << al.recipe_text; }
  auto rec = gguf::load_type_recipe(rpath);
  EXPECT_TRUE(rec.ok()) << rec.error().to_string();
  gguf::convert_options o;
  o.recipe = *rec;
  o.imat = im;
  const auto out = (dir / (stem + ".gguf")).string();
  auto rep = gguf::convert_to_gguf(model, out, o);
  EXPECT_TRUE(rep.ok()) << rep.error().to_string();
  if (!rep.ok()) return 0;
  int n_exps = 0;
  for (auto& t : rep->tensors) {
    for (int L = 0; L < 4; ++L)
      for (int p = 0; p < quant::kProjs; ++p)
        if (t.name == quant::gguf_expert_tensor(L, p)) {
          ++n_exps;
          EXPECT_EQ(t.stored, al.types[size_t(L) * quant::kProjs + size_t(p)]) << t.name;
          // typed by its own per-layer line (first match wins), not by the base's ffn_*_exps line after it
          const std::string want = "blk\\." + std::to_string(L) + "\\.ffn_" + quant::gguf_proj_name(p) + "_exps\\.weight=";
          int line = 0, k = 0;
          std::istringstream in(al.recipe_text);
          for (std::string s; std::getline(in, s);) {
            ++k;
            if (s.rfind(want, 0) == 0) line = k;
          }
          EXPECT_EQ(t.why, rpath + " line " + std::to_string(line)) << t.name;
        }
  }
  EXPECT_EQ(n_exps, 12);
  uint64_t data = 0;
  for (auto& t : rep->tensors) data += quant::gguf_padded(t.bytes);
  EXPECT_EQ(data, al.data_bytes);  // the plan the allocation priced is what pack wrote
  return uint64_t(fs::file_size(out));
}

}  // namespace

TEST(allocate_gguf, RecipePacksUnchangedWithinTarget) {
  const auto model = fixture("tiny-qwen3-moe");
  auto ck = checkpoint::open(model);
  ASSERT_TRUE(ck.ok());
  auto pr = make_probe(*ck, model);
  ASSERT_EQ(pr.st.n_layers, 4);
  const auto dir = scratch();

  quant::gguf_measure_options mo;  // default ladder, no imatrix
  bool cached = true;
  const auto cache = (dir / "probe.gguf-qerr.json").string();
  auto errs = quant::load_or_measure_gguf_errors(*ck, pr.st, mo, cache, {{"probe", "test"}}, &cached);
  ASSERT_TRUE(errs.ok()) << errs.error().to_string();
  EXPECT_FALSE(cached);
  auto again = quant::load_or_measure_gguf_errors(*ck, pr.st, mo, cache, {{"probe", "test"}}, &cached);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(cached);
  EXPECT_EQ(again->werr, errs->werr);
  // more bits, less error (every expert matrix, every projection)
  for (int L = 0; L < 4; ++L)
    for (int e = 0; e < pr.st.n_experts; ++e)
      for (int p = 0; p < quant::kProjs; ++p)
        EXPECT_LT(errs->err[errs->at(L, e, p, 5)], errs->err[errs->at(L, e, p, 0)]);  // q8_0 < q2_K

  // Reference sizes: the base recipe (all experts q3_K) as pack writes it.
  const std::string base = base_text(false);
  quant::gguf_allocate_options go;
  go.base_name = "instinct-q3.txt";
  double prev_damage = 1e300;
  uint64_t prev_bytes = 0;
  for (const char* tgt : {"7.9MB", "8.2MB", "8.6MB"}) {
    auto t = quant::parse_target(tgt);
    ASSERT_TRUE(t.ok());
    go.target = *t;
    auto al = quant::allocate_gguf(*ck, pr.st, *errs, base, go);
    ASSERT_TRUE(al.ok()) << tgt << ": " << al.error().to_string();
    EXPECT_TRUE(al->report["size"]["within_target"].get<bool>()) << tgt;
    EXPECT_LE(al->damage, prev_damage) << tgt;
    EXPECT_GE(al->expert_bytes, prev_bytes) << tgt;
    prev_damage = al->damage;
    prev_bytes = al->expert_bytes;
    const uint64_t file = pack_and_check(model, *al, dir, std::string("r") + tgt, nullptr);
    EXPECT_LE(double(file), t->value) << tgt;
    EXPECT_LE(file, al->data_bytes + al->overhead_bytes) << tgt;  // the overhead estimate is an upper bound here
    ASSERT_EQ(al->report["layers"].size(), 4u);
    EXPECT_TRUE(al->report["layers"][0]["down"].contains("gain_per_byte"));
  }
  // bits target over the routed experts
  go.target = *quant::parse_target("3.3bits");
  auto ab = quant::allocate_gguf(*ck, pr.st, *errs, base, go);
  ASSERT_TRUE(ab.ok()) << ab.error().to_string();
  EXPECT_LE(ab->expert_bpw, 3.3 + 1e-9);
  EXPECT_GT(ab->expert_bpw, 2.625);  // above all-q2_K: the solver spent the budget
  pack_and_check(model, *ab, dir, "bits", nullptr);
  // an impossible target is an error, not a silent overrun
  go.target = *quant::parse_target("5MB");
  EXPECT_FALSE(quant::allocate_gguf(*ck, pr.st, *errs, base, go).ok());
  fs::remove_all(dir);
}

TEST(allocate_gguf, ImatrixAddsIq3xxsAndPacksWithIt) {
  const auto model = fixture("tiny-qwen3-moe");
  auto ck = checkpoint::open(model);
  ASSERT_TRUE(ck.ok());
  auto pr = make_probe(*ck, model);
  const auto dir = scratch();
  gguf::convert_options mo_plan;  // match the imatrix to the model, as the CLI does
  mo_plan.imat = &pr.im;
  ASSERT_TRUE(gguf::plan_gguf(*ck, mo_plan).ok());
  quant::gguf_measure_options mo;
  mo.types = quant::gguf_default_ladder(true);
  mo.imat = &pr.im;
  ASSERT_EQ(mo.types[1], ggml::type::iq3_xxs);
  auto errs = quant::measure_gguf_errors(*ck, pr.st, mo);
  ASSERT_TRUE(errs.ok()) << errs.error().to_string();
  EXPECT_TRUE(errs->quant_imatrix);
  quant::gguf_allocate_options go;
  go.base_name = "instinct-iq3.txt";
  go.imat = &pr.im;
  go.target = *quant::parse_target("3.1bits");
  auto al = quant::allocate_gguf(*ck, pr.st, *errs, base_text(true), go);
  ASSERT_TRUE(al.ok()) << al.error().to_string();
  EXPECT_LE(al->expert_bpw, 3.1 + 1e-9);
  bool any_iq3 = false;
  for (auto t : al->types) any_iq3 |= t == ggml::type::iq3_xxs;
  EXPECT_TRUE(any_iq3);  // 3.0625 bpw: the only rung between q2_K (2.625) and q3_K (3.4375)
  pack_and_check(model, *al, dir, "iq3", &pr.im);
  fs::remove_all(dir);
}
