#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/http_message.h"
#include "common/metrics.h"
#include "common/result.h"
#include "model/instance.h"

namespace openimds::flavour::openstack {

// Nova's DynamicJSON vendordata provider (openstack.md §1.8, §8.1 item 6;
// nova/api/metadata/vendordata_dynamic.py), minus Nova's "POST on every
// request": results are cached per (instance, request body, target) as the
// target's Cache-Control allows, each target has a circuit breaker, and a
// cold miss never blocks the caller (it gets a common::Deferred instead).
// Pure logic: the network is an injected FetchFn (app/ wires
// http::HttpClient), time an injected common::Clock.

// One target, Nova's [api]vendordata_dynamic_targets entry "name@url".
struct VendordataTarget {
  std::string name;  // the key in vendor_data2.json
  std::string url;
};

// Nova's parse: the name is everything before the first '@', the URL the
// rest (which may contain '@'). InvalidArgument without '@' (Nova skips such
// entries with a warning; we refuse the configuration) or with an empty name
// or URL.
common::Result<VendordataTarget> ParseVendordataTarget(std::string_view spec);

// The body Nova POSTs for `instance`, serialised as Python's json.dumps does
// (jsonutils.dumps), members in Nova's order:
//   project-id   account_id
//   instance-id  id
//   image-id     image_id (Nova's instance.image_ref)
//   user-data    base64 of user_data (Nova stores and sends the base64 text),
//                null when the instance has none
//   hostname     hostname, else local_hostname (Nova's instance.hostname,
//                without [api]dhcp_domain)
//   metadata     tags (Nova's instance.metadata, as in meta_data.json "meta")
//   boot-roles   "" (Nova: the booting user's Keystone roles, comma-joined;
//                the model has no such field)
std::string VendordataRequestBody(const model::Instance& instance);

// The parts of a Cache-Control response header (RFC 9111 §5.2.2) a cache of
// these responses needs. Directive names are case-insensitive; unknown
// directives and malformed values are ignored (a malformed max-age is
// treated as absent). s-maxage, when present, replaces max-age: this is a
// cache shared by many requests.
struct CacheControl {
  bool no_store = false;
  bool no_cache = false;  // reuse needs revalidation: we refetch instead
  std::optional<std::chrono::seconds> max_age;
};
CacheControl ParseCacheControl(std::string_view value);

// What one POST to a target produced, as the FetchFn reports it.
struct FetchResult {
  // Empty when an HTTP response arrived (any status). Otherwise a short
  // reason used as a metric label ("connect", "connect_timeout",
  // "read_timeout", "resolve", "too_large", "protocol", "overloaded", ...).
  std::string error;
  std::string detail;  // human-readable, for the log line
  int status = 0;
  std::string body;
  std::string cache_control;  // the Cache-Control header, "" when absent
};

// Starts a POST of `body` to `target` with Nova's headers and calls `done`
// exactly once with the outcome, on any thread (possibly inside this call).
// Must not block.
using FetchFn = std::function<void(const VendordataTarget& target, const std::string& body,
                                   std::function<void(FetchResult)> done)>;

// The cache, breakers and request policy. Thread-safe: Lookup and Prefetch
// run concurrently on I/O threads; completions arrive on the FetchFn's
// thread. One mutex guards the cache; it is held only for map operations,
// never across a fetch or a callback. Completions that arrive after
// destruction are ignored.
//
// Counters (all labelled target="<name>"):
//   openstack_vendordata_cache_hits_total     answered from the cache
//   openstack_vendordata_cache_misses_total   needed a fetch (started or joined)
//   openstack_vendordata_fetches_total        POSTs started (lookups and prefetches)
//   openstack_vendordata_failures_total{reason}  a failed POST (the FetchResult
//       error, "http_4xx", "http_5xx", "http_other", "not_json", "not_object"),
//       or a lookup answered as failed without one: "circuit_open" (breaker)
//       and "not_ready" (a resumed request whose fetch has not finished)
// plus openstack_vendordata_deferred_total: lookups that returned a Deferred.
// Each failure also logs one rate-limited line (common::LogRefusal).
class DynamicVendorData {
 public:
  struct Options {
    // In order. A later target with an already used name is skipped with a
    // warning, as Nova does.
    std::vector<VendordataTarget> targets;
    // Freshness of a 2xx response without max-age, no-store or no-cache.
    // Nova has no cache at all (0 here); one minute absorbs the repeated
    // fetches of one boot without serving stale data for long.
    std::chrono::seconds default_ttl{60};
    // Upper bound on any max-age a target sends.
    std::chrono::seconds max_ttl{3600};
    // How long a parked request may wait for its fetches (Deferred::MaxWait):
    // app sets connect + read timeout + 1 s.
    std::chrono::milliseconds max_wait{11'000};
    // A fetched result stays usable for the requests that were parked on it
    // for this long past its freshness (so no-store and max-age=0 answers
    // still reach the request that asked). Raised to max_wait if smaller.
    std::chrono::milliseconds grace{12'000};
    // Circuit breaker: after a failure that says the target is unwell
    // (connect, timeouts, resolve, protocol, 5xx), no POSTs to that target
    // for `backoff_initial`, doubling per consecutive failure up to
    // `backoff_max`; then one probe at a time until a call succeeds.
    // Lookups meanwhile get the failure at once ("circuit_open").
    std::chrono::milliseconds backoff_initial{2'000};
    std::chrono::milliseconds backoff_max{60'000};
    // Failures that concern one instance only (4xx, too_large, not_json,
    // not_object) are cached for that instance this long; they do not trip
    // the breaker.
    std::chrono::milliseconds failure_ttl{5'000};
    // Cache size in instances; beyond it, unusable entries are swept and
    // then the others dropped (in id order) down to 90%.
    size_t max_entries = 100'000;
    // Prefetches running at once; more are skipped (the first guest request
    // fetches instead), so a bulk import does not flood the targets.
    size_t max_prefetch_in_flight = 16;
  };

  // One target's part of vendor_data2.json.
  struct TargetValue {
    std::string_view name;  // valid while this object lives
    // Compact Python-style JSON object; "{}" on failure.
    std::shared_ptr<const std::string> json;
    // Empty on success, else the failure reason (a metric label) and detail.
    std::string failure;
    std::string detail;
  };
  struct LookupResult {
    // Non-null: at least one value is being fetched; `values` is empty.
    // Ask again (Request::resumed) once it is ready.
    std::shared_ptr<common::Deferred> pending;
    std::vector<TargetValue> values;  // target order
  };

  // `clock` and `metrics` are borrowed and must outlive this object and the
  // last fetch callback.
  DynamicVendorData(Options options, FetchFn fetch, const common::Clock& clock,
                    common::MetricsRegistry& metrics);
  ~DynamicVendorData();
  DynamicVendorData(const DynamicVendorData&) = delete;
  DynamicVendorData& operator=(const DynamicVendorData&) = delete;

  // The targets in use (duplicates removed).
  const std::vector<VendordataTarget>& targets() const;
  std::chrono::milliseconds max_wait() const;

  // Every target's value for `instance`. Fresh cached values are used as
  // they are; for the others a POST is started (or joined, if one for the
  // same body is running) and `pending` is returned. With `resumed` (the
  // second call for one request) nothing new is started or awaited: values
  // fetched meanwhile are used even if already stale, the rest fail with
  // "not_ready".
  LookupResult Lookup(const model::Instance& instance, bool resumed);

  // Starts the POSTs a Lookup would start, without waiting (an instance was
  // created or changed). Skipped when max_prefetch_in_flight are running.
  void Prefetch(const model::Instance& instance);

  // Drops the cached values of an instance (deleted).
  void Forget(std::string_view instance_id);

  // Cached instances (for tests and diagnostics).
  size_t CachedInstances() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace openimds::flavour::openstack
