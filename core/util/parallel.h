// Parallel loops on std::jthread. parallel_for splits [0, n) into contiguous chunks over the worker
// threads (default: hardware concurrency, or RAZOR_THREADS). The body must be thread-safe.
#pragma once
#include <cstddef>
#include <functional>

namespace razor {

int default_threads();
// Calls body(begin, end) on disjoint ranges covering [0, n); grain is the smallest range handed out.
void parallel_for(size_t n, const std::function<void(size_t, size_t)>& body, size_t grain = 1, int threads = 0);

// Long operations take a progress callback that returns false to cancel (house style 7).
// done/total are in the operation's own units (bytes, tensors, tokens).
using progress_fn = std::function<bool(double done, double total, const char* what)>;

}  // namespace razor
