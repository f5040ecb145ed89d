#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "util/sha256.h"
#include "util/atomic_file.h"
#include "util/numeric.h"
#include "util/parallel.h"

namespace fs = std::filesystem;
using namespace razor;

TEST(Numeric, F16RoundTripsEveryValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_f16(f), h) << std::hex << h;
  }
}

TEST(Numeric, F16RoundsHalfToEven) {
  // 1 + 2^-11 is exactly halfway between 1 and the next f16 (1 + 2^-10): ties to even -> 1.
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  // 1 + 3*2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even) -> up.
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // rounds to infinity
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // half of the smallest subnormal: to even (0)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
}

TEST(Numeric, Bf16RoundsHalfToEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  uint32_t u = 0x3f808000;  // exactly halfway between 0x3f80 and 0x3f81: to even
  float f;
  std::memcpy(&f, &u, 4);
  EXPECT_EQ(f32_to_bf16(f), 0x3f80);
  u = 0x3f818000;
  std::memcpy(&f, &u, 4);
  EXPECT_EQ(f32_to_bf16(f), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
}

TEST(Numeric, Fp8E4m3) {
  EXPECT_EQ(fp8_e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x7e), 448.0f);
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0x7f)));
  EXPECT_EQ(fp8_e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
}

// E4M3 (bias 7, no infinity, NaN = S.1111.111, max 448, subnormals m/8 x 2^-6): hand-computed codes both ways.
TEST(Numeric, Fp8E4m3EncodeAndDecode) {
  EXPECT_EQ(fp8_e4m3_to_f32(0x3c), 1.5f);                    // 0.0111.100: 2^0 x 1.5
  EXPECT_EQ(fp8_e4m3_to_f32(0x44), 3.0f);                    // 0.1000.100: 2^1 x 1.5
  EXPECT_EQ(fp8_e4m3_to_f32(0x08), std::ldexp(1.0f, -6));    // the smallest normal
  EXPECT_EQ(fp8_e4m3_to_f32(0x07), 7 * std::ldexp(1.0f, -9)); // the largest subnormal
  EXPECT_EQ(fp8_e4m3_to_f32(0xc0), -2.0f);
  EXPECT_TRUE(std::signbit(fp8_e4m3_to_f32(0x80)));          // -0
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0xff)));
  EXPECT_EQ(fp8_e4m3_to_f32(0x78), 256.0f);                  // 0.1111.000 is a number (no infinity)
  EXPECT_EQ(f32_to_fp8_e4m3(1.0f), 0x38);
  EXPECT_EQ(f32_to_fp8_e4m3(-2.0f), 0xc0);
  EXPECT_EQ(f32_to_fp8_e4m3(448.0f), 0x7e);
  EXPECT_EQ(f32_to_fp8_e4m3(1e6f), 0x7e);                    // saturates: there is no infinity
  EXPECT_EQ(f32_to_fp8_e4m3(-1e6f), 0xfe);
  EXPECT_EQ(f32_to_fp8_e4m3(std::nanf("")), 0x7f);
  EXPECT_EQ(f32_to_fp8_e4m3(1.0625f), 0x38);                 // halfway 1 | 1.125: to the even mantissa (1)
  EXPECT_EQ(f32_to_fp8_e4m3(1.1875f), 0x3a);                 // halfway 1.125 | 1.25: to 1.25
  EXPECT_EQ(f32_to_fp8_e4m3(1.07f), 0x39);                   // nearer 1.125
  EXPECT_EQ(f32_to_fp8_e4m3(std::ldexp(1.0f, -10)), 0x00);   // half the smallest subnormal: to even (0)
  EXPECT_EQ(f32_to_fp8_e4m3(3 * std::ldexp(1.0f, -10)), 0x02);  // halfway 2^-9 | 2^-8: to 2^-8
  EXPECT_EQ(f32_to_fp8_e4m3(464.0f), 0x7e);                  // beyond 448 (the NaN code's neighbour) is 448
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7f) == 0x7f) continue;
    EXPECT_EQ(f32_to_fp8_e4m3(fp8_e4m3_to_f32(uint8_t(c))), c) << std::hex << c;  // every value round-trips
  }
}

TEST(AtomicFile, NothingUnderTheFinalNameUntilCommit) {
  auto dir = fs::temp_directory_path() / ("razor_atomic_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto final_path = (dir / "out.bin").string();
  {
    atomic_writer w;
    ASSERT_TRUE(w.open(final_path).ok());
    ASSERT_TRUE(w.write("abc", 3).ok());
    EXPECT_FALSE(fs::exists(final_path));
    // destroyed without commit: the temporary disappears too
  }
  EXPECT_FALSE(fs::exists(final_path));
  EXPECT_TRUE(fs::is_empty(dir));
  atomic_writer w;
  ASSERT_TRUE(w.open(final_path).ok());
  ASSERT_TRUE(w.write("abc", 3).ok());
  ASSERT_TRUE(w.commit().ok());
  EXPECT_EQ(fs::file_size(final_path), 3u);
  fs::remove_all(dir);
}

TEST(AtomicFile, DiskFullIsAClearError) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "/dev/full is missing";
  // /dev/full cannot host a temporary file, so write through a writer pointed at a directory we cannot use.
  atomic_writer w;
  auto st = w.open("/proc/razor-cannot-write-here");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("razor-cannot-write-here"), std::string::npos);
}

TEST(Parallel, CoversEveryIndexOnce) {
  std::vector<int> hit(10007, 0);
  parallel_for(hit.size(), [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) hit[i]++;
  }, 1, 4);
  for (int h : hit) EXPECT_EQ(h, 1);
}

// FIPS 180-4 example digests (NIST CSRC "SHA256.pdf") and one that crosses many blocks in odd-sized pieces.
TEST(Sha256, MatchesThePublishedExamples) {
  EXPECT_EQ(razor::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(razor::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(razor::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  razor::sha256 h;
  const std::string a(1000, 'a');
  for (int i = 0; i < 1000; ++i) h.update(a.data(), a.size());  // one million 'a'
  EXPECT_EQ(razor::sha256::hex(h.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  razor::sha256 odd;
  const std::string s(100000, 'a');
  for (size_t off = 0, step = 1; off < s.size(); off += step, step = step * 7 % 61 + 1)
    odd.update(s.data() + off, std::min(step, s.size() - off));
  EXPECT_EQ(razor::sha256::hex(odd.finish()), razor::sha256_hex(s));
}

TEST(FileTail, LastLinesOfALog) {
  const fs::path d = fs::temp_directory_path() / ("razor-tail-" + std::to_string(::getpid()));
  fs::create_directories(d);
  {
    std::ofstream f(d / "log");
    for (int i = 1; i <= 30; ++i) f << "line " << i << "\n";
  }
  EXPECT_EQ(file_tail((d / "log").string(), 3), "line 28\nline 29\nline 30");
  EXPECT_EQ(file_tail((d / "log").string(), 2, 20), "line 29\nline 30") << "the line cut at max_bytes is dropped";
  EXPECT_EQ(file_tail((d / "none").string(), 3), "");
  fs::remove_all(d);
}
