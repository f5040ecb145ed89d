#include "util/parallel.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>
#include <vector>

namespace razor {

int default_threads() {
  if (const char* e = std::getenv("RAZOR_THREADS")) {
    int v = std::atoi(e);
    if (v > 0) return v;
  }
  unsigned h = std::thread::hardware_concurrency();
  return h ? int(h) : 1;
}

void parallel_for(size_t n, const std::function<void(size_t, size_t)>& body, size_t grain, int threads) {
  if (n == 0) return;
  if (threads <= 0) threads = default_threads();
  grain = std::max<size_t>(grain, 1);
  size_t max_chunks = (n + grain - 1) / grain;
  size_t nt = std::min<size_t>(size_t(threads), max_chunks);
  if (nt <= 1) {
    body(0, n);
    return;
  }
  // Dynamic scheduling over chunks of ~n/(4*nt) so uneven work balances.
  size_t chunk = std::max(grain, n / (nt * 4));
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (;;) {
      size_t b = next.fetch_add(chunk);
      if (b >= n) break;
      body(b, std::min(n, b + chunk));
    }
  };
  std::vector<std::jthread> pool;
  pool.reserve(nt - 1);
  for (size_t i = 1; i < nt; ++i) pool.emplace_back(worker);
  worker();
}

}  // namespace razor
