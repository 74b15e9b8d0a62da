// The cost of publishing one changed instance, by fleet size: the delta
// catalog (Catalog::Apply on persistent tries) against rebuilding every index
// from all entries (Snapshot::Build, what a publish cost before the delta
// catalog). Google Benchmark; run by hand:
//   build-bench/bench/catalog_bench --benchmark_filter=.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "model/instance.h"

namespace {

using namespace openimds;

std::shared_ptr<const model::Instance> Make(int i, int generation) {
  auto in = std::make_shared<model::Instance>();
  in->id = "i-" + std::to_string(100000000 + i);
  in->network = "tenant-" + std::to_string(i % 20);
  in->name = "gen-" + std::to_string(generation);
  model::Nic nic;
  char mac[18];
  std::snprintf(mac, sizeof(mac), "02:00:%02x:%02x:%02x:%02x", (i >> 24) & 0xff, (i >> 16) & 0xff,
                (i >> 8) & 0xff, i & 0xff);
  nic.mac = mac;
  nic.private_ipv4s.push_back("10." + std::to_string((i >> 16) & 0xff) + "." +
                              std::to_string((i >> 8) & 0xff) + "." + std::to_string(i & 0xff));
  in->nics.push_back(std::move(nic));
  return in;
}

std::vector<catalog::Entry> Fleet(int n) {
  std::vector<catalog::Entry> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out.push_back(catalog::Entry{Make(i, 0), i + 1});
  return out;
}

// One changed instance per iteration, published as a delta.
void BM_DeltaPublish(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  catalog::Catalog catalog;
  catalog.ReplaceAll(Fleet(n), n);
  int64_t revision = n;
  int i = 0;
  for (auto _ : state) {
    std::vector<catalog::Change> change;
    auto in = Make(i % n, static_cast<int>(revision));
    change.push_back(catalog::Change{in->id, std::move(in), ++revision});
    catalog.Apply(std::move(change), revision);
    ++i;
  }
  state.SetLabel("N=" + std::to_string(n));
}
BENCHMARK(BM_DeltaPublish)->Arg(10'000)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMicrosecond);

// The same publish as a full rebuild of every index (copying N entries).
void BM_FullRebuildPublish(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<catalog::Entry> entries = Fleet(n);
  int i = 0;
  for (auto _ : state) {
    std::vector<catalog::Entry> next = entries;
    next[static_cast<size_t>(i % n)].instance = Make(i % n, i + 1);
    benchmark::DoNotOptimize(catalog::Snapshot::Build(std::move(next), 1));
    ++i;
  }
  state.SetLabel("N=" + std::to_string(n));
}
BENCHMARK(BM_FullRebuildPublish)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond)->Iterations(5);

// Guest lookups stay flat: one address lookup at each fleet size.
void BM_LookupByAddress(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  catalog::Catalog catalog;
  catalog.ReplaceAll(Fleet(n), n);
  catalog::Catalog::Reader reader(catalog);
  // Instance 0 exists at every size.
  const auto address = *common::IpAddress::Parse("10.0.0.0");
  const std::string network = "tenant-0";
  for (auto _ : state) {
    benchmark::DoNotOptimize(reader.Get().FindByAddress(network, address));
  }
  state.SetLabel("N=" + std::to_string(n));
}
BENCHMARK(BM_LookupByAddress)->Arg(1)->Arg(10'000)->Arg(1'000'000);

}  // namespace

BENCHMARK_MAIN();
