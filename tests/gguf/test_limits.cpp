// GGUF and imatrix readers on hostile files: counts that fit a large (sparse) file, razor's limits, bytes that
// would drive a terminal, and importance values that are NaN, infinite or negative. Each is a clear error
// naming the file, never an allocation the input sized (issue 15).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "common/test_util.h"
#include "gguf/gguf_file.h"
#include "gguf/imatrix.h"

namespace fs = std::filesystem;
using namespace razor;
using namespace razor::gguf;

namespace {

struct temp_dir : razor::test::scratch_dir {
  temp_dir() : scratch_dir("glimits") {}
  const fs::path& p = dir;
};

struct image {
  std::string b;
  image(uint64_t n_tensors, uint64_t n_kv) {
    u32(magic);
    u32(3);
    u64(n_tensors);
    u64(n_kv);
  }
  void u32(uint32_t v) { b.append(reinterpret_cast<char*>(&v), 4); }
  void u64(uint64_t v) { b.append(reinterpret_cast<char*>(&v), 8); }
  void str(const std::string& s) {
    u64(s.size());
    b += s;
  }
};

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

// The image followed by zeros up to `size` bytes, as a sparse file (no disk blocks): the 8 GB file.
fs::path sparse_file(const temp_dir& td, const std::string& head, uint64_t size) {
  const fs::path p = td.p / "sparse.gguf";
  {
    std::ofstream f(p, std::ios::binary);
    f.write(head.data(), std::streamsize(head.size()));
  }
  fs::resize_file(p, size);
  return p;
}

constexpr uint64_t k8GB = uint64_t(8) << 30;

}  // namespace

TEST(GgufLimits, CountsAboveTheLimitsAreRefusedBeforeAllocating) {
  // 65,537 minimal entries fit the bytes (14 each) but pass razor's limit.
  image im(0, max_kv + 1);
  im.b.append(size_t(max_kv + 1) * 14, '\0');
  auto r = file::parse(reinterpret_cast<const uint8_t*>(im.b.data()), im.b.size(), "many.gguf");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error().message(), "many.gguf: metadata count 65537 is more than razor's limit of 65536"))
      << r.error().message();

  // The 8 GB sparse file: counts that fit its size.
  temp_dir td;
  auto f = file::open(sparse_file(td, image(0, uint64_t(1) << 29).b, k8GB).string());
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(contains(f.error().message(), "sparse.gguf: metadata count 536870912 is more than")) << f.error().message();
  f = file::open(sparse_file(td, image(uint64_t(1) << 28, 0).b, k8GB).string());
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(contains(f.error().message(), "tensor count 268435456 is more than razor's limit")) << f.error().message();
}

TEST(GgufLimits, ArraysAndStringsAreBoundedInSparseFiles) {
  temp_dir td;
  // An array of 2^28 strings: 8 bytes each fits 8 GB of zeros (empty strings), but not razor's item limit.
  image a(0, 1);
  a.str("tokenizer.ggml.tokens");
  a.u32(uint32_t(value_type::array));
  a.u32(uint32_t(value_type::string));
  a.u64(uint64_t(1) << 28);
  auto f = file::open(sparse_file(td, a.b, k8GB).string());
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(contains(f.error().message(), "key 'tokenizer.ggml.tokens': array of 268435456 items, more than"))
      << f.error().message();
  // A 2 GiB string: within the file, beyond the memory budget of the metadata; refused before the copy.
  image s(0, 1);
  s.str("general.name");
  s.u32(uint32_t(value_type::string));
  s.u64(uint64_t(2) << 30);
  f = file::open(sparse_file(td, s.b, k8GB).string());
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(contains(f.error().message(), "MiB in memory")) << f.error().message();
  // A tensor name of 8 GiB is refused by its length, not copied first.
  image t(1, 0);
  t.u64(uint64_t(4) << 30);
  f = file::open(sparse_file(td, t.b, k8GB).string());
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(contains(f.error().message(), "bytes, longer than the limit of 63")) << f.error().message();
}

TEST(GgufLimits, UsersBytesInErrorsAndListingsAreEscaped) {
  image im(0, 2);
  for (int i = 0; i < 2; ++i) {
    im.str("evil\x1b[2J\xff");
    im.u32(uint32_t(value_type::u32));
    im.u32(1);
  }
  auto r = file::parse(reinterpret_cast<const uint8_t*>(im.b.data()), im.b.size(), "bad.gguf");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error().message(), "duplicate key 'evil\\x1b[2J\\xff'")) << r.error().message();
  EXPECT_FALSE(contains(r.error().message(), "\x1b"));
  EXPECT_EQ(value::str("a\x1b\"b\n").to_string(), "\"a\\x1b\\\"b\\n\"");
}

TEST(ImatrixLimits, NanInfAndNegativeValuesAreRefused) {
  temp_dir td;
  auto make = [] {
    imatrix im;
    im.chunk_size = 512;
    imatrix_entry e;
    e.name = "blk.0.ffn_up_exps.weight";
    e.n_per_row = 2;
    e.n_mat = 2;
    e.in_sum2 = {1, 2, 3, 4};
    e.counts = {1, 1};
    im.entries = {e};
    return im;
  };
  struct c {
    size_t index;
    float v;
    const char* needle;
  };
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (const c& x : {c{3, nan, "index 3 (expert 1, column 1) is nan"}, c{1, -2.0f, "index 1 (expert 0, column 1) is -2"},
                     c{2, inf, "index 2 (expert 1, column 0) is inf"}}) {
    auto im = make();
    im.entries[0].in_sum2[x.index] = x.v;
    const auto p = td.p / "im.gguf";
    ASSERT_TRUE(write_imatrix_gguf(im, p.string()).ok());
    auto r = read_imatrix(p.string());
    ASSERT_FALSE(r.ok()) << x.needle;
    EXPECT_TRUE(contains(r.error().message(), p.string() + ": entry 'blk.0.ffn_up_exps.weight' .in_sum2 " + x.needle))
        << r.error().message();
  }
  {  // a negative count
    auto im = make();
    im.entries[0].counts[1] = -1;
    const auto p = td.p / "im.gguf";
    ASSERT_TRUE(write_imatrix_gguf(im, p.string()).ok());
    auto r = read_imatrix(p.string());
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(contains(r.error().message(), ".counts index 1 is -1")) << r.error().message();
  }
  {  // legacy .dat: values as stored
    auto im = make();
    im.legacy = true;
    im.entries[0].counts = {3};
    im.entries[0].in_sum2[2] = nan;
    const auto p = td.p / "im.dat";
    ASSERT_TRUE(write_imatrix_dat(im, p.string()).ok());
    auto r = read_imatrix(p.string());
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(contains(r.error().message(), "im.dat: entry 'blk.0.ffn_up_exps.weight' value index 2 is nan"))
        << r.error().message();
    // The same file with a finite value reads.
    im.entries[0].in_sum2[2] = 0.5f;
    ASSERT_TRUE(write_imatrix_dat(im, p.string()).ok());
    EXPECT_TRUE(read_imatrix(p.string()).ok());
  }
  {  // legacy .dat: an entry count that cannot fit
    std::string b;
    int32_t n = 1000;
    b.append(reinterpret_cast<char*>(&n), 4);
    b.append(16 * 100, '\0');
    auto r = parse_imatrix(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "short.dat");
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(contains(r.error().message(), "short.dat: entry count 1000 cannot fit")) << r.error().message();
  }
}
