// imatrix files: GGUF and legacy .dat round trips, llama-quantize's weight derivation, model checks.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "gguf/gguf_file.h"
#include "gguf/imatrix.h"

namespace fs = std::filesystem;
using namespace razor;
using namespace razor::gguf;

namespace {
fs::path tdir() {
  fs::path d = fs::temp_directory_path() / ("razor_imatrix_test_" + std::to_string(getpid()));
  fs::create_directories(d);
  return d;
}

imatrix sample() {
  imatrix im;
  im.datasets = {"calib.txt"};
  im.chunk_count = 3;
  im.chunk_size = 256;
  imatrix_entry a;  // dense
  a.name = "blk.0.attn_q.weight";
  a.n_per_row = 4;
  a.n_mat = 1;
  a.in_sum2 = {768, 1536, 76.8f, 0};
  a.counts = {768};
  imatrix_entry b;  // 3 experts, expert 1 never hit
  b.name = "blk.0.ffn_up_exps.weight";
  b.n_per_row = 2;
  b.n_mat = 3;
  b.in_sum2 = {10, 20, 0, 0, 300, 30};
  b.counts = {10, 0, 100};
  b.in_sum = {1, 2, 0, 0, 3, 4};
  im.entries = {a, b};
  return im;
}
}  // namespace

TEST(Imatrix, WeightsAsLlamaQuantizeDerivesThem) {
  imatrix im = sample();
  auto w = im.weights_for("blk.0.ffn_up_exps.weight", 0);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, (std::vector<float>{1, 2}));
  EXPECT_EQ(*im.weights_for("blk.0.ffn_up_exps.weight", 1), (std::vector<float>{1, 1}));  // count 0 -> 1
  EXPECT_EQ(*im.weights_for("blk.0.ffn_up_exps.weight", 2), (std::vector<float>{3, 0.3f}));
  EXPECT_EQ(im.weights_for("blk.0.ffn_up_exps.weight", 3).error().code(), errc::invalid_argument);
  EXPECT_EQ(im.weights_for("nope", 0).error().code(), errc::not_found);
}

TEST(Imatrix, GgufRoundTrip) {
  imatrix im = sample();
  fs::path p = tdir() / "im.gguf";
  ASSERT_TRUE(write_imatrix_gguf(im, p.string()).ok());
  // The layout llama.cpp expects.
  auto f = file::open(p.string());
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f->get_string("general.type"), "imatrix");
  EXPECT_EQ(f->find("imatrix.chunk_count")->type(), value_type::u32);
  EXPECT_EQ(f->find("imatrix.chunk_size")->type(), value_type::u32);
  ASSERT_NE(f->find_tensor("blk.0.ffn_up_exps.weight.in_sum2"), nullptr);
  EXPECT_EQ(f->find_tensor("blk.0.ffn_up_exps.weight.in_sum2")->ne, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f->find_tensor("blk.0.ffn_up_exps.weight.counts")->ne, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(f->find_tensor("blk.0.attn_q.weight.in_sum"), nullptr);

  auto r = read_imatrix(p.string());
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_FALSE(r->legacy);
  EXPECT_EQ(r->datasets, im.datasets);
  EXPECT_EQ(r->chunk_count, 3);
  EXPECT_EQ(r->chunk_size, 256);
  ASSERT_EQ(r->entries.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(r->entries[i].name, im.entries[i].name);
    EXPECT_EQ(r->entries[i].n_per_row, im.entries[i].n_per_row);
    EXPECT_EQ(r->entries[i].n_mat, im.entries[i].n_mat);
    EXPECT_EQ(r->entries[i].in_sum2, im.entries[i].in_sum2);
    EXPECT_EQ(r->entries[i].counts, im.entries[i].counts);
    EXPECT_EQ(r->entries[i].in_sum, im.entries[i].in_sum);
  }
}

TEST(Imatrix, DatRoundTripKeepsTheWeights) {
  imatrix im = sample();
  fs::path p = tdir() / "im.dat";
  ASSERT_TRUE(write_imatrix_dat(im, p.string()).ok());
  auto r = read_imatrix(p.string());
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_TRUE(r->legacy);
  EXPECT_EQ(r->chunk_count, 3);
  EXPECT_EQ(r->datasets, std::vector<std::string>{"calib.txt"});
  // ncall = ceil(max count / chunk_size): 768/256 = 3 for the dense entry.
  const imatrix_entry* a = r->find("blk.0.attn_q.weight");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->counts, std::vector<float>{3});
  // Before matching a model the expert entry is one flat row; the model gives it its shape.
  const imatrix_entry* b = r->find("blk.0.ffn_up_exps.weight");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->n_per_row, 6);
  std::vector<imatrix_target> model = {{"blk.0.attn_q.weight", 4, 1}, {"blk.0.ffn_up_exps.weight", 2, 3}};
  ASSERT_TRUE(r->match_model(model, "test model").ok());
  for (auto& t : model)
    for (int64_t e = 0; e < t.n_mat; ++e) {
      auto w0 = im.weights_for(t.name, e);
      auto w1 = r->weights_for(t.name, e);
      ASSERT_TRUE(w0.ok() && w1.ok());
      for (size_t i = 0; i < w0->size(); ++i)
        EXPECT_NEAR((*w1)[i], (*w0)[i], 1e-6f * std::max(1.0f, (*w0)[i]))  // one float rounding each way
            << t.name << " expert " << e << " col " << i;
    }
  // dat -> gguf -> read keeps the weights too.
  fs::path g = tdir() / "from_dat.gguf";
  ASSERT_TRUE(write_imatrix_gguf(*r, g.string()).ok());
  auto r2 = read_imatrix(g.string());
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(*r2->weights_for("blk.0.attn_q.weight", 0), *r->weights_for("blk.0.attn_q.weight", 0));
}

TEST(Imatrix, MismatchedModelIsAClearError) {
  imatrix im = sample();
  im.source = "im.gguf";
  auto st = im.match_model({{"blk.0.attn_q.weight", 8, 1}, {"blk.0.ffn_up_exps.weight", 2, 3}}, "tiny");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("blk.0.attn_q.weight"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("8 columns"), std::string::npos) << st.message();
  st = im.match_model({{"blk.0.attn_q.weight", 4, 1}}, "tiny");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("name no tensor of tiny"), std::string::npos) << st.message();
}

TEST(Imatrix, MalformedFiles) {
  std::vector<uint8_t> junk = {5, 0, 0, 0, 1, 2};
  auto r = parse_imatrix(junk.data(), junk.size(), "junk.dat");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("junk.dat"), std::string::npos);
  // A model GGUF is not an imatrix.
  fs::path p = tdir() / "model.gguf";
  ASSERT_TRUE(write_file(p.string(), {{"general.type", value::str("model")}}, {}).ok());
  auto m = read_imatrix(p.string());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message().find("not \"imatrix\""), std::string::npos);
}
