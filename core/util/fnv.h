// FNV-1a 64: a fast, stable fingerprint (not cryptographic; util/sha256.h is) of names, plans and paths.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace razor {

class fnv1a64 {
 public:
  void add(std::string_view s) {
    for (unsigned char c : s) h_ = (h_ ^ c) * kPrime;
  }
  // A field: its bytes, then a separator byte, so that ("ab", "c") and ("a", "bc") differ.
  void field(std::string_view s) {
    add(s);
    h_ = (h_ ^ 0xff) * kPrime;
  }
  uint64_t value() const { return h_; }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
    return buf;
  }

 private:
  static constexpr uint64_t kPrime = 1099511628211ull;
  uint64_t h_ = 1469598103934665603ull;
};

}  // namespace razor
