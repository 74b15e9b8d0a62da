// What service::InstanceLimiter adds to each guest request (Google
// Benchmark): Admit and the release of its in-flight slot under serve's
// default limits, for one instance, for instances spread over a big table
// (cache misses), from several threads at once on one instance (its shard's
// mutex contended) and on different instances, and a refusal. The real
// clock, as serve uses it. Compare with a guest request's whole server CPU
// cost (bench/imds_vs_nginx.sh, req/cpu-s).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "service/instance_limiter.h"

namespace {

using openimds::service::InstanceLimiter;
using openimds::service::Limits;

struct Fixture {
  Fixture() { openimds::common::SetLogLevel(openimds::common::LogLevel::kError); }
  openimds::common::SystemClock clock;
  openimds::common::MetricsRegistry metrics;
  InstanceLimiter limiter{InstanceLimiter::Options{}, clock, metrics};
  // serve's defaults, except a rate no benchmark loop reaches.
  Limits limits{.requests_per_second = 1'000'000, .burst = 1'000'000, .max_in_flight = 64};
};

std::vector<std::string> Ids(size_t n) {
  std::vector<std::string> ids;
  ids.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "i-%017zx", i);
    ids.emplace_back(buf);
  }
  return ids;
}

void BM_ClockNow(benchmark::State& state) {
  openimds::common::SystemClock clock;
  const openimds::common::Clock& c = clock;
  for (auto _ : state) benchmark::DoNotOptimize(c.Now());
}
BENCHMARK(BM_ClockNow);

void BM_AdmitOneInstance(benchmark::State& state) {
  static Fixture* f = nullptr;
  if (state.thread_index() == 0) f = new Fixture();
  const std::string id = "i-0123456789abcdef0";
  for (auto _ : state) {
    auto d = f->limiter.Admit(id, f->limits);
    benchmark::DoNotOptimize(d.admitted);
  }  // each Decision's slot is given back here, as at the end of a request
  if (state.thread_index() == 0) {
    delete f;
    f = nullptr;
  }
}
BENCHMARK(BM_AdmitOneInstance)->Threads(1)->Threads(2)->UseRealTime();

void BM_AdmitOwnInstancePerThread(benchmark::State& state) {
  static Fixture* f = nullptr;
  if (state.thread_index() == 0) f = new Fixture();
  const std::string id = "i-thread-" + std::to_string(state.thread_index());
  for (auto _ : state) {
    auto d = f->limiter.Admit(id, f->limits);
    benchmark::DoNotOptimize(d.admitted);
  }
  if (state.thread_index() == 0) {
    delete f;
    f = nullptr;
  }
}
BENCHMARK(BM_AdmitOwnInstancePerThread)->Threads(2)->UseRealTime();

void BM_AdmitManyInstances(benchmark::State& state) {
  Fixture f;
  // A slow rate with a bucket no loop empties: every entry stays in debt,
  // so none is swept and the table holds all of them.
  const Limits limits{.requests_per_second = 1, .burst = 1'000'000, .max_in_flight = 64};
  const auto ids = Ids(static_cast<size_t>(state.range(0)));
  size_t i = 0;
  for (auto _ : state) {
    auto d = f.limiter.Admit(ids[i], limits);
    benchmark::DoNotOptimize(d.admitted);
    if (++i == ids.size()) i = 0;
  }
  state.counters["tracked"] = static_cast<double>(f.limiter.tracked());
}
BENCHMARK(BM_AdmitManyInstances)->Arg(1'000)->Arg(100'000);

void BM_Refused(benchmark::State& state) {
  Fixture f;
  const Limits tight{.requests_per_second = 1, .burst = 1, .max_in_flight = 64};
  (void)f.limiter.Admit("i-noisy", tight);
  for (auto _ : state) {
    auto d = f.limiter.Admit("i-noisy", tight);
    benchmark::DoNotOptimize(d.admitted);
  }
}
BENCHMARK(BM_Refused);

}  // namespace

BENCHMARK_MAIN();
