// GGUF container: round trips of every metadata type, shards, and clear errors on malformed files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "ggml/types.h"
#include "gguf/gguf_file.h"

namespace fs = std::filesystem;
using namespace razor;
using namespace razor::gguf;

namespace {

fs::path temp_dir() {
  fs::path d = fs::temp_directory_path() / ("razor_gguf_test_" + std::to_string(getpid()));
  fs::create_directories(d);
  return d;
}

std::vector<uint8_t> read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<kv_pair> every_type_kv() {
  std::vector<kv_pair> kv;
  kv.push_back({"general.architecture", value::str("test")});
  kv.push_back({"t.u8", value::u8(200)});
  kv.push_back({"t.i8", value::i8(-100)});
  kv.push_back({"t.u16", value::u16(60000)});
  kv.push_back({"t.i16", value::i16(-30000)});
  kv.push_back({"t.u32", value::u32(4000000000u)});
  kv.push_back({"t.i32", value::i32(-2000000000)});
  kv.push_back({"t.f32", value::f32(1.5e-6f)});
  kv.push_back({"t.bool", value::boolean(true)});
  kv.push_back({"t.str", value::str("h\xc3\xa9llo \"world\"\n")});
  kv.push_back({"t.u64", value::u64(18000000000000000000ull)});
  kv.push_back({"t.i64", value::i64(-9000000000000000000ll)});
  kv.push_back({"t.f64", value::f64(3.141592653589793)});
  std::vector<int32_t> i32s = {1, -2, 3};
  kv.push_back({"t.arr_i32", value::i32s(i32s)});
  std::vector<float> f32s = {0.5f, -0.25f};
  kv.push_back({"t.arr_f32", value::f32s(f32s)});
  kv.push_back({"t.arr_str", value::strings({"a b", "", "\xc4\xa0the"})});
  kv.push_back({"t.arr_bool", value::array_raw(value_type::boolean, {1, 0, 1}, 3)});
  kv.push_back({"t.arr_u8", value::array_raw(value_type::u8, {}, 0)});
  kv.push_back({"t.nested", value::arrays({value::i32s(i32s), value::strings({"x"}), value::arrays({})})});
  return kv;
}

}  // namespace

TEST(GgufFile, RoundTripEveryMetadataType) {
  fs::path p = temp_dir() / "all.gguf";
  std::vector<memory_tensor> ts;
  ts.push_back({"a.weight", {3, 2}, type_f32, f32_bytes({1, 2, 3, 4, 5, 6})});
  ts.push_back({"b.weight", {64}, type_f16, std::vector<uint8_t>(128, 7)});
  ts.push_back({"c.weight", {32, 2}, type_q8_0, std::vector<uint8_t>(68, 9)});
  auto kv = every_type_kv();
  ASSERT_TRUE(write_file(p.string(), kv, ts).ok());
  auto f = file::open(p.string());
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  ASSERT_EQ(f->metadata().size(), kv.size());
  for (size_t i = 0; i < kv.size(); ++i) {
    EXPECT_EQ(f->metadata()[i].key, kv[i].key);
    EXPECT_TRUE(f->metadata()[i].val == kv[i].val) << kv[i].key << ": " << f->metadata()[i].val.to_string();
  }
  EXPECT_EQ(*f->get_int("t.u8"), 200);
  EXPECT_EQ(*f->get_int("t.i64"), -9000000000000000000ll);
  EXPECT_EQ(*f->find("t.u64")->as_uint(), 18000000000000000000ull);
  EXPECT_FLOAT_EQ(float(*f->get_float("t.f32")), 1.5e-6f);
  EXPECT_EQ(*f->get_string("t.str"), "h\xc3\xa9llo \"world\"\n");
  EXPECT_EQ(f->find("t.nested")->array_at(0).int_at(1), -2);
  EXPECT_EQ(f->find("t.nested")->array_at(1).str_at(0), "x");
  ASSERT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->tensors()[0].ne, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(f->tensors()[1].offset, 32u);  // 24 bytes padded to 32
  EXPECT_EQ(f->tensors()[2].offset, 160u);
  EXPECT_EQ(f->data_offset() % 32, 0u);
  float x[6];
  std::memcpy(x, f->tensor_data(f->tensors()[0]), 24);
  EXPECT_EQ(x[5], 6.0f);
  EXPECT_EQ(f->tensor_data(*f->find_tensor("c.weight"))[67], 9);
  // The final name exists, no temporary is left behind.
  for (auto& e : fs::directory_iterator(p.parent_path()))
    EXPECT_EQ(e.path().filename().string().find(".partial"), std::string::npos);
}

TEST(GgufFile, AlignmentKeyAndShards) {
  fs::path dir = temp_dir();
  writer_options o;
  o.alignment = 64;
  o.max_shard_bytes = 256;  // two 128-byte (padded) tensors per shard
  writer w(o);
  w.set("general.architecture", value::str("test"));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(w.add_tensor("t" + std::to_string(i), {25}, type_f32).ok());  // 100 B each
  ASSERT_TRUE(w.begin((dir / "m.gguf").string()).ok());
  ASSERT_EQ(w.paths().size(), 3u);
  for (int i = 0; i < 5; ++i) {
    std::vector<float> v(25, float(i));
    ASSERT_TRUE(w.write(v.data(), 50).ok());  // pieces across calls
    ASSERT_TRUE(w.write(reinterpret_cast<uint8_t*>(v.data()) + 50, 50).ok());
  }
  ASSERT_TRUE(w.finish().ok());
  EXPECT_EQ(w.paths()[0], (dir / "m-00001-of-00003.gguf").string());
  int64_t total = 0;
  for (size_t s = 0; s < w.paths().size(); ++s) {
    auto f = file::open(w.paths()[s]);
    ASSERT_TRUE(f.ok()) << f.error().to_string();
    EXPECT_EQ(f->alignment(), 64u);
    EXPECT_EQ(*f->get_int("split.no"), int64_t(s));
    EXPECT_EQ(*f->get_int("split.count"), 3);
    EXPECT_EQ(*f->get_int("split.tensors.count"), 5);
    EXPECT_EQ(f->find("general.architecture") != nullptr, s == 0);
    for (auto& t : f->tensors()) {
      float v0;
      std::memcpy(&v0, f->tensor_data(t), 4);
      EXPECT_EQ(v0, float(std::stoi(t.name.substr(1))));
    }
    total += int64_t(f->tensors().size());
  }
  EXPECT_EQ(total, 5);
}

TEST(GgufFile, WriterRefusesBadInput) {
  writer w;
  EXPECT_EQ(w.add_tensor("x", {33}, type_q8_0).code(), errc::shape_mismatch);
  EXPECT_EQ(w.add_tensor(std::string(64, 'n'), {32}, type_f32).code(), errc::invalid_argument);
  EXPECT_EQ(w.add_tensor("x", {1, 1, 1, 1, 1}, type_f32).code(), errc::invalid_argument);
  EXPECT_TRUE(w.add_tensor("x", {32}, type_f32).ok());
  EXPECT_EQ(w.add_tensor("x", {32}, type_f32).code(), errc::invalid_argument);
  // Incomplete data: finish fails and no file appears.
  fs::path p = temp_dir() / "incomplete.gguf";
  ASSERT_TRUE(w.begin(p.string()).ok());
  float z[8] = {};
  ASSERT_TRUE(w.write(z, sizeof z).ok());
  EXPECT_FALSE(w.finish().ok());
  w.abort();
  EXPECT_FALSE(fs::exists(p));
}

// ---- malformed files --------------------------------------------------------------------------------

namespace {
// A small hand-made file image for corrupting.
struct image {
  std::string b;
  void u32(uint32_t v) { b.append(reinterpret_cast<char*>(&v), 4); }
  void u64(uint64_t v) { b.append(reinterpret_cast<char*>(&v), 8); }
  void str(const std::string& s) {
    u64(s.size());
    b += s;
  }
};

result<file> parse(const std::string& b) {
  return file::parse(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "bad.gguf");
}

std::string good_image() {
  std::vector<memory_tensor> ts;
  ts.push_back({"a", {8}, type_f32, std::vector<uint8_t>(32, 1)});
  ts.push_back({"b", {4}, type_f32, std::vector<uint8_t>(16, 2)});
  fs::path p = temp_dir() / "good.gguf";
  EXPECT_TRUE(write_file(p.string(), {{"general.architecture", value::str("x")}}, ts).ok());
  auto v = read_all(p);
  return std::string(v.begin(), v.end());
}

void expect_bad(const std::string& b, const std::string& needle) {
  auto r = parse(b);
  ASSERT_FALSE(r.ok()) << "accepted; expected an error containing '" << needle << "'";
  EXPECT_NE(r.error().message().find("bad.gguf"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().message();
}
}  // namespace

TEST(GgufFile, TruncatedAtEveryByteGivesAnError) {
  std::string g = good_image();
  ASSERT_TRUE(parse(g).ok());
  for (size_t n = 0; n < g.size() - 16; ++n) {  // the last 16 bytes are the last tensor's data
    auto r = parse(g.substr(0, n));
    EXPECT_FALSE(r.ok()) << "length " << n;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code(), errc::bad_format);
    }
  }
}

TEST(GgufFile, ClearErrors) {
  expect_bad("GGUX0000000000000000000000", "not a GGUF file");
  {
    image im;
    im.u32(magic);
    im.u32(7);
    im.u64(0);
    im.u64(0);
    auto r = parse(im.b);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), errc::unsupported);
  }
  {  // absurd counts
    image im;
    im.u32(magic);
    im.u32(3);
    im.u64(0);
    im.u64(1ull << 60);
    expect_bad(im.b, "metadata count");
    image im2;
    im2.u32(magic);
    im2.u32(3);
    im2.u64(1ull << 40);
    im2.u64(0);
    expect_bad(im2.b, "tensor count");
  }
  {  // absurd string length
    image im;
    im.u32(magic);
    im.u32(3);
    im.u64(0);
    im.u64(1);
    im.u64(1ull << 62);
    im.b += "key and some more bytes";
    expect_bad(im.b, "runs past the end");
  }
  {  // unknown value type; absurd array length
    image im;
    im.u32(magic);
    im.u32(3);
    im.u64(0);
    im.u64(1);
    im.str("k");
    im.u32(13);
    im.u32(0);
    expect_bad(im.b, "unknown value type 13");
    image a;
    a.u32(magic);
    a.u32(3);
    a.u64(0);
    a.u64(1);
    a.str("k");
    a.u32(9);
    a.u32(4);
    a.u64(1ull << 61);
    expect_bad(a.b, "cannot fit");
  }
  {  // duplicate key; bad bool; bad alignment
    image im;
    im.u32(magic);
    im.u32(3);
    im.u64(0);
    im.u64(2);
    for (int i = 0; i < 2; ++i) {
      im.str("k");
      im.u32(4);
      im.u32(1);
    }
    expect_bad(im.b, "duplicate key 'k'");
    image b;
    b.u32(magic);
    b.u32(3);
    b.u64(0);
    b.u64(1);
    b.str("k");
    b.u32(7);
    b.b += char(2);
    expect_bad(b.b, "BOOL");
    image al;
    al.u32(magic);
    al.u32(3);
    al.u64(0);
    al.u64(1);
    al.str("general.alignment");
    al.u32(4);
    al.u32(48);
    expect_bad(al.b, "not a power of two");
    image al2;
    al2.u32(magic);
    al2.u32(3);
    al2.u64(0);
    al2.u64(1);
    al2.str("general.alignment");
    al2.u32(10);
    al2.u64(32);
    expect_bad(al2.b, "must be UINT32");
  }
  // Tensor infos: build one by hand with a given shape/type/offset.
  auto tensor_image = [](uint32_t nd, std::vector<uint64_t> ne, uint32_t type, uint64_t offset, int n = 1,
                         size_t data = 64) {
    image im;
    im.u32(magic);
    im.u32(3);
    im.u64(uint64_t(n));
    im.u64(0);
    for (int i = 0; i < n; ++i) {
      im.str(n == 2 ? "same" : "t");
      im.u32(nd);
      for (auto d : ne) im.u64(d);
      im.u32(type);
      im.u64(offset + uint64_t(i) * 32);
    }
    im.b.append((32 - im.b.size() % 32) % 32, '\0');
    im.b.append(data, '\0');
    return im.b;
  };
  EXPECT_TRUE(parse(tensor_image(1, {8}, 0, 0)).ok());
  expect_bad(tensor_image(5, {1, 1, 1, 1, 1}, 0, 0), "5 dimensions");
  expect_bad(tensor_image(1, {8}, 77, 0), "unknown ggml type 77");
  expect_bad(tensor_image(1, {8}, 0, 32), "has offset 32, expected 0");
  expect_bad(tensor_image(1, {8}, 0, 0, 2), "duplicate tensor name 'same'");
  expect_bad(tensor_image(1, {33}, 8, 0), "block size 32");
  expect_bad(tensor_image(2, {1ull << 40, 1ull << 40}, 0, 0), "overflows");
  expect_bad(tensor_image(1, {1024}, 0, 0), "runs past the end");
  expect_bad(tensor_image(1, {1ull << 63}, 0, 0), "dimension 0");
}

// The container's type table is the one ggml type table, every row (tests/ggml/test_ggml_oracle.cpp checks
// those against the real ggml): same ids, names and geometry, found by id and by name alike.
TEST(GgufFile, TypeTableIsTheGgmlTable) {
  const auto upper = [](std::string s) {
    for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
    return s;
  };
  const auto types = all_types();
  ASSERT_EQ(types.size(), std::size(ggml::known_types));
  for (size_t i = 1; i < types.size(); ++i) EXPECT_LT(types[i - 1].id, types[i].id);  // sorted by id
  for (const auto& g : ggml::known_types) {
    const type_traits* t = find_type(g.id);
    ASSERT_NE(t, nullptr) << g.name;
    EXPECT_EQ(std::string_view(t->name), g.name);
    EXPECT_EQ(t->block_size, g.block_size) << g.name;
    EXPECT_EQ(t->type_size, g.type_size) << g.name;
    EXPECT_EQ(find_type(g.name), t);
    EXPECT_EQ(find_type(upper(std::string(g.name))), t) << g.name;  // names are case-insensitive
  }
  EXPECT_EQ(find_type(31u), nullptr);  // Q4_0_4_4: removed from ggml, no row
  EXPECT_EQ(find_type("q4_2"), nullptr);
}
