// SHA-256 (FIPS 180-4), for content-addressed caches of files fetched from a remote worker (docs/remote.md).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace razor {

class sha256 {
 public:
  sha256();
  void update(const void* data, size_t n);
  std::array<uint8_t, 32> finish();  // the object is spent afterwards
  static std::string hex(const std::array<uint8_t, 32>& digest);

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t used_ = 0;
  uint64_t bytes_ = 0;
};

// The lowercase hex digest of `data` / of a file's bytes (read in 1 MiB chunks).
std::string sha256_hex(std::string_view data);
result<std::string> sha256_file(const std::string& path, uint64_t* bytes = nullptr);

}  // namespace razor
