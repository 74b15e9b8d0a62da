// Runs a loop body over [0, n) on a few threads: for bulk work whose items are
// independent (parsing an import's lines, preparing a large write).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

#include "common/thread_name.h"

namespace openimds::common {

// Calls fn(i) for every i in [0, n), on up to `threads` threads (the calling
// one included), in chunks of `chunk` indexes taken in order. Below `min_n`
// items, or with threads <= 1, the calling thread does it all: starting a
// thread costs more than a few small items. fn must not throw.
template <typename Fn>
void ParallelFor(size_t n, unsigned threads, Fn&& fn, size_t min_n = 256, size_t chunk = 32) {
  if (threads <= 1 || n < min_n) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t begin; (begin = next.fetch_add(chunk, std::memory_order_relaxed)) < n;) {
      for (size_t i = begin; i < std::min(n, begin + chunk); ++i) fn(i);
    }
  };
  std::vector<std::thread> helpers;
  helpers.reserve(threads - 1);
  for (unsigned t = 1; t < threads; ++t) {
    helpers.emplace_back([&work] {
      NameCurrentThread("imds-parallel");
      work();
    });
  }
  work();
  for (auto& t : helpers) t.join();
}

}  // namespace openimds::common
