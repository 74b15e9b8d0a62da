#include "common/metrics.h"

#include <cstdio>
#include <functional>
#include <map>
#include <thread>

namespace openimds::common {
namespace {

size_t ShardIndex() {
  // One hash per thread, computed once.
  thread_local const size_t idx = std::hash<std::thread::id>()(std::this_thread::get_id());
  return idx;
}

}  // namespace

void Counter::Inc(uint64_t n) {
  shards_[ShardIndex() % kShards].v.fetch_add(n, std::memory_order_relaxed);
}

uint64_t Counter::Value() const {
  uint64_t sum = 0;
  for (const auto& s : shards_) sum += s.v.load(std::memory_order_relaxed);
  return sum;
}

Counter& MetricsRegistry::GetCounter(std::string_view name, std::string_view help,
                                     std::string_view labels) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& e : counters_) {
    if (e.name == name && e.labels == labels) return e.counter;
  }
  auto& e = counters_.emplace_back();
  e.name = name;
  e.help = help;
  e.labels = labels;
  return e.counter;
}

void MetricsRegistry::AddGauge(std::string_view name, std::string_view help,
                               std::function<double()> read) {
  std::lock_guard<std::mutex> lock(mu_);
  gauges_.push_back(GaugeEntry{std::string(name), std::string(help), std::move(read)});
}

void MetricsRegistry::AddCounterFamily(std::string_view name, std::string_view help,
                                       std::function<Series()> read) {
  std::lock_guard<std::mutex> lock(mu_);
  families_.push_back(FamilyEntry{std::string(name), std::string(help), std::move(read)});
}

uint64_t MetricsRegistry::CounterValue(std::string_view name, std::string_view labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& e : counters_) {
    if (e.name == name && e.labels == labels) return e.counter.Value();
  }
  return 0;
}

std::string MetricsRegistry::RenderPrometheus() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, std::vector<const CounterEntry*>> by_name;
  for (const auto& e : counters_) by_name[e.name].push_back(&e);
  std::string out;
  for (const auto& [name, entries] : by_name) {
    out += "# HELP " + name + " " + entries.front()->help + "\n";
    out += "# TYPE " + name + " counter\n";
    for (const auto* e : entries) {
      out += name;
      if (!e->labels.empty()) out += "{" + e->labels + "}";
      out += " " + std::to_string(e->counter.Value()) + "\n";
    }
  }
  for (const auto& f : families_) {
    out += "# HELP " + f.name + " " + f.help + "\n";
    out += "# TYPE " + f.name + " counter\n";
    for (const auto& [labels, value] : f.read()) {
      out += f.name;
      if (!labels.empty()) out += "{" + labels + "}";
      out += " " + std::to_string(value) + "\n";
    }
  }
  for (const auto& g : gauges_) {
    out += "# HELP " + g.name + " " + g.help + "\n";
    out += "# TYPE " + g.name + " gauge\n";
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.17g", g.read());
    out += g.name + " " + buf + "\n";
  }
  return out;
}

}  // namespace openimds::common
