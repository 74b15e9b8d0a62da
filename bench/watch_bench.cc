// Watches at scale: parks W watchers (default 10,000) on instances of a store
// holding N instances, as long-polls would (each watcher owns a small context,
// like a parked request's), then makes one change to each watched instance
// and measures how long until every watcher has fired. Prints VmRSS before
// and after parking, per watcher, and the wake-up time.
//
//   watch_bench [WATCHERS] [INSTANCES] [WATCHERS_PER_INSTANCE]
//
// A benchmark, not a test: it prints figures and asserts nothing but that all
// watchers fired.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "common/metrics.h"
#include "feed/follower.h"
#include "model/instance.h"
#include "store/sqlite_store.h"
#include "store/write_queue.h"

namespace {

using namespace openimds;
using Clock = std::chrono::steady_clock;

long VmRssKib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

model::Instance Make(int i, int generation) {
  model::Instance in;
  in.id = "i-" + std::to_string(i);
  in.network = "bench";
  in.name = "gen-" + std::to_string(generation);
  return in;
}

// What a parked long-poll would hold: the request's path and a few fields.
struct ParkedRequest {
  std::string path = "/computeMetadata/v1/instance/attributes/?wait_for_change=true";
  std::string etag = "0123456789abcdef";
  int64_t after = 0;
  std::atomic<int>* fired = nullptr;
};

}  // namespace

int main(int argc, char** argv) {
  const int watchers = argc > 1 ? std::atoi(argv[1]) : 10000;
  const int instances = argc > 2 ? std::atoi(argv[2]) : 10000;
  const int per_instance = argc > 3 ? std::atoi(argv[3]) : 1;
  if (watchers <= 0 || instances <= 0 || per_instance <= 0) {
    std::fprintf(stderr, "usage: watch_bench [WATCHERS] [INSTANCES] [WATCHERS_PER_INSTANCE]\n");
    return 2;
  }
  char pattern[] = "/tmp/openimds-watch-bench-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) return 1;
  const std::string dir = pattern;
  {
    store::SqliteStore::Options so;
    so.path = dir + "/store.db";
    so.synchronous = store::SqliteStore::Options::Synchronous::kNormal;
    auto st = store::SqliteStore::Open(so);
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.status().ToString().c_str());
      return 1;
    }
    store::Write seed;
    for (int i = 0; i < instances; ++i) {
      store::Mutation m;
      m.id = "i-" + std::to_string(i);
      m.mutate = [i](const store::StoredInstance*) -> common::Result<std::optional<model::Instance>> {
        return std::optional<model::Instance>(Make(i, 0));
      };
      seed.mutations.push_back(std::move(m));
    }
    std::vector<store::Write> writes;
    writes.push_back(std::move(seed));
    if (auto r = (*st)->Commit(writes); !r.ok() || !(*r)[0].status.ok()) {
      std::fprintf(stderr, "seeding failed\n");
      return 1;
    }
    catalog::Catalog catalog;
    common::MetricsRegistry metrics;
    feed::Follower follower({}, **st, catalog, metrics);
    if (!follower.Load().ok()) return 1;
    follower.Start();

    std::atomic<int> fired{0};
    const long rss_before = VmRssKib();
    const int watched = (watchers + per_instance - 1) / per_instance;
    if (watched > instances) {
      std::fprintf(stderr, "WATCHERS / WATCHERS_PER_INSTANCE must be <= INSTANCES\n");
      return 2;
    }
    const int64_t at = catalog.Current()->revision();
    for (int w = 0; w < watchers; ++w) {
      auto parked = std::make_shared<ParkedRequest>();
      parked->after = at;
      parked->fired = &fired;
      follower.Watch("i-" + std::to_string(w / per_instance), at,
                     [parked](int64_t) { parked->fired->fetch_add(1, std::memory_order_relaxed); });
    }
    const long rss_parked = VmRssKib();

    // One change to each watched instance, in one commit.
    store::Write change;
    for (int i = 0; i < watched; ++i) {
      store::Mutation m;
      m.id = "i-" + std::to_string(i);
      m.mutate = [i](const store::StoredInstance*) -> common::Result<std::optional<model::Instance>> {
        return std::optional<model::Instance>(Make(i, 1));
      };
      change.mutations.push_back(std::move(m));
    }
    std::vector<store::Write> changes;
    changes.push_back(std::move(change));
    const auto t0 = Clock::now();
    if (auto r = (*st)->Commit(changes); !r.ok() || !(*r)[0].status.ok()) return 1;
    const auto committed = Clock::now();
    while (fired.load() < watchers && Clock::now() - t0 < std::chrono::seconds(30)) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    const auto t1 = Clock::now();
    const double commit_ms = std::chrono::duration<double, std::milli>(committed - t0).count();
    const double wake_ms = std::chrono::duration<double, std::milli>(t1 - committed).count();
    std::printf("watchers %d on %d instances (%d per instance), store of %d instances\n", watchers,
                watched, per_instance, instances);
    std::printf("VmRSS before parking %ld KiB, after %ld KiB: %.1f MiB for %d watchers, %.0f B each\n",
                rss_before, rss_parked, (rss_parked - rss_before) / 1024.0, watchers,
                (rss_parked - rss_before) * 1024.0 / watchers);
    std::printf("commit of the %d changes %.1f ms; commit return -> all %d fired %.1f ms (fired %d)\n",
                watched, commit_ms, watchers, wake_ms, fired.load());
    follower.Stop();
    if (fired.load() != watchers) return 1;
  }
  std::filesystem::remove_all(dir);
  return 0;
}
