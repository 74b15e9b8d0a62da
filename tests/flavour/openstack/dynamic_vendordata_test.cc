// DynamicJSON vendordata logic: Nova's body and target syntax,
// Cache-Control, the cache and the circuit breaker, with a fake clock and a
// fake fetch function whose calls the test completes by hand; and the
// flavour's vendor_data2.json over it (deferral, collisions, failure-fatal).
#include "flavour/openstack/dynamic_vendordata.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "common/time_format.h"
#include "flavour/openstack/openstack_flavour.h"
#include "model/instance_json.h"
#include "support/testdata.h"

namespace openimds::flavour::openstack {
namespace {

using namespace std::chrono_literals;

using testdata::ReadFile;

model::Instance Fixture() {
  auto in = model::FromJsonText(
      ReadFile(std::string(OPENIMDS_TESTDATA_DIR) + "/openstack/instance.json"));
  EXPECT_TRUE(in.ok()) << in.status().ToString();
  return *in;
}

model::Instance Small(std::string id) {
  model::Instance in;
  in.id = std::move(id);
  in.network = "default";
  in.account_id = "proj";
  in.image_id = "img";
  in.hostname = "h-" + in.id;
  return in;
}

// ---------------------------------------------------------------------------
// Nova's target syntax and request body

TEST(VendordataTargetTest, NovaSyntax) {
  auto t = ParseVendordataTarget("testing@http://127.0.0.1:125/vd");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->name, "testing");
  EXPECT_EQ(t->url, "http://127.0.0.1:125/vd");
  // Nova: name = first token, url = '@'.join(the rest).
  t = ParseVendordataTarget("a@http://u@h/x@y");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->name, "a");
  EXPECT_EQ(t->url, "http://u@h/x@y");
  EXPECT_FALSE(ParseVendordataTarget("http://no-name/").ok());
  EXPECT_FALSE(ParseVendordataTarget("@http://empty-name/").ok());
  EXPECT_FALSE(ParseVendordataTarget("name@").ok());
}

TEST(VendordataBodyTest, NovasMembersInNovasOrder) {
  // What vendordata_dynamic.py json.dumps()es for this instance; user-data
  // is the base64 text Nova keeps in instance.user_data.
  EXPECT_EQ(VendordataRequestBody(Fixture()),
            R"({"project-id": "f3a9c0d2b1e84d6c9a7b5e4d3c2b1a09", )"
            R"("instance-id": "6f4c1c1e-3c5e-4a7b-9a55-0d8f1b2c3d4e", )"
            R"("image-id": "ami-00000001", )"
            R"("user-data": "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogd2ViLTEK", )"
            R"("hostname": "web-1", "metadata": {"dsmode": "net", "role": "web"}, )"
            R"("boot-roles": ""})");
}

TEST(VendordataBodyTest, NoUserDataIsNullAndHostnameFallsBack) {
  model::Instance in = Small("i-1");
  in.hostname.clear();
  in.local_hostname = "local-1";
  in.tags["k\u00e9y"] = "v\"q";
  EXPECT_EQ(VendordataRequestBody(in),
            R"({"project-id": "proj", "instance-id": "i-1", "image-id": "img", )"
            R"("user-data": null, "hostname": "local-1", "metadata": {"k\u00e9y": "v\"q"}, )"
            R"("boot-roles": ""})");
}

// ---------------------------------------------------------------------------
// Cache-Control

TEST(CacheControlTest, Table) {
  struct Case {
    std::string header;
    bool no_store, no_cache;
    std::optional<int64_t> max_age;
  };
  const std::vector<Case> cases = {
      {"", false, false, std::nullopt},
      {"max-age=60", false, false, 60},
      {"public, max-age=30", false, false, 30},
      {"MAX-AGE=7", false, false, 7},
      {"max-age=\"5\"", false, false, 5},
      {"max-age = 9", false, false, 9},
      {"max-age=0", false, false, 0},
      {"max-age=abc", false, false, std::nullopt},
      {"max-age=-1", false, false, std::nullopt},
      {"max-age=", false, false, std::nullopt},
      {"max-age=99999999999999999999", false, false, int64_t{1} << 31},
      {"max-age=10, s-maxage=100", false, false, 100},
      {"s-maxage=100, max-age=10", false, false, 100},
      {"max-age=10, max-age=20", false, false, 10},  // the first one counts
      {"no-store", true, false, std::nullopt},
      {"No-Store, max-age=60", true, false, 60},
      {"no-cache", false, true, std::nullopt},
      {"no-cache=\"Set-Cookie, X-Y\", max-age=60", false, false, 60},  // field-scoped
      {"private, must-revalidate, max-age=15", false, false, 15},
      {",,max-age=3,,", false, false, 3},
  };
  for (const auto& c : cases) {
    CacheControl cc = ParseCacheControl(c.header);
    EXPECT_EQ(cc.no_store, c.no_store) << c.header;
    EXPECT_EQ(cc.no_cache, c.no_cache) << c.header;
    ASSERT_EQ(cc.max_age.has_value(), c.max_age.has_value()) << c.header;
    if (c.max_age) {
      EXPECT_EQ(cc.max_age->count(), *c.max_age) << c.header;
    }
  }
}

// ---------------------------------------------------------------------------
// Cache and breaker

// Records every fetch; the test completes them (or sets `inline_result` to
// complete inside the call, as a fast FetchFn may).
struct FakeFetch {
  struct Call {
    std::string target, url, body;
    std::function<void(FetchResult)> done;
  };
  std::vector<Call> calls;
  std::optional<FetchResult> inline_result;

  FetchFn Fn() {
    return [this](const VendordataTarget& t, const std::string& body,
                  std::function<void(FetchResult)> done) {
      if (inline_result) {
        calls.push_back({t.name, t.url, body, nullptr});
        done(*inline_result);
        return;
      }
      calls.push_back({t.name, t.url, body, std::move(done)});
    };
  }
  void Complete(size_t i, FetchResult r) {
    ASSERT_LT(i, calls.size());
    ASSERT_TRUE(calls[i].done) << "call " << i << " already completed";
    auto done = std::move(calls[i].done);
    calls[i].done = nullptr;
    done(std::move(r));
  }
};

FetchResult Ok(std::string body, std::string cache_control = "") {
  FetchResult r;
  r.status = 200;
  r.body = std::move(body);
  r.cache_control = std::move(cache_control);
  return r;
}
FetchResult Error(std::string reason) {
  FetchResult r;
  r.error = std::move(reason);
  r.detail = "test says " + r.error;
  return r;
}
FetchResult Status(int status) {
  FetchResult r;
  r.status = status;
  r.body = "{\"error\": true}";
  return r;
}

// Counts OnReady callbacks.
struct Waiter {
  std::atomic<int> fired{0};
  void Watch(const std::shared_ptr<common::Deferred>& d) {
    ASSERT_NE(d, nullptr);
    d->OnReady([this] { fired.fetch_add(1); });
  }
};

class DynamicVendorDataTest : public ::testing::Test {
 protected:
  DynamicVendorDataTest() : clock_(*common::ParseRfc3339("2026-11-25T12:00:00Z")) {}

  void Make(std::vector<std::string> names = {"t1"},
            std::function<void(DynamicVendorData::Options&)> tweak = nullptr) {
    DynamicVendorData::Options o;
    for (const auto& n : names) o.targets.push_back({n, "http://127.0.0.1:9/" + n});
    o.max_wait = 11s;
    o.grace = 12s;
    if (tweak) tweak(o);
    vd_ = std::make_unique<DynamicVendorData>(std::move(o), fetch_.Fn(), clock_, metrics_);
  }

  uint64_t Counter(std::string_view name, std::string_view target = "t1") {
    return metrics_.CounterValue(name, "target=\"" + std::string(target) + "\"");
  }
  uint64_t Failures(std::string_view reason, std::string_view target = "t1") {
    return metrics_.CounterValue(
        "openstack_vendordata_failures_total",
        "target=\"" + std::string(target) + "\",reason=\"" + std::string(reason) + "\"");
  }
  // A lookup expected to be answered from the cache.
  DynamicVendorData::LookupResult Ready(const model::Instance& in, bool resumed = false) {
    auto r = vd_->Lookup(in, resumed);
    EXPECT_EQ(r.pending, nullptr);
    return r;
  }

  common::FakeClock clock_;
  common::MetricsRegistry metrics_;
  FakeFetch fetch_;
  std::unique_ptr<DynamicVendorData> vd_;
};

TEST_F(DynamicVendorDataTest, ColdMissDefersThenServesTheFetchedValue) {
  Make();
  model::Instance in = Fixture();
  auto first = vd_->Lookup(in, false);
  ASSERT_NE(first.pending, nullptr);
  EXPECT_TRUE(first.values.empty());
  EXPECT_EQ(first.pending->MaxWait(), 11s);
  Waiter w;
  w.Watch(first.pending);
  ASSERT_EQ(fetch_.calls.size(), 1u);
  EXPECT_EQ(fetch_.calls[0].url, "http://127.0.0.1:9/t1");
  EXPECT_EQ(fetch_.calls[0].body, VendordataRequestBody(in));
  EXPECT_EQ(w.fired.load(), 0);

  fetch_.Complete(0, Ok(R"({"b":[1,2],"a":"\u00e9"})", "max-age=60"));
  EXPECT_EQ(w.fired.load(), 1);
  auto again = Ready(in, /*resumed=*/true);
  ASSERT_EQ(again.values.size(), 1u);
  EXPECT_EQ(again.values[0].name, "t1");
  // Re-serialised as Nova's json.dumps would.
  EXPECT_EQ(*again.values[0].json, R"({"b": [1, 2], "a": "\u00e9"})");
  EXPECT_TRUE(again.values[0].failure.empty());
  EXPECT_EQ(Counter("openstack_vendordata_cache_misses_total"), 1u);
  EXPECT_EQ(Counter("openstack_vendordata_cache_hits_total"), 1u);
  EXPECT_EQ(Counter("openstack_vendordata_fetches_total"), 1u);
  EXPECT_EQ(metrics_.CounterValue("openstack_vendordata_deferred_total"), 1u);
}

TEST_F(DynamicVendorDataTest, MaxAgeIsHonoured) {
  Make();
  model::Instance in = Small("i-1");
  ASSERT_NE(vd_->Lookup(in, false).pending, nullptr);
  fetch_.Complete(0, Ok("{\"v\": 1}", "public, max-age=30"));
  clock_.Advance(29s);
  EXPECT_EQ(*Ready(in).values[0].json, "{\"v\": 1}");
  EXPECT_EQ(fetch_.calls.size(), 1u);
  clock_.Advance(2s);  // stale now
  EXPECT_NE(vd_->Lookup(in, false).pending, nullptr);
  EXPECT_EQ(fetch_.calls.size(), 2u);
}

TEST_F(DynamicVendorDataTest, MaxAgeIsCappedByMaxTtl) {
  Make({"t1"}, [](auto& o) { o.max_ttl = 10s; });
  model::Instance in = Small("i-1");
  ASSERT_NE(vd_->Lookup(in, false).pending, nullptr);
  fetch_.Complete(0, Ok("{}", "max-age=86400"));
  clock_.Advance(11s);
  EXPECT_NE(vd_->Lookup(in, false).pending, nullptr);
}

TEST_F(DynamicVendorDataTest, NoCacheControlUsesTheDefaultTtl) {
  Make({"t1"}, [](auto& o) { o.default_ttl = 60s; });
  model::Instance in = Small("i-1");
  ASSERT_NE(vd_->Lookup(in, false).pending, nullptr);
  fetch_.Complete(0, Ok("{}"));
  clock_.Advance(59s);
  Ready(in);
  clock_.Advance(2s);
  EXPECT_NE(vd_->Lookup(in, false).pending, nullptr);
}

TEST_F(DynamicVendorDataTest, DefaultTtlZeroRefetchesLikeNova) {
  Make({"t1"}, [](auto& o) { o.default_ttl = 0s; });
  model::Instance in = Small("i-1");
  ASSERT_NE(vd_->Lookup(in, false).pending, nullptr);
  fetch_.Complete(0, Ok("{\"n\": 1}"));
  // The parked request gets the value...
  EXPECT_EQ(*Ready(in, true).values[0].json, "{\"n\": 1}");
  // ...a new request fetches again.
  EXPECT_NE(vd_->Lookup(in, false).pending, nullptr);
  EXPECT_EQ(fetch_.calls.size(), 2u);
}

TEST_F(DynamicVendorDataTest, NoStoreAndNoCacheAreRefetchedButReachTheParkedRequest) {
  for (const char* cc : {"no-store", "no-cache", "max-age=0", "no-store, max-age=600"}) {
    fetch_.calls.clear();
    Make();
    model::Instance in = Small("i-1");
    ASSERT_NE(vd_->Lookup(in, false).pending, nullptr) << cc;
    fetch_.Complete(0, Ok("{\"x\": 1}", cc));
    clock_.Advance(5s);  // within the grace period
    EXPECT_EQ(*Ready(in, /*resumed=*/true).values[0].json, "{\"x\": 1}") << cc;
    EXPECT_NE(vd_->Lookup(in, false).pending, nullptr) << cc;
    EXPECT_EQ(fetch_.calls.size(), 2u) << cc;
    clock_.Advance(1s);
  }
}

TEST_F(DynamicVendorDataTest, ValueFreshAtFirstLookupStaysUsableForTheResumedOne) {
  Make();
  model::Instance in = Small("i-1");
  ASSERT_NE(vd_->Lookup(in, false).pending, nullptr);
  fetch_.Complete(0, Ok("{}", "max-age=1"));
  clock_.Advance(10s);  // expired, but within max-age + grace
  EXPECT_TRUE(Ready(in, true).values[0].failure.empty());
  clock_.Advance(10s);  // beyond grace
  EXPECT_EQ(Ready(in, true).values[0].failure, "not_ready");
}

TEST_F(DynamicVendorDataTest, ConcurrentMissesShareOneFetch) {
  Make();
  model::Instance in = Small("i-1");
  auto a = vd_->Lookup(in, false);
  auto b = vd_->Lookup(in, false);
  Waiter wa, wb;
  wa.Watch(a.pending);
  wb.Watch(b.pending);
  EXPECT_EQ(fetch_.calls.size(), 1u);
  fetch_.Complete(0, Ok("{}", "max-age=60"));
  EXPECT_EQ(wa.fired.load(), 1);
  EXPECT_EQ(wb.fired.load(), 1);
  EXPECT_EQ(Counter("openstack_vendordata_cache_misses_total"), 2u);
  EXPECT_EQ(Counter("openstack_vendordata_fetches_total"), 1u);
}

TEST_F(DynamicVendorDataTest, KeyedByInstanceAndContent) {
  Make();
  model::Instance in = Small("i-1");
  ASSERT_NE(vd_->Lookup(in, false).pending, nullptr);
  fetch_.Complete(0, Ok("{\"rev\": 1}", "max-age=600"));
  Ready(in);
  // A change the body does not carry (a NIC) keeps the cached value...
  model::Instance nic_change = in;
  nic_change.nics.push_back(model::Nic{});
  Ready(nic_change);
  // ...a change it does carry (a tag: Nova's metadata) fetches again.
  model::Instance tagged = in;
  tagged.tags["new"] = "tag";
  ASSERT_NE(vd_->Lookup(tagged, false).pending, nullptr);
  ASSERT_EQ(fetch_.calls.size(), 2u);
  EXPECT_NE(fetch_.calls[1].body.find("\"new\": \"tag\""), std::string::npos);
  fetch_.Complete(1, Ok("{\"rev\": 2}", "max-age=600"));
  EXPECT_EQ(*Ready(tagged).values[0].json, "{\"rev\": 2}");
  // Another instance has its own entry.
  EXPECT_NE(vd_->Lookup(Small("i-2"), false).pending, nullptr);
  EXPECT_EQ(vd_->CachedInstances(), 2u);
}

TEST_F(DynamicVendorDataTest, FailuresGiveEmptyObjectsWithReasons) {
  struct Case {
    FetchResult result;
    std::string reason;
  };
  std::vector<Case> cases = {
      {Error("connect"), "connect"},
      {Error("read_timeout"), "read_timeout"},
      {Error("too_large"), "too_large"},
      {Status(404), "http_4xx"},
      {Status(503), "http_5xx"},
      {Status(302), "http_other"},
      {Ok("<html>not json</html>"), "not_json"},
      {Ok("[1, 2, 3]"), "not_object"},
      {Ok("\"just a string\""), "not_object"},
  };
  for (auto& c : cases) {
    fetch_.calls.clear();
    Make();
    const uint64_t before = Failures(c.reason);
    model::Instance in = Small("i-1");
    ASSERT_NE(vd_->Lookup(in, false).pending, nullptr);
    fetch_.Complete(0, c.result);
    auto r = Ready(in, true);
    ASSERT_EQ(r.values.size(), 1u);
    EXPECT_EQ(*r.values[0].json, "{}") << c.reason;
    EXPECT_EQ(r.values[0].failure, c.reason);
    EXPECT_FALSE(r.values[0].detail.empty()) << c.reason;
    EXPECT_EQ(Failures(c.reason), before + 1) << c.reason;
  }
}

TEST_F(DynamicVendorDataTest, EmptySuccessfulBodyIsEmptyObjectWithoutFailure) {
  // Nova: `if res and res.text: ...; return {}`.
  Make();
  model::Instance in = Small("i-1");
  ASSERT_NE(vd_->Lookup(in, false).pending, nullptr);
  FetchResult r = Ok("");
  r.status = 204;
  fetch_.Complete(0, r);
  auto v = Ready(in, true);
  EXPECT_EQ(*v.values[0].json, "{}");
  EXPECT_TRUE(v.values[0].failure.empty());
}

TEST_F(DynamicVendorDataTest, BreakerStopsCallsToADownTargetThenProbes) {
  Make({"t1"}, [](auto& o) {
    o.backoff_initial = 2s;
    o.backoff_max = 5s;
  });
  ASSERT_NE(vd_->Lookup(Small("i-1"), false).pending, nullptr);
  fetch_.Complete(0, Error("connect"));
  // Open: another instance is answered at once, without a call.
  auto r = Ready(Small("i-2"));
  EXPECT_EQ(r.values[0].failure, "circuit_open");
  EXPECT_NE(r.values[0].detail.find("connect"), std::string::npos) << r.values[0].detail;
  EXPECT_EQ(*r.values[0].json, "{}");
  EXPECT_EQ(fetch_.calls.size(), 1u);
  EXPECT_EQ(Failures("connect"), 1u);
  EXPECT_EQ(Failures("circuit_open"), 1u);

  // Half-open after the back-off: one probe, others still refused meanwhile.
  clock_.Advance(2100ms);
  ASSERT_NE(vd_->Lookup(Small("i-3"), false).pending, nullptr);
  EXPECT_EQ(fetch_.calls.size(), 2u);
  EXPECT_EQ(Ready(Small("i-4")).values[0].failure, "circuit_open");
  fetch_.Complete(1, Error("read_timeout"));
  // Second failure in a row: 4 s back-off.
  clock_.Advance(3s);
  EXPECT_EQ(Ready(Small("i-5")).values[0].failure, "circuit_open");
  clock_.Advance(1100ms);
  ASSERT_NE(vd_->Lookup(Small("i-5"), false).pending, nullptr);
  fetch_.Complete(2, Ok("{}", "max-age=60"));
  // Closed again: calls flow.
  EXPECT_NE(vd_->Lookup(Small("i-6"), false).pending, nullptr);
  EXPECT_NE(vd_->Lookup(Small("i-7"), false).pending, nullptr);
  EXPECT_EQ(fetch_.calls.size(), 5u);
}

TEST_F(DynamicVendorDataTest, BackoffIsCapped) {
  Make({"t1"}, [](auto& o) {
    o.backoff_initial = 1s;
    o.backoff_max = 3s;
  });
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(3100ms);
    ASSERT_NE(vd_->Lookup(Small("i-" + std::to_string(i)), false).pending, nullptr) << i;
    fetch_.Complete(fetch_.calls.size() - 1, Error("connect"));
  }
  clock_.Advance(3100ms);  // never longer than backoff_max
  EXPECT_NE(vd_->Lookup(Small("i-x"), false).pending, nullptr);
}

TEST_F(DynamicVendorDataTest, InstanceFailuresAreCachedButDoNotTripTheBreaker) {
  Make({"t1"}, [](auto& o) { o.failure_ttl = 5s; });
  model::Instance in = Small("i-1");
  ASSERT_NE(vd_->Lookup(in, false).pending, nullptr);
  fetch_.Complete(0, Ok("not json"));
  // Same instance: the failure is reused for failure_ttl (no hammering).
  EXPECT_EQ(Ready(in).values[0].failure, "not_json");
  EXPECT_EQ(fetch_.calls.size(), 1u);
  // Other instances still call the target.
  EXPECT_NE(vd_->Lookup(Small("i-2"), false).pending, nullptr);
  clock_.Advance(6s);
  EXPECT_NE(vd_->Lookup(in, false).pending, nullptr);
  EXPECT_EQ(fetch_.calls.size(), 3u);
}

TEST_F(DynamicVendorDataTest, ResumedLookupNeverStartsOrWaits) {
  Make();
  model::Instance in = Small("i-1");
  ASSERT_NE(vd_->Lookup(in, false).pending, nullptr);
  // The fetch is still running when the session gives up waiting.
  auto r = Ready(in, true);
  EXPECT_EQ(r.values[0].failure, "not_ready");
  EXPECT_EQ(*r.values[0].json, "{}");
  EXPECT_EQ(Failures("not_ready"), 1u);
  // Nothing cached at all (e.g. evicted): no new fetch either.
  EXPECT_EQ(Ready(Small("i-9"), true).values[0].failure, "not_ready");
  EXPECT_EQ(fetch_.calls.size(), 1u);
}

TEST_F(DynamicVendorDataTest, SeveralTargetsWaitForAll) {
  Make({"t1", "t2", "t1"});  // the second t1 is dropped, as Nova does
  ASSERT_EQ(vd_->targets().size(), 2u);
  model::Instance in = Small("i-1");
  auto r = vd_->Lookup(in, false);
  Waiter w;
  w.Watch(r.pending);
  ASSERT_EQ(fetch_.calls.size(), 2u);
  fetch_.Complete(1, Ok("{\"two\": 2}", "max-age=60"));
  EXPECT_EQ(w.fired.load(), 0);
  fetch_.Complete(0, Ok("{\"one\": 1}", "max-age=60"));
  EXPECT_EQ(w.fired.load(), 1);
  auto v = Ready(in);
  ASSERT_EQ(v.values.size(), 2u);
  EXPECT_EQ(v.values[0].name, "t1");
  EXPECT_EQ(*v.values[0].json, "{\"one\": 1}");
  EXPECT_EQ(v.values[1].name, "t2");
  EXPECT_EQ(*v.values[1].json, "{\"two\": 2}");
}

TEST_F(DynamicVendorDataTest, InlineCompletionIsReadyAtOnce) {
  Make();
  fetch_.inline_result = Ok("{\"fast\": true}", "max-age=60");
  model::Instance in = Small("i-1");
  auto r = vd_->Lookup(in, false);
  Waiter w;
  w.Watch(r.pending);  // already fired: called inside OnReady
  EXPECT_EQ(w.fired.load(), 1);
  EXPECT_EQ(*Ready(in, true).values[0].json, "{\"fast\": true}");
}

TEST_F(DynamicVendorDataTest, PrefetchFillsTheCacheWithinItsLimit) {
  Make({"t1"}, [](auto& o) { o.max_prefetch_in_flight = 2; });
  vd_->Prefetch(Small("i-1"));
  vd_->Prefetch(Small("i-2"));
  vd_->Prefetch(Small("i-3"));  // over the limit: skipped
  ASSERT_EQ(fetch_.calls.size(), 2u);
  vd_->Prefetch(Small("i-1"));  // already running: joined, not repeated
  EXPECT_EQ(fetch_.calls.size(), 2u);
  fetch_.Complete(0, Ok("{\"pre\": 1}", "max-age=60"));
  EXPECT_EQ(*Ready(Small("i-1")).values[0].json, "{\"pre\": 1}");
  vd_->Prefetch(Small("i-1"));  // fresh: nothing to do
  EXPECT_EQ(fetch_.calls.size(), 2u);
  vd_->Prefetch(Small("i-3"));  // a slot is free again
  EXPECT_EQ(fetch_.calls.size(), 3u);
  EXPECT_EQ(metrics_.CounterValue("openstack_vendordata_deferred_total"), 0u);
}

TEST_F(DynamicVendorDataTest, ForgetAndEviction) {
  Make({"t1"}, [](auto& o) { o.max_entries = 10; });
  for (int i = 0; i < 10; ++i) {
    ASSERT_NE(vd_->Lookup(Small("i-" + std::to_string(i)), false).pending, nullptr);
    fetch_.Complete(static_cast<size_t>(i), Ok("{}", "max-age=1"));
  }
  EXPECT_EQ(vd_->CachedInstances(), 10u);
  vd_->Forget("i-0");
  EXPECT_EQ(vd_->CachedInstances(), 9u);
  clock_.Advance(1h);  // everything expired
  ASSERT_NE(vd_->Lookup(Small("new-1"), false).pending, nullptr);
  ASSERT_NE(vd_->Lookup(Small("new-2"), false).pending, nullptr);
  // Over the cap: expired entries were swept, the running fetches kept.
  EXPECT_LE(vd_->CachedInstances(), 10u);
  EXPECT_GE(vd_->CachedInstances(), 2u);
  fetch_.Complete(fetch_.calls.size() - 1, Ok("{\"kept\": 1}", "max-age=60"));
  EXPECT_EQ(*Ready(Small("new-2")).values[0].json, "{\"kept\": 1}");
}

TEST_F(DynamicVendorDataTest, CompletionAfterDestructionIsIgnored) {
  Make();
  auto r = vd_->Lookup(Small("i-1"), false);
  Waiter w;
  w.Watch(r.pending);
  auto done = std::move(fetch_.calls[0].done);
  vd_.reset();
  done(Ok("{}"));
  EXPECT_EQ(w.fired.load(), 1);  // parked requests are let go
}

// ---------------------------------------------------------------------------
// vendor_data2.json through the flavour

class VendorData2Test : public DynamicVendorDataTest {
 protected:
  void MakeFlavour(std::vector<std::string> targets, bool static_first = true, bool fatal = false,
                   bool with_static = true) {
    Make(std::move(targets));
    OpenStackFlavour::Options o;
    o.static_vendor_data = R"({"s": 1})";
    o.static_vendor_data_enabled = with_static;
    o.dynamic_vendor_data = vd_.get();
    o.static_before_dynamic = static_first;
    o.vendordata_failure_fatal = fatal;
    auto f = OpenStackFlavour::Create(std::move(o), clock_, nullptr, metrics_);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    flavour_ = std::move(*f);
  }
  common::Response Render(bool resumed) {
    common::Request req;
    req.method = "GET";
    req.path = req.target = "/openstack/latest/vendor_data2.json";
    req.resumed = resumed;
    common::Response out;
    (void)flavour_->Render(in_, req, out);
    return out;
  }
  // Renders, lets the fake target answer `results` in order, renders again.
  common::Response Twice(std::vector<FetchResult> results) {
    common::Response first = Render(false);
    EXPECT_NE(first.deferred, nullptr);
    for (size_t i = 0; i < results.size(); ++i) fetch_.Complete(i, results[i]);
    common::Response second = Render(true);
    EXPECT_EQ(second.deferred, nullptr);
    return second;
  }

  model::Instance in_ = Small("i-1");
  std::unique_ptr<OpenStackFlavour> flavour_;
};

TEST_F(VendorData2Test, StaticThenTargets) {
  MakeFlavour({"t1", "t2"});
  auto out = Twice({Ok(R"({"a": 1})", "max-age=60"), Ok(R"({"b": 2})", "max-age=60")});
  EXPECT_EQ(out.status, 200);
  EXPECT_EQ(out.content_type, "application/json");
  EXPECT_EQ(out.body, R"({"static": {"s": 1}, "t1": {"a": 1}, "t2": {"b": 2}})");
  // Warm: answered at once, no deferral.
  auto warm = Render(false);
  EXPECT_EQ(warm.deferred, nullptr);
  EXPECT_EQ(warm.body, out.body);
}

TEST_F(VendorData2Test, FailedTargetIsEmptyObject) {
  MakeFlavour({"t1", "t2"});
  auto out = Twice({Error("connect"), Ok(R"({"b": 2})", "max-age=60")});
  EXPECT_EQ(out.status, 200);
  EXPECT_EQ(out.body, R"({"static": {"s": 1}, "t1": {}, "t2": {"b": 2}})");
}

TEST_F(VendorData2Test, FailureFatalIs500NamingTargetAndReason) {
  MakeFlavour({"t1", "t2"}, true, /*fatal=*/true);
  auto out = Twice({Ok(R"({"a": 1})", "max-age=60"), Error("read_timeout")});
  EXPECT_EQ(out.status, 500);
  EXPECT_NE(out.body.find("t2"), std::string::npos) << out.body;
  EXPECT_NE(out.body.find("read_timeout"), std::string::npos) << out.body;
}

TEST_F(VendorData2Test, TargetNamedStaticLosesToStaticJson) {
  // [StaticJSON, DynamicJSON]: Nova drops the duplicate key.
  MakeFlavour({"static", "t2"});
  auto out = Twice({Ok(R"({"x": 1})", "max-age=60"), Ok(R"({"b": 2})", "max-age=60")});
  EXPECT_EQ(out.body, R"({"static": {"s": 1}, "t2": {"b": 2}})");
}

TEST_F(VendorData2Test, DynamicFirstKeepsStaticInTheTargetsPlace) {
  // [DynamicJSON, StaticJSON]: Nova's j['static'] = ... overwrites in place.
  MakeFlavour({"t1", "static", "t3"}, /*static_first=*/false);
  auto out = Twice({Ok(R"({"a": 1})", "max-age=60"), Ok(R"({"x": 1})", "max-age=60"),
                    Ok(R"({"c": 3})", "max-age=60")});
  EXPECT_EQ(out.body, R"({"t1": {"a": 1}, "static": {"s": 1}, "t3": {"c": 3}})");
}

TEST_F(VendorData2Test, WithoutStaticJsonATargetMayBeCalledStatic) {
  MakeFlavour({"static"}, true, false, /*with_static=*/false);
  auto out = Twice({Ok(R"({"x": 1})", "max-age=60")});
  EXPECT_EQ(out.body, R"({"static": {"x": 1}})");
}

}  // namespace
}  // namespace openimds::flavour::openstack
