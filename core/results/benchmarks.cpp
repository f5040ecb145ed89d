#include "results/benchmarks.h"

#include <iterator>

namespace razor::results {
namespace {

constexpr benchmark_info kBenchmarks[] = {
#define X(key, name, acc_key, acc_key_alt, prefix, group, hib, n, fields) \
  {bench_id::key, #key, name, acc_key, acc_key_alt, prefix, group, hib, n, fields},
    RAZOR_BENCHMARKS(X)
#undef X
};

}  // namespace

std::span<const benchmark_info> benchmark_table() { return kBenchmarks; }

const benchmark_info* find_benchmark(std::string_view key) {
  for (const auto& b : kBenchmarks)
    if (b.key == key) return &b;
  return nullptr;
}

const benchmark_info& benchmark(bench_id id) { return kBenchmarks[size_t(id)]; }

std::string benchmark_name(std::string_view key) {
  const benchmark_info* b = find_benchmark(key);
  return b ? std::string(b->name) : std::string(key);
}

int benchmark_order(std::string_view key) {
  for (size_t i = 0; i < std::size(kBenchmarks); ++i)
    if (kBenchmarks[i].key == key) return int(i);
  return int(std::size(kBenchmarks));
}

}  // namespace razor::results
