#include "flavour/openstack/dynamic_vendordata.h"

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <charconv>
#include <map>
#include <mutex>
#include <utility>

#include "common/encoding.h"
#include "common/log.h"
#include "flavour/openstack/python_json.h"

namespace openimds::flavour::openstack {
namespace {

namespace json = boost::json;
using TimePoint = std::chrono::system_clock::time_point;
using std::chrono::milliseconds;

constexpr std::string_view kLog = "openstack-vendordata";

// The Deferred handed to parked requests: fired once when a fetch completes.
class Signal final : public common::Deferred {
 public:
  explicit Signal(milliseconds max_wait) : max_wait_(max_wait) {}

  void OnReady(std::function<void()> ready) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!ready_) {
        waiters_.push_back(std::move(ready));
        return;
      }
    }
    ready();
  }
  milliseconds MaxWait() const override { return max_wait_; }

  void Fire() {
    std::vector<std::function<void()>> waiters;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_ = true;
      waiters.swap(waiters_);
    }
    for (auto& w : waiters) w();
  }

 private:
  const milliseconds max_wait_;
  std::mutex mu_;
  bool ready_ = false;                          // guarded by mu_
  std::vector<std::function<void()>> waiters_;  // guarded by mu_
};

// Ready when every part is (a request that waits on several targets).
class AllOf final : public common::Deferred {
 public:
  AllOf(std::vector<std::shared_ptr<Signal>> parts, milliseconds max_wait)
      : parts_(std::move(parts)), max_wait_(max_wait) {}

  void OnReady(std::function<void()> ready) override {
    auto left = std::make_shared<std::atomic<size_t>>(parts_.size());
    auto shared = std::make_shared<std::function<void()>>(std::move(ready));
    for (const auto& p : parts_) {
      p->OnReady([left, shared] {
        if (left->fetch_sub(1) == 1) (*shared)();
      });
    }
  }
  milliseconds MaxWait() const override { return max_wait_; }

 private:
  const std::vector<std::shared_ptr<Signal>> parts_;
  const milliseconds max_wait_;
};

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// delta-seconds (RFC 9111 §1.2.2): digits only; values too large for the
// type saturate ("at least 2^31").
std::optional<std::chrono::seconds> DeltaSeconds(std::string_view v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  if (v.empty()) return std::nullopt;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  int64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec == std::errc::result_out_of_range || n > (int64_t{1} << 31)) n = int64_t{1} << 31;
  return std::chrono::seconds(n);
}

json::object TagsObject(const model::Instance& in) {
  json::object o;
  for (const auto& [k, v] : in.tags) o[k] = v;
  return o;
}

// Failures that say something about the target rather than one instance.
bool TripsBreaker(std::string_view reason) {
  return reason == "connect" || reason == "connect_timeout" || reason == "read_timeout" ||
         reason == "resolve" || reason == "protocol" || reason == "bad_url" || reason == "http_5xx";
}

const std::shared_ptr<const std::string>& EmptyObject() {
  static const auto kEmpty = std::make_shared<const std::string>("{}");
  return kEmpty;
}

}  // namespace

common::Result<VendordataTarget> ParseVendordataTarget(std::string_view spec) {
  const size_t at = spec.find('@');
  if (at == std::string_view::npos) {
    return common::InvalidArgument("vendordata target '" + std::string(spec) +
                                   "' lacks a name (expected NAME@URL)");
  }
  VendordataTarget t{std::string(spec.substr(0, at)), std::string(spec.substr(at + 1))};
  if (t.name.empty()) {
    return common::InvalidArgument("vendordata target '" + std::string(spec) +
                                   "' has an empty name");
  }
  if (t.url.empty()) {
    return common::InvalidArgument("vendordata target '" + std::string(spec) + "' has no URL");
  }
  return t;
}

std::string VendordataRequestBody(const model::Instance& in) {
  json::object body;
  body["project-id"] = in.account_id;
  body["instance-id"] = in.id;
  body["image-id"] = in.image_id;
  if (in.user_data) {
    body["user-data"] = common::Base64Encode(*in.user_data);
  } else {
    body["user-data"] = nullptr;
  }
  body["hostname"] = in.hostname.empty() ? in.local_hostname : in.hostname;
  body["metadata"] = TagsObject(in);
  body["boot-roles"] = "";
  std::string out;
  AppendPythonJson(body, out);
  return out;
}

CacheControl ParseCacheControl(std::string_view value) {
  CacheControl cc;
  std::optional<std::chrono::seconds> max_age, s_maxage;
  size_t i = 0;
  while (i <= value.size()) {
    // Split on commas outside quoted strings.
    size_t end = i;
    bool quoted = false;
    while (end < value.size() && (quoted || value[end] != ',')) {
      if (value[end] == '"') quoted = !quoted;
      ++end;
    }
    std::string_view item = Trim(value.substr(i, end - i));
    i = end + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    std::string_view name = Trim(item.substr(0, eq));
    std::string_view arg =
        eq == std::string_view::npos ? std::string_view() : Trim(item.substr(eq + 1));
    if (common::EqualsIgnoreCase(name, "no-store")) {
      cc.no_store = true;
    } else if (common::EqualsIgnoreCase(name, "no-cache")) {
      // With a field list (no-cache="Set-Cookie") it restricts only those
      // fields; the body is what we cache, so only the bare form counts.
      if (eq == std::string_view::npos) cc.no_cache = true;
    } else if (common::EqualsIgnoreCase(name, "max-age")) {
      if (!max_age) max_age = DeltaSeconds(arg);
    } else if (common::EqualsIgnoreCase(name, "s-maxage")) {
      if (!s_maxage) s_maxage = DeltaSeconds(arg);
    }
  }
  cc.max_age = s_maxage ? s_maxage : max_age;
  return cc;
}

// ---------------------------------------------------------------------------

struct DynamicVendorData::State : std::enable_shared_from_this<State> {
  // One (instance, target): the last result and the fetch in progress.
  struct Slot {
    size_t body_hash = 0;                     // of the request body the result answers
    std::shared_ptr<const std::string> json;  // null: no result yet
    std::string failure, detail;
    TimePoint fresh_until{};           // reuse without refetch until then
    TimePoint usable_until{};          // by resumed requests until then
    std::shared_ptr<Signal> inflight;  // non-null while a POST runs
    size_t inflight_hash = 0;
    bool inflight_prefetch = false;
  };
  struct Entry {
    std::vector<Slot> slots;  // one per target
  };
  struct Breaker {
    int consecutive_failures = 0;
    TimePoint open_until{};
    bool probing = false;  // the one half-open probe is running
    std::string last_reason;
  };
  struct TargetMetrics {
    common::Counter* hits;
    common::Counter* misses;
    common::Counter* fetches;
    std::map<std::string, common::Counter*, std::less<>> failures;
  };

  State(Options o, FetchFn f, const common::Clock& c, common::MetricsRegistry& m)
      : options(std::move(o)), fetch(std::move(f)), clock(c), metrics(m) {}

  // Constant after construction.
  Options options;
  const FetchFn fetch;
  const common::Clock& clock;
  common::MetricsRegistry& metrics;
  std::vector<TargetMetrics> target_metrics;
  common::Counter* deferred = nullptr;

  mutable std::mutex mu;
  std::map<std::string, Entry, std::less<>> entries;  // guarded by mu
  std::vector<Breaker> breakers;                      // guarded by mu
  size_t prefetches_in_flight = 0;                    // guarded by mu

  common::Counter& Failures(size_t target, std::string_view reason);
  void Fail(size_t target, std::string_view reason, std::string_view instance_id,
            std::string_view detail);
  // Requires mu. True when target `i` may be called now (claims the probe
  // slot when half-open).
  bool MayCall(size_t i, TimePoint now);
  void EvictLocked(TimePoint now);
  // A fetch to start once mu is released.
  struct Start {
    size_t target;
    std::shared_ptr<Signal> signal;
  };
  LookupResult LookupImpl(const model::Instance& instance, bool resumed, bool prefetch);
  void Complete(const std::string& instance_id, size_t target, size_t body_hash,
                const std::shared_ptr<Signal>& signal, bool prefetch, FetchResult result);
};

common::Counter& DynamicVendorData::State::Failures(size_t target, std::string_view reason) {
  auto& m = target_metrics[target].failures;
  auto it = m.find(reason);
  if (it != m.end()) return *it->second;
  // An unexpected label from the FetchFn: registered on first use (the
  // registry hands back the same counter for the same labels).
  return metrics.GetCounter(
      "openstack_vendordata_failures_total",
      "DynamicJSON vendordata failures, by target and reason.",
      "target=\"" + options.targets[target].name + "\",reason=\"" + std::string(reason) + "\"");
}

void DynamicVendorData::State::Fail(size_t target, std::string_view reason,
                                    std::string_view instance_id, std::string_view detail) {
  Failures(target, reason).Inc();
  // The target's name only: its URL may carry a credential in the query.
  common::LogRefusal(kLog, "target " + options.targets[target].name + " for instance " +
                               std::string(instance_id) + ": " + std::string(reason) +
                               (detail.empty() ? "" : ": " + std::string(detail)));
}

bool DynamicVendorData::State::MayCall(size_t i, TimePoint now) {
  Breaker& b = breakers[i];
  if (b.consecutive_failures == 0) return true;
  if (now < b.open_until || b.probing) return false;
  b.probing = true;
  return true;
}

void DynamicVendorData::State::EvictLocked(TimePoint now) {
  if (entries.size() <= options.max_entries) return;
  auto busy = [](const Entry& e) {
    return std::any_of(e.slots.begin(), e.slots.end(),
                       [](const Slot& s) { return s.inflight != nullptr; });
  };
  for (auto it = entries.begin(); it != entries.end();) {
    const bool usable =
        std::any_of(it->second.slots.begin(), it->second.slots.end(),
                    [now](const Slot& s) { return s.json && now < s.usable_until; });
    it = (!usable && !busy(it->second)) ? entries.erase(it) : std::next(it);
  }
  const size_t target = options.max_entries - options.max_entries / 10;
  for (auto it = entries.begin(); it != entries.end() && entries.size() > target;) {
    it = busy(it->second) ? std::next(it) : entries.erase(it);
  }
}

DynamicVendorData::LookupResult DynamicVendorData::State::LookupImpl(
    const model::Instance& instance, bool resumed, bool prefetch) {
  const size_t n = options.targets.size();
  LookupResult result;
  if (n == 0) return result;
  const std::string body = VendordataRequestBody(instance);
  const size_t hash = std::hash<std::string_view>()(body);
  const TimePoint now = clock.Now();

  std::vector<Start> starts;
  std::vector<std::shared_ptr<Signal>> waits;
  // Decided per target under the lock; counted and logged after it.
  enum class Outcome { kHit, kMiss, kCircuitOpen, kNotReady, kSkipped };
  std::vector<Outcome> outcomes(n, Outcome::kSkipped);
  std::vector<std::string> breaker_reasons(n);
  result.values.resize(n);
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = entries.find(instance.id);
    for (size_t i = 0; i < n; ++i) {
      TargetValue& v = result.values[i];
      v.name = options.targets[i].name;
      Slot* slot = it != entries.end() ? &it->second.slots[i] : nullptr;
      if (slot != nullptr && slot->json && slot->body_hash == hash &&
          (now < slot->fresh_until || (resumed && now < slot->usable_until))) {
        v.json = slot->json;
        v.failure = slot->failure;
        v.detail = slot->detail;
        outcomes[i] = prefetch ? Outcome::kSkipped : Outcome::kHit;
        continue;
      }
      if (resumed) {
        outcomes[i] = Outcome::kNotReady;
        continue;
      }
      if (slot != nullptr && slot->inflight && slot->inflight_hash == hash) {
        if (!prefetch) waits.push_back(slot->inflight);
        outcomes[i] = prefetch ? Outcome::kSkipped : Outcome::kMiss;
        continue;
      }
      if (prefetch && prefetches_in_flight >= options.max_prefetch_in_flight) continue;
      if (!MayCall(i, now)) {
        outcomes[i] = prefetch ? Outcome::kSkipped : Outcome::kCircuitOpen;
        breaker_reasons[i] = breakers[i].last_reason;
        continue;
      }
      if (slot == nullptr) {
        it = entries.try_emplace(instance.id).first;
        it->second.slots.resize(n);
        slot = &it->second.slots[i];
      }
      auto signal = std::make_shared<Signal>(options.max_wait);
      slot->inflight = signal;
      slot->inflight_hash = hash;
      slot->inflight_prefetch = prefetch;
      if (prefetch) ++prefetches_in_flight;
      starts.push_back(Start{i, signal});
      if (!prefetch) waits.push_back(signal);
      outcomes[i] = prefetch ? Outcome::kSkipped : Outcome::kMiss;
    }
    if (!starts.empty()) EvictLocked(now);
  }

  for (size_t i = 0; i < n; ++i) {
    TargetValue& v = result.values[i];
    switch (outcomes[i]) {
      case Outcome::kHit:
        target_metrics[i].hits->Inc();
        break;
      case Outcome::kMiss:
        target_metrics[i].misses->Inc();
        break;
      case Outcome::kCircuitOpen:
        v.json = EmptyObject();
        v.failure = "circuit_open";
        v.detail = "target failed recently (" + breaker_reasons[i] +
                   "); not called until its back-off ends";
        Fail(i, v.failure, instance.id, v.detail);
        break;
      case Outcome::kNotReady:
        v.json = EmptyObject();
        v.failure = "not_ready";
        v.detail = "no answer within " + std::to_string(options.max_wait.count()) + " ms";
        Fail(i, v.failure, instance.id, v.detail);
        break;
      case Outcome::kSkipped:
        break;
    }
  }
  for (const Start& s : starts) {
    target_metrics[s.target].fetches->Inc();
    std::weak_ptr<State> weak = weak_from_this();
    fetch(options.targets[s.target], body,
          [weak, id = instance.id, target = s.target, hash, signal = s.signal,
           prefetch](FetchResult r) {
            if (auto self = weak.lock()) {
              self->Complete(id, target, hash, signal, prefetch, std::move(r));
            } else {
              signal->Fire();  // let parked requests go; they will find nothing
            }
          });
  }
  if (!waits.empty()) {
    deferred->Inc();
    result.values.clear();
    result.pending = waits.size() == 1
                         ? std::shared_ptr<common::Deferred>(waits.front())
                         : std::make_shared<AllOf>(std::move(waits), options.max_wait);
  }
  return result;
}

void DynamicVendorData::State::Complete(const std::string& instance_id, size_t target,
                                        size_t body_hash, const std::shared_ptr<Signal>& signal,
                                        bool prefetch, FetchResult r) {
  // Classify as Nova would (vendordata_dynamic.py): any transport error,
  // HTTP error or JSON error is a failure whose value is {}; an empty 2xx
  // body is {} without error. Unlike Nova, a JSON value that is not an
  // object is a failure too (Nova would pass it through).
  std::string failure, detail;
  std::shared_ptr<const std::string> value;
  CacheControl cc;
  if (!r.error.empty()) {
    failure = r.error;
    detail = r.detail;
  } else if (r.status < 200 || r.status > 299) {
    failure = r.status >= 500 && r.status <= 599   ? "http_5xx"
              : r.status >= 400 && r.status <= 499 ? "http_4xx"
                                                   : "http_other";
    detail = "HTTP status " + std::to_string(r.status);
  } else if (r.body.empty()) {
    value = EmptyObject();
    cc = ParseCacheControl(r.cache_control);
  } else {
    boost::system::error_code ec;
    json::value v = json::parse(r.body, ec);
    if (ec) {
      failure = "not_json";
      detail = "response is not JSON: " + ec.message();
    } else if (!v.is_object()) {
      failure = "not_object";
      detail = "response is JSON but not an object";
    } else {
      std::string text;
      AppendPythonJson(v, text);
      value = std::make_shared<const std::string>(std::move(text));
      cc = ParseCacheControl(r.cache_control);
    }
  }

  const TimePoint now = clock.Now();
  TimePoint fresh_until = now;
  if (failure.empty()) {
    std::chrono::seconds ttl = options.default_ttl;
    if (cc.no_store || cc.no_cache) {
      ttl = std::chrono::seconds(0);
    } else if (cc.max_age) {
      ttl = *cc.max_age;
    }
    ttl = std::min(ttl, options.max_ttl);
    fresh_until = now + ttl;
  } else if (!TripsBreaker(failure) && failure != "overloaded") {
    fresh_until = now + options.failure_ttl;
  }
  bool opened = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (prefetch && prefetches_in_flight > 0) --prefetches_in_flight;
    Breaker& b = breakers[target];
    if (!failure.empty() && TripsBreaker(failure)) {
      b.consecutive_failures = std::min(b.consecutive_failures + 1, 30);
      auto backoff =
          options.backoff_initial * (int64_t{1} << std::min(b.consecutive_failures - 1, 20));
      backoff = std::min(backoff, options.backoff_max);
      b.open_until = now + backoff;
      b.last_reason = failure;
      opened = true;
    } else if (failure != "overloaded") {
      b.consecutive_failures = 0;
    }
    b.probing = false;
    auto it = entries.find(instance_id);
    if (it != entries.end()) {
      Slot& s = it->second.slots[target];
      if (s.inflight == signal) {
        s.inflight.reset();
        s.body_hash = body_hash;
        s.json = value ? value : EmptyObject();
        s.failure = failure;
        s.detail = detail;
        s.fresh_until = fresh_until;
        s.usable_until = fresh_until + options.grace;
      }
    }
  }
  if (!failure.empty()) {
    Fail(target, failure, instance_id, detail + (opened ? "; target back-off started" : ""));
  }
  signal->Fire();
}

// ---------------------------------------------------------------------------

DynamicVendorData::DynamicVendorData(Options options, FetchFn fetch, const common::Clock& clock,
                                     common::MetricsRegistry& metrics) {
  // Nova's rule: the first target with a name wins, later ones are skipped.
  std::vector<VendordataTarget> unique;
  for (auto& t : options.targets) {
    if (std::any_of(unique.begin(), unique.end(),
                    [&](const VendordataTarget& u) { return u.name == t.name; })) {
      common::LogWarn(kLog, "vendordata already contains an entry named " + t.name +
                                "; skipping the later target of that name");
      continue;
    }
    unique.push_back(std::move(t));
  }
  options.targets = std::move(unique);
  options.grace = std::max(options.grace, options.max_wait);
  if (options.max_entries == 0) options.max_entries = 1;
  state_ = std::make_shared<State>(std::move(options), std::move(fetch), clock, metrics);
  State& s = *state_;
  s.breakers.resize(s.options.targets.size());
  s.deferred = &metrics.GetCounter("openstack_vendordata_deferred_total",
                                   "vendor_data2.json renders parked until a fetch completed.");
  for (const auto& t : s.options.targets) {
    const std::string label = "target=\"" + t.name + "\"";
    State::TargetMetrics m;
    m.hits = &metrics.GetCounter("openstack_vendordata_cache_hits_total",
                                 "DynamicJSON vendordata values served from the cache.", label);
    m.misses = &metrics.GetCounter("openstack_vendordata_cache_misses_total",
                                   "DynamicJSON vendordata lookups that needed a fetch.", label);
    m.fetches = &metrics.GetCounter("openstack_vendordata_fetches_total",
                                    "DynamicJSON vendordata POSTs started.", label);
    // Pre-registered so dashboards see zeros; other labels register on use.
    for (const char* reason :
         {"connect", "connect_timeout", "read_timeout", "too_large", "http_4xx", "http_5xx",
          "not_json", "not_object", "circuit_open", "not_ready"}) {
      m.failures[reason] =
          &metrics.GetCounter("openstack_vendordata_failures_total",
                              "DynamicJSON vendordata failures, by target and reason.",
                              label + ",reason=\"" + reason + "\"");
    }
    s.target_metrics.push_back(std::move(m));
  }
}

DynamicVendorData::~DynamicVendorData() = default;

const std::vector<VendordataTarget>& DynamicVendorData::targets() const {
  return state_->options.targets;
}

std::chrono::milliseconds DynamicVendorData::max_wait() const { return state_->options.max_wait; }

DynamicVendorData::LookupResult DynamicVendorData::Lookup(const model::Instance& instance,
                                                          bool resumed) {
  return state_->LookupImpl(instance, resumed, /*prefetch=*/false);
}

void DynamicVendorData::Prefetch(const model::Instance& instance) {
  (void)state_->LookupImpl(instance, /*resumed=*/false, /*prefetch=*/true);
}

void DynamicVendorData::Forget(std::string_view instance_id) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->entries.find(instance_id);
  if (it != state_->entries.end()) state_->entries.erase(it);
}

size_t DynamicVendorData::CachedInstances() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->entries.size();
}

}  // namespace openimds::flavour::openstack
