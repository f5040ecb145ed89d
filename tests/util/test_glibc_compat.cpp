// librazor-glibc-compat.so (packaging/glibc_compat.c): the portable bundle's _dl_find_object and arc4random for
// glibc 2.34, checked against this machine's glibc (2.35+), which has both.
#include <gtest/gtest.h>

#include <dlfcn.h>

#include <cstdint>
#include <exception>
#include <set>

#if defined(RAZOR_GLIBC_COMPAT_LIB) && __GLIBC_PREREQ(2, 35)

namespace {

using find_fn = int (*)(void*, dl_find_object*);
using random_fn = uint32_t (*)();

struct compat_lib {
  void* handle = dlopen(RAZOR_GLIBC_COMPAT_LIB, RTLD_NOW | RTLD_LOCAL);
  ~compat_lib() {
    if (handle) dlclose(handle);
  }
  // dlsym on the handle finds the library's own definitions before glibc's.
  template <class F>
  F get(const char* name) const {
    return reinterpret_cast<F>(dlsym(handle, name));
  }
};

int local_function() { return 7; }

void expect_same(find_fn compat, void* pc, const char* what) {
  dl_find_object want{}, got{};
  const int rw = _dl_find_object(pc, &want);
  const int rg = compat(pc, &got);
  ASSERT_EQ(rg, rw) << what;
  if (rw != 0) return;
  EXPECT_EQ(got.dlfo_map_start, want.dlfo_map_start) << what;
  EXPECT_EQ(got.dlfo_map_end, want.dlfo_map_end) << what;
  EXPECT_EQ(got.dlfo_eh_frame, want.dlfo_eh_frame) << what;
  EXPECT_EQ(got.dlfo_link_map, want.dlfo_link_map) << what;
  EXPECT_EQ(got.dlfo_flags, want.dlfo_flags) << what;
}

}  // namespace

TEST(GlibcCompat, FindObjectMatchesGlibc) {
  compat_lib lib;
  ASSERT_NE(lib.handle, nullptr) << dlerror();
  auto compat = lib.get<find_fn>("_dl_find_object");
  ASSERT_NE(compat, nullptr);
  ASSERT_NE(reinterpret_cast<void*>(compat), reinterpret_cast<void*>(&_dl_find_object));
  expect_same(compat, reinterpret_cast<void*>(&local_function), "the test executable");
  expect_same(compat, reinterpret_cast<void*>(&dlopen), "libc");
  expect_same(compat, reinterpret_cast<void*>(&std::terminate), "libstdc++");
  expect_same(compat, reinterpret_cast<void*>(compat), "the compat library itself");
  int on_stack = 0;
  expect_same(compat, &on_stack, "the stack (no object)");
  expect_same(compat, nullptr, "null (no object)");
}

TEST(GlibcCompat, Arc4randomDrawsFromTheKernel) {
  compat_lib lib;
  ASSERT_NE(lib.handle, nullptr) << dlerror();
  auto compat = lib.get<random_fn>("arc4random");
  ASSERT_NE(compat, nullptr);
  ASSERT_NE(reinterpret_cast<void*>(compat), reinterpret_cast<void*>(&arc4random));
  // 64 draws of 32 random bits: a repeat has probability below 2^-20, a constant function fails for sure.
  std::set<uint32_t> seen;
  for (int i = 0; i < 64; ++i) seen.insert(compat());
  EXPECT_GT(seen.size(), 60u);
}

#endif
