#include "service/instance_limiter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"

namespace openimds::service {
namespace {

using namespace std::chrono_literals;
using Reason = InstanceLimiter::Reason;

constexpr std::string_view kRate = "reason=\"rate\"";
constexpr std::string_view kConcurrency = "reason=\"concurrency\"";

Limits RateOnly(uint32_t per_second, uint32_t burst) {
  return Limits{.requests_per_second = per_second, .burst = burst, .max_in_flight = 0};
}
Limits InFlightOnly(uint32_t max) {
  return Limits{.requests_per_second = 0, .burst = 1, .max_in_flight = max};
}

class InstanceLimiterTest : public ::testing::Test {
 protected:
  InstanceLimiter& Make(InstanceLimiter::Options options = {}) {
    limiter_.emplace(options, clock_, metrics_);
    return *limiter_;
  }
  uint64_t Refused(std::string_view reason) const {
    return metrics_.CounterValue("metadata_rate_limited_total", reason);
  }

  common::FakeClock clock_{std::chrono::system_clock::time_point(1'800'000'000s)};
  common::MetricsRegistry metrics_;
  std::optional<InstanceLimiter> limiter_;
};

TEST_F(InstanceLimiterTest, BurstPassesThenTheRateHolds) {
  InstanceLimiter& l = Make();
  const Limits limits = RateOnly(10, 5);  // a token every 100 ms, 5 at once
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(l.Admit("i-a", limits).admitted) << i;
  auto refused = l.Admit("i-a", limits);
  EXPECT_FALSE(refused.admitted);
  EXPECT_EQ(refused.reason, Reason::kRate);
  EXPECT_EQ(refused.retry_after_s, 1);  // the next token is 100 ms away: ceil, at least 1
  EXPECT_EQ(Refused(kRate), 1u);

  clock_.Advance(99ms);
  EXPECT_FALSE(l.Admit("i-a", limits).admitted);
  clock_.Advance(1ms);  // one token back, and only one
  EXPECT_TRUE(l.Admit("i-a", limits).admitted);
  EXPECT_FALSE(l.Admit("i-a", limits).admitted);
  EXPECT_EQ(Refused(kRate), 3u);

  // Refusals took no tokens: after the full refill time the whole burst is back.
  clock_.Advance(500ms);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(l.Admit("i-a", limits).admitted) << i;
  EXPECT_FALSE(l.Admit("i-a", limits).admitted);
}

TEST_F(InstanceLimiterTest, SustainedRateIsTheConfiguredOne) {
  InstanceLimiter& l = Make();
  const Limits limits = RateOnly(4, 1);
  int admitted = 0;
  // Ten seconds asked at 100 per second: 4 per second get through (plus the first).
  for (int i = 0; i < 1000; ++i) {
    admitted += l.Admit("i-a", limits).admitted ? 1 : 0;
    clock_.Advance(10ms);
  }
  EXPECT_EQ(admitted, 40);
}

TEST_F(InstanceLimiterTest, RetryAfterIsTheWaitForTheNextTokenRoundedUp) {
  InstanceLimiter& l = Make();
  const Limits one_per_second = RateOnly(1, 1);
  EXPECT_TRUE(l.Admit("i-a", one_per_second).admitted);
  clock_.Advance(1ms);
  EXPECT_EQ(l.Admit("i-a", one_per_second).retry_after_s, 1);  // 999 ms -> 1 s
  clock_.Advance(998ms);
  EXPECT_EQ(l.Admit("i-a", one_per_second).retry_after_s, 1);  // 1 ms -> 1 s, never 0
  clock_.Advance(1ms);
  EXPECT_TRUE(l.Admit("i-a", one_per_second).admitted);
}

TEST_F(InstanceLimiterTest, OtherInstancesAreUnaffected) {
  InstanceLimiter& l = Make();
  const Limits limits = RateOnly(1, 2);
  EXPECT_TRUE(l.Admit("i-noisy", limits).admitted);
  EXPECT_TRUE(l.Admit("i-noisy", limits).admitted);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(l.Admit("i-noisy", limits).admitted);
  EXPECT_TRUE(l.Admit("i-quiet", limits).admitted);
  EXPECT_TRUE(l.Admit("i-quiet", limits).admitted);
  EXPECT_FALSE(l.Admit("i-quiet", limits).admitted);
}

TEST_F(InstanceLimiterTest, InFlightSlotsAreHeldUntilReleased) {
  InstanceLimiter& l = Make();
  const Limits limits = InFlightOnly(2);
  auto a = l.Admit("i-a", limits);
  auto b = l.Admit("i-a", limits);
  ASSERT_TRUE(a.admitted && b.admitted);
  EXPECT_TRUE(a.slot.held());
  auto c = l.Admit("i-a", limits);
  EXPECT_FALSE(c.admitted);
  EXPECT_EQ(c.reason, Reason::kConcurrency);
  EXPECT_EQ(c.retry_after_s, 1);
  EXPECT_FALSE(c.slot.held());
  EXPECT_EQ(Refused(kConcurrency), 1u);
  EXPECT_TRUE(l.Admit("i-b", limits).admitted);  // another instance: its own slots

  // A slot moved elsewhere (a parked request) still holds its place.
  InstanceLimiter::Slot parked = std::move(a.slot);
  EXPECT_FALSE(a.slot.held());
  EXPECT_FALSE(l.Admit("i-a", limits).admitted);
  parked.Release();
  auto d = l.Admit("i-a", limits);
  EXPECT_TRUE(d.admitted);
  { InstanceLimiter::Slot gone = std::move(b.slot); }  // released by its destructor
  EXPECT_TRUE(l.Admit("i-a", limits).admitted);
}

TEST_F(InstanceLimiterTest, ARefusalTakesNeitherTokenNorSlot) {
  InstanceLimiter& l = Make();
  const Limits limits{.requests_per_second = 10, .burst = 3, .max_in_flight = 1};
  auto held = l.Admit("i-a", limits);
  ASSERT_TRUE(held.admitted);
  // Over the in-flight limit: these take no tokens...
  for (int i = 0; i < 10; ++i) {
    auto d = l.Admit("i-a", limits);
    EXPECT_FALSE(d.admitted);
    EXPECT_EQ(d.reason, Reason::kConcurrency);
  }
  held.slot.Release();
  // ...so two of the burst of three are left.
  auto first = l.Admit("i-a", limits);
  EXPECT_TRUE(first.admitted);
  first.slot.Release();
  auto second = l.Admit("i-a", limits);
  EXPECT_TRUE(second.admitted);
  second.slot.Release();
  auto third = l.Admit("i-a", limits);
  EXPECT_FALSE(third.admitted);
  EXPECT_EQ(third.reason, Reason::kRate);
}

TEST_F(InstanceLimiterTest, ClockSteppingBackCostsAtMostOneInterval) {
  InstanceLimiter& l = Make();
  const Limits limits = RateOnly(10, 2);
  EXPECT_TRUE(l.Admit("i-a", limits).admitted);
  EXPECT_TRUE(l.Admit("i-a", limits).admitted);
  clock_.Advance(-1h);  // wall clock corrected backwards
  auto d = l.Admit("i-a", limits);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.retry_after_s, 1);
  clock_.Advance(100ms);
  EXPECT_TRUE(l.Admit("i-a", limits).admitted);
}

TEST_F(InstanceLimiterTest, EffectiveLimitsAreTheRecordsOverTheDefaults) {
  InstanceLimiter::Options o;
  o.requests_per_second = 7;
  o.burst = 70;
  o.max_in_flight = 3;
  InstanceLimiter& l = Make(o);
  Limits d = l.Effective(model::RequestLimits{});
  EXPECT_EQ(d.requests_per_second, 7u);
  EXPECT_EQ(d.burst, 70u);
  EXPECT_EQ(d.max_in_flight, 3u);
  Limits r = l.Effective(model::RequestLimits{.requests_per_second = 0,
                                              .burst = 2,
                                              .max_in_flight = std::nullopt,
                                              .max_connections = std::nullopt});
  EXPECT_EQ(r.requests_per_second, 0u);  // 0 in the record: no rate limit
  EXPECT_EQ(r.burst, 2u);
  EXPECT_EQ(r.max_in_flight, 3u);
}

TEST_F(InstanceLimiterTest, NoStateForInstancesWithoutLimitsOrRequests) {
  InstanceLimiter& l = Make();
  EXPECT_EQ(l.tracked(), 0u);
  EXPECT_TRUE(
      l.Admit("i-free", Limits{.requests_per_second = 0, .burst = 1, .max_in_flight = 0}).admitted);
  EXPECT_EQ(l.tracked(), 0u);
  EXPECT_TRUE(l.Admit("i-a", RateOnly(10, 10)).admitted);
  EXPECT_EQ(l.tracked(), 1u);
}

TEST_F(InstanceLimiterTest, RefilledEntriesAreSweptSoMemoryFollowsRecentCallers) {
  InstanceLimiter::Options o;
  o.shards = 1;
  InstanceLimiter& l = Make(o);
  const Limits limits = RateOnly(100, 10);
  // 10,000 instances ask once each, 100 per (fake) second: each bucket is
  // full again 10 ms after its request, so only the few since the last sweep
  // stay tracked.
  size_t most = 0;
  for (int i = 0; i < 10000; ++i) {
    ASSERT_TRUE(l.Admit("i-" + std::to_string(i), limits).admitted);
    clock_.Advance(10ms);
    most = std::max(most, l.tracked());
  }
  EXPECT_LE(most, 128u);  // the sweep runs when the map has doubled (64 at least)
  EXPECT_EQ(metrics_.CounterValue("metadata_rate_limiter_untracked_total"), 0u);
}

TEST_F(InstanceLimiterTest, AtTheCapNewInstancesAreAdmittedUntrackedAndCounted) {
  InstanceLimiter::Options o;
  o.shards = 1;
  o.max_tracked = 4;
  InstanceLimiter& l = Make(o);
  const Limits limits = RateOnly(1, 1);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(l.Admit("i-" + std::to_string(i), limits).admitted);
  // Every tracked bucket is empty (in debt): none can be swept.
  EXPECT_TRUE(l.Admit("i-new", limits).admitted);
  EXPECT_TRUE(l.Admit("i-new", limits).admitted);
  EXPECT_EQ(l.tracked(), 4u);
  EXPECT_EQ(metrics_.CounterValue("metadata_rate_limiter_untracked_total"), 2u);
  // Still limited: the instances that have state keep it.
  EXPECT_FALSE(l.Admit("i-0", limits).admitted);
  // Once they refill (and a second has passed since the last sweep), room again.
  clock_.Advance(1s);
  EXPECT_TRUE(l.Admit("i-new", limits).admitted);
  EXPECT_FALSE(l.Admit("i-new", limits).admitted);
  EXPECT_EQ(metrics_.CounterValue("metadata_rate_limiter_untracked_total"), 2u);
}

TEST_F(InstanceLimiterTest, AnEntryWithRequestsInFlightIsNeverSwept) {
  InstanceLimiter::Options o;
  o.shards = 1;
  o.max_tracked = 2;
  InstanceLimiter& l = Make(o);
  auto held = l.Admit("i-parked", InFlightOnly(1));
  ASSERT_TRUE(held.slot.held());
  clock_.Advance(1h);
  // Enough other instances to force sweeps at the cap.
  for (int i = 0; i < 10; ++i) {
    (void)l.Admit("i-" + std::to_string(i), RateOnly(1000, 1));
    clock_.Advance(2s);
  }
  EXPECT_FALSE(l.Admit("i-parked", InFlightOnly(1)).admitted);  // its entry, its count
  held.slot.Release();
  EXPECT_TRUE(l.Admit("i-parked", InFlightOnly(1)).admitted);
}

TEST_F(InstanceLimiterTest, ConnectionsAreCappedPerInstanceAndNeverSweptWhileOpen) {
  InstanceLimiter::Options o;
  o.shards = 1;
  o.max_tracked = 2;
  InstanceLimiter& l = Make(o);
  const Limits limits{
      .requests_per_second = 0, .burst = 1, .max_in_flight = 0, .max_connections = 2};
  auto a = l.AdmitConnection("i-a", limits);
  auto b = l.AdmitConnection("i-a", limits);
  ASSERT_TRUE(a.admitted && b.admitted && a.slot.held() && b.slot.held());
  auto c = l.AdmitConnection("i-a", limits);
  EXPECT_FALSE(c.admitted);
  EXPECT_EQ(c.reason, Reason::kConnections);
  EXPECT_EQ(c.retry_after_s, 1);
  EXPECT_EQ(Refused("reason=\"connections\""), 1u);
  // Requests are not connections: the request limits are untouched.
  EXPECT_TRUE(l.Admit("i-a", InFlightOnly(1)).admitted);
  // Open connections keep the entry through sweeps.
  clock_.Advance(1h);
  for (int i = 0; i < 10; ++i) {
    (void)l.Admit("i-" + std::to_string(i), RateOnly(1000, 1));
    clock_.Advance(2s);
  }
  EXPECT_FALSE(l.AdmitConnection("i-a", limits).admitted);
  a.slot.Release();
  EXPECT_TRUE(l.AdmitConnection("i-a", limits).admitted);
  // 0: no limit and no state.
  EXPECT_TRUE(l.AdmitConnection("i-z", Limits{}).admitted);
  const auto rows = l.TopLimited();
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows[0].instance, "i-a");
  EXPECT_EQ(rows[0].connections, 2u);
}

TEST_F(InstanceLimiterTest, TheLimitHoldsUnderConcurrentCallers) {
  InstanceLimiter& l = Make();
  const Limits limits = RateOnly(1, 1000);  // the clock does not move: exactly the burst
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        if (l.Admit("i-a", limits).admitted) admitted.fetch_add(1);
        (void)l.Admit("i-other-" + std::to_string(i % 50), limits);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 1000);
  EXPECT_EQ(Refused(kRate), 19000u);
}

TEST_F(InstanceLimiterTest, TopLimitedIsBoundedAndOrderedByRefusals) {
  InstanceLimiter::Options o;
  o.top_instances = 3;
  InstanceLimiter& l = Make(o);
  const Limits limits = RateOnly(1, 1);
  for (int i = 0; i < 10; ++i) {
    const std::string id = "i-" + std::to_string(i);
    for (int n = 0; n <= i; ++n) (void)l.Admit(id, limits);  // i refusals
  }
  auto rows = l.TopLimited();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].instance, "i-9");
  EXPECT_EQ(rows[0].rate, 9u);
  EXPECT_EQ(rows[1].instance, "i-8");
  EXPECT_EQ(rows[2].instance, "i-7");

  const std::string text = metrics_.RenderPrometheus();
  EXPECT_THAT(text,
              ::testing::HasSubstr(
                  "metadata_rate_limited_instance_total{instance=\"i-9\",reason=\"rate\"} 9\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("metadata_rate_limited_instance_total{instance=\"i-9\","
                                         "reason=\"concurrency\"} 0\n"));
  EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("instance=\"i-6\"")));
  EXPECT_THAT(text, ::testing::HasSubstr("metadata_rate_limited_total{reason=\"rate\"} 45\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("metadata_rate_limiter_tracked_instances 10\n"));
}

TEST_F(InstanceLimiterTest, RefusalCountsSurviveTheSweepOfTheirEntry) {
  InstanceLimiter::Options o;
  o.shards = 1;
  o.top_instances = 2;
  InstanceLimiter& l = Make(o);
  const Limits limits = RateOnly(10, 1);
  (void)l.Admit("i-loud", limits);
  for (int i = 0; i < 5; ++i) (void)l.Admit("i-loud", limits);
  clock_.Advance(1s);
  // 64 other instances make the shard sweep; i-loud's bucket is full again.
  for (int i = 0; i < 64; ++i) (void)l.Admit("i-" + std::to_string(i), limits);
  auto rows = l.TopLimited();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].instance, "i-loud");
  EXPECT_EQ(rows[0].rate, 5u);
  // Back and refused again: one row, the sum.
  (void)l.Admit("i-loud", limits);
  (void)l.Admit("i-loud", limits);
  rows = l.TopLimited();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].rate, 6u);
}

}  // namespace
}  // namespace openimds::service
