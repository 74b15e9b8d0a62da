#include "feed/follower.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/write_queue.h"
#include "../store/store_testing.h"

namespace openimds::feed {
namespace {

using namespace std::chrono_literals;
using store::MakeInstance;
using store::OpenStore;
using store::TempDir;

constexpr auto kDeadline = 10s;

// Every (id, revision) a subscriber was told about, in order.
class Recorder {
 public:
  void Attach(Follower& f) {
    f.Subscribe([this](const std::vector<Applied>& page) {
      std::lock_guard<std::mutex> lock(mu_);
      for (const Applied& a : page) seen_.emplace_back(a.id, a.revision);
    });
  }
  std::vector<std::pair<std::string, int64_t>> seen() const {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, int64_t>> seen_;
};

// The catalog holds exactly what the store holds, revisions included.
void ExpectCatalogEqualsStore(catalog::Catalog& catalog, store::Store& store) {
  auto listed = store.List();
  ASSERT_TRUE(listed.ok());
  auto snap = catalog.Current();
  ASSERT_EQ(snap->size(), listed->size());
  for (const auto& s : *listed) {
    const catalog::Entry* e = snap->FindById(s.instance.id);
    ASSERT_NE(e, nullptr) << s.instance.id;
    EXPECT_EQ(e->revision, s.revision) << s.instance.id;
    EXPECT_EQ(*e->instance, s.instance) << s.instance.id;
  }
}

// A store on a fresh file, and the catalog and metrics a follower needs.
// Members are declared before any test's locals, so a follower made in a
// test body is gone before the store it follows.
class FollowerTest : public ::testing::Test {
 protected:
  TempDir dir;
  const std::string path = dir.File("s.db");
  std::unique_ptr<store::SqliteStore> st = OpenStore(path);
  catalog::Catalog catalog;
  common::MetricsRegistry metrics;
};

TEST_F(FollowerTest, AppliesEveryCommitExactlyOnceAcrossSmallPages) {
  Recorder recorder;  // outlives the follower, which calls it
  Follower::Options options;
  options.page_size = 7;  // many pages, several per wake-up
  Follower follower(options, *st, catalog, metrics);
  ASSERT_TRUE(follower.Load().ok());
  recorder.Attach(follower);
  follower.Start();
  {
    store::WriteQueue queue(*st);
    std::vector<std::thread> writers;
    for (int w = 0; w < 4; ++w) {
      writers.emplace_back([&queue, w] {
        for (int i = 0; i < 100; ++i) {
          const std::string id = "w" + std::to_string(w) + "-" + std::to_string(i);
          auto out = queue.CommitOne(store::WriteOf({store::PutOf(MakeInstance(id))}));
          ASSERT_TRUE(out.status.ok()) << out.status.ToString();
        }
      });
    }
    for (auto& t : writers) t.join();
  }
  auto latest = st->LatestRevision();
  ASSERT_TRUE(latest.ok());
  ASSERT_EQ(*latest, 400);
  ASSERT_TRUE(follower.WaitApplied(*latest, kDeadline));
  ExpectCatalogEqualsStore(catalog, *st);
  // Subscribers hear of a page before its revision counts as applied.
  // Each write created its own id: every revision reached subscribers once.
  std::set<int64_t> revisions;
  for (const auto& [id, rev] : recorder.seen()) {
    EXPECT_TRUE(revisions.insert(rev).second) << "revision " << rev << " applied twice";
  }
  EXPECT_EQ(revisions.size(), 400u);
  EXPECT_GE(metrics.CounterValue("feed_pages_total"), 400u / 7);
}

TEST_F(FollowerTest, ARestartResumesFromTheStoreAndLosesNothing) {
  {
    catalog::Catalog catalog;
    common::MetricsRegistry metrics;
    Follower follower({}, *st, catalog, metrics);
    ASSERT_TRUE(follower.Load().ok());
    follower.Start();
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(st->Put(MakeInstance("a" + std::to_string(i)), {}).ok());
    ASSERT_TRUE(follower.WaitApplied(20, kDeadline));
  }
  // Written while no follower ran, and by another store object (process).
  {
    auto other = OpenStore(path);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(other->Put(MakeInstance("b" + std::to_string(i)), {}).ok());
    ASSERT_TRUE(other->Delete("a3", {}).ok());
  }
  Recorder recorder;  // outlives the follower, which calls it
  Follower follower({}, *st, catalog, metrics);
  ASSERT_TRUE(follower.Load().ok());
  EXPECT_EQ(follower.applied(), 26);
  ExpectCatalogEqualsStore(catalog, *st);
  recorder.Attach(follower);
  follower.Start();
  ASSERT_TRUE(st->Put(MakeInstance("c"), {}).ok());
  ASSERT_TRUE(follower.WaitApplied(27, kDeadline));
  ExpectCatalogEqualsStore(catalog, *st);
  // Only the new change, not the ones Load already had.
  EXPECT_EQ(recorder.seen(), (std::vector<std::pair<std::string, int64_t>>{{"c", 27}}));
}

TEST_F(FollowerTest, CommitsByAnotherProcessArriveByPolling) {
  auto other = OpenStore(path);  // its commits do not wake `follower`
  catalog::Catalog catalog;
  common::MetricsRegistry metrics;
  Follower::Options options;
  options.poll_interval = 20ms;
  Follower follower(options, *st, catalog, metrics);
  ASSERT_TRUE(follower.Load().ok());
  follower.Start();
  auto rev = other->Put(MakeInstance("far"), {});
  ASSERT_TRUE(rev.ok());
  ASSERT_TRUE(follower.WaitApplied(*rev, kDeadline));
  EXPECT_NE(catalog.Current()->FindById("far"), nullptr);
}

TEST_F(FollowerTest, AGapInTheFeedResyncsAndTellsSubscribersWhatDiffers) {
  Recorder recorder;  // outlives the follower, which calls it
  Follower follower({}, *st, catalog, metrics);
  ASSERT_TRUE(follower.Load().ok());
  recorder.Attach(follower);
  follower.Start();
  ASSERT_TRUE(st->Put(MakeInstance("x"), {}).ok());
  ASSERT_TRUE(follower.WaitApplied(1, kDeadline));
  const uint64_t resyncs_before = metrics.CounterValue("feed_resyncs_total");
  // A hand edit: the sequence jumps, so revisions 2..4 are in no log row.
  store::RawExec(path, "UPDATE meta SET value = value + 3 WHERE key = 'revision'");
  auto rev = st->Put(MakeInstance("y"), {});
  ASSERT_TRUE(rev.ok());
  ASSERT_EQ(*rev, 5);
  ASSERT_TRUE(follower.WaitApplied(5, kDeadline));
  EXPECT_EQ(metrics.CounterValue("feed_resyncs_total"), resyncs_before + 1);
  ExpectCatalogEqualsStore(catalog, *st);
  auto seen = recorder.seen();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back(), (std::pair<std::string, int64_t>{"y", 5}));
}

TEST_F(FollowerTest, WatchesFireOnceForAChangeAfterTheirRevision) {
  Follower follower({}, *st, catalog, metrics);
  ASSERT_TRUE(follower.Load().ok());
  follower.Start();
  ASSERT_TRUE(st->Put(MakeInstance("w"), {}).ok());  // revision 1
  ASSERT_TRUE(follower.WaitApplied(1, kDeadline));

  // Already newer than `after`: fires at once, on this thread.
  int64_t at_once = 0;
  follower.Watch("w", 0, [&](int64_t r) { at_once = r; });
  EXPECT_EQ(at_once, 1);

  std::atomic<int> fired{0};
  std::atomic<int64_t> fired_rev{0};
  follower.Watch("w", 1, [&](int64_t r) {
    fired_rev = r;
    ++fired;
  });
  std::atomic<int> cancelled_fired{0};
  auto cancelled = follower.Watch("w", 1, [&](int64_t) { ++cancelled_fired; });
  std::atomic<int> other_fired{0};
  follower.Watch("other", 0, [&](int64_t) { ++other_fired; });  // absent: waits for creation
  EXPECT_EQ(follower.watches(), 3u);
  EXPECT_TRUE(follower.CancelWatch(cancelled));
  EXPECT_FALSE(follower.CancelWatch(cancelled));

  ASSERT_TRUE(st->Put(MakeInstance("unrelated"), {}).ok());  // revision 2
  ASSERT_TRUE(follower.WaitApplied(2, kDeadline));
  EXPECT_EQ(fired.load(), 0);
  ASSERT_TRUE(st->Delete("w", {}).ok());  // revision 3: a delete is a change too
  ASSERT_TRUE(follower.WaitApplied(3, kDeadline));
  EXPECT_EQ(fired.load(), 1);
  EXPECT_EQ(fired_rev.load(), 3);
  ASSERT_TRUE(st->Put(MakeInstance("w"), {}).ok());  // revision 4: the watch is spent
  ASSERT_TRUE(follower.WaitApplied(4, kDeadline));
  EXPECT_EQ(fired.load(), 1);
  EXPECT_EQ(cancelled_fired.load(), 0);
  EXPECT_EQ(other_fired.load(), 0);
  ASSERT_TRUE(st->Put(MakeInstance("other"), {}).ok());
  ASSERT_TRUE(follower.WaitApplied(5, kDeadline));
  EXPECT_EQ(other_fired.load(), 1);
  EXPECT_EQ(follower.watches(), 0u);
  follower.Stop();  // before the counters its watches point at go away
}

TEST_F(FollowerTest, OneChangeWakesTenThousandWatchers) {
  Follower follower({}, *st, catalog, metrics);
  ASSERT_TRUE(follower.Load().ok());
  follower.Start();
  ASSERT_TRUE(st->Put(MakeInstance("hot"), {}).ok());
  ASSERT_TRUE(follower.WaitApplied(1, kDeadline));
  std::atomic<int> fired{0};
  for (int i = 0; i < 10000; ++i) follower.Watch("hot", 1, [&](int64_t) { ++fired; });
  EXPECT_EQ(follower.watches(), 10000u);
  ASSERT_TRUE(st->Put(MakeInstance("hot", {"10.0.0.1"}), {}).ok());
  ASSERT_TRUE(follower.WaitApplied(2, kDeadline));
  EXPECT_EQ(fired.load(), 10000);
  EXPECT_EQ(follower.watches(), 0u);
  follower.Stop();
}

TEST_F(FollowerTest, StopFailsPendingReadYourWritesWaits) {
  Follower follower({}, *st, catalog, metrics);
  ASSERT_TRUE(follower.Load().ok());
  common::Status got = common::Status::Ok();
  bool called = false;
  follower.WhenApplied(99, [&](common::Status s) {
    got = s;
    called = true;
  });
  EXPECT_FALSE(called);
  follower.Stop();
  EXPECT_TRUE(called);
  EXPECT_EQ(got.code(), common::Code::kUnavailable);
  // Already applied: at once.
  bool now = false;
  common::MetricsRegistry fresh_metrics;
  Follower fresh({}, *st, catalog, fresh_metrics);
  fresh.WhenApplied(0, [&](common::Status s) { now = s.ok(); });
  EXPECT_TRUE(now);
}

}  // namespace
}  // namespace openimds::feed
