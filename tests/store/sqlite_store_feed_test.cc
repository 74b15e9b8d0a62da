// SqliteStore's change feed (ChangesSince), its migration from schema 1, and
// Scan.

#include <gmock/gmock.h>
#include <algorithm>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "model/instance_json.h"
#include "store/sqlite_store.h"
#include "store/store_testing.h"

namespace openimds::store {
namespace {

using common::Code;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

std::unique_ptr<SqliteStore> OpenWith(SqliteStore::Options options) {
  auto store = SqliteStore::Open(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(*store) : nullptr;
}

// Follows the feed from `since` in pages of `max`, applying each page to
// `view` (id -> (instance, revision)); returns the last `through`.
int64_t Follow(Store& store, int64_t since, size_t max,
               std::map<std::string, StoredInstance>& view, int* pages = nullptr) {
  for (;;) {
    auto page = store.ChangesSince(since, max);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    if (!page.ok()) return since;
    EXPECT_FALSE(page->resync_required) << page->resync_reason;
    if (page->resync_required) return since;
    EXPECT_LE(page->changes.size(), max);
    std::set<std::string> ids;
    int64_t previous = since;
    for (const Change& c : page->changes) {
      EXPECT_TRUE(ids.insert(c.id).second) << "id twice in one page: " << c.id;
      EXPECT_GT(c.revision, previous);  // ordered by revision, inside (since, through]
      EXPECT_LE(c.revision, page->through);
      previous = c.revision;
      if (c.instance) {
        view[c.id] = StoredInstance{*c.instance, c.instance_revision};
      } else {
        EXPECT_EQ(c.instance_revision, 0);
        view.erase(c.id);
      }
    }
    if (pages != nullptr) ++*pages;
    if (page->through == since) return since;  // nothing new
    EXPECT_GT(page->through, since);
    since = page->through;
    if (since >= page->latest) return since;
  }
}

void ExpectViewMatches(Store& store, const std::map<std::string, StoredInstance>& view) {
  auto list = store.List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), view.size());
  for (const StoredInstance& s : *list) {
    auto it = view.find(s.instance.id);
    ASSERT_NE(it, view.end()) << s.instance.id;
    EXPECT_EQ(it->second.instance, s.instance);
    EXPECT_EQ(it->second.revision, s.revision);
  }
}

class FeedTest : public StoreFixture {};

TEST_F(FeedTest, EmptyStoreHasAnEmptyFeed) {
  auto page = store_->ChangesSince(0, 10);
  ASSERT_TRUE(page.ok());
  EXPECT_FALSE(page->resync_required);
  EXPECT_TRUE(page->changes.empty());
  EXPECT_EQ(page->through, 0);
  EXPECT_EQ(page->latest, 0);
}

TEST_F(FeedTest, EveryRevisionHasOneLogEntry) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-a"), {}).ok());
  ASSERT_TRUE(store_->PutMany({MakeInstance("i-b"), MakeInstance("i-c")}).ok());
  ASSERT_TRUE(store_->Delete("i-b", {}).ok());
  std::vector<Write> writes;
  writes.push_back(WriteOf({PutOf(MakeInstance("i-d")), DeleteOf("i-c")}));
  writes.push_back(WriteOf({RefuseOf("i-e", common::FailedPrecondition("no"))}));
  writes.push_back(WriteOf({PutOf(MakeInstance("i-e"))}));
  ASSERT_TRUE(store_->Commit(writes).ok());
  EXPECT_EQ(*store_->LatestRevision(), 7);
  EXPECT_EQ(RawQueryText(path_, "SELECT group_concat(revision || ':' || id, ' ') FROM "
                                "(SELECT * FROM changes ORDER BY revision)"),
            "1:i-a 2:i-b 3:i-c 4:i-b 5:i-d 6:i-c 7:i-e");
}

TEST_F(FeedTest, SmallPagesCoverEverythingOnce) {
  // A history of puts, replacements and deletes over a dozen ids.
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 12; ++i) {
      const std::string id = "i-" + std::to_string(i);
      if ((i + round) % 4 == 3) {
        (void)store_->Delete(id, {});
      } else {
        model::Instance in = MakeInstance(id);
        in.name = "round " + std::to_string(round);
        ASSERT_TRUE(store_->Put(in, {}).ok());
      }
    }
  }
  const int64_t latest = *store_->LatestRevision();
  ASSERT_GT(latest, 40);

  for (size_t max : {1u, 2u, 7u, 1000u}) {
    std::map<std::string, StoredInstance> view;
    int pages = 0;
    EXPECT_EQ(Follow(*store_, 0, max, view, &pages), latest) << max;
    ExpectViewMatches(*store_, view);
    if (max == 1) {
      EXPECT_EQ(pages, latest);
    }
  }
  // From the middle: a view built at some revision catches up too.
  std::map<std::string, StoredInstance> view;
  Follow(*store_, 0, 1000, view);
  ASSERT_TRUE(store_->Put(MakeInstance("i-new"), {}).ok());
  (void)store_->Delete("i-0", {});
  EXPECT_EQ(Follow(*store_, latest, 3, view), *store_->LatestRevision());
  ExpectViewMatches(*store_, view);
}

TEST_F(FeedTest, RepeatedChangesToOneIdFoldIntoItsFinalState) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-a"), {}).ok());                      // 1
  ASSERT_TRUE(store_->Put(MakeInstance("i-b", {"10.0.0.2"}), {}).ok());        // 2
  ASSERT_TRUE(store_->Put(MakeInstance("i-a", {"10.0.0.1"}), {}).ok());        // 3
  ASSERT_TRUE(store_->Delete("i-a", {}).ok());                                 // 4
  ASSERT_TRUE(store_->Put(MakeInstance("i-c"), {}).ok());                      // 5
  ASSERT_TRUE(store_->Put(MakeInstance("i-b", {"10.0.0.9"}), {}).ok());        // 6

  auto page = store_->ChangesSince(0, 100);
  ASSERT_TRUE(page.ok());
  ASSERT_FALSE(page->resync_required) << page->resync_reason;
  EXPECT_EQ(page->through, 6);
  EXPECT_EQ(page->latest, 6);
  ASSERT_EQ(page->changes.size(), 3u);
  EXPECT_EQ(page->changes[0].id, "i-a");
  EXPECT_EQ(page->changes[0].revision, 4);
  EXPECT_FALSE(page->changes[0].instance != nullptr);
  EXPECT_EQ(page->changes[1].id, "i-c");
  EXPECT_EQ(page->changes[1].revision, 5);
  EXPECT_EQ(page->changes[2].id, "i-b");
  EXPECT_EQ(page->changes[2].revision, 6);
  ASSERT_TRUE(page->changes[2].instance != nullptr);
  EXPECT_EQ(*page->changes[2].instance, MakeInstance("i-b", {"10.0.0.9"}));
  EXPECT_EQ(page->changes[2].instance_revision, 6);

  // A page that ends before a later change still carries the newest state.
  page = store_->ChangesSince(0, 2);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->through, 2);
  ASSERT_EQ(page->changes.size(), 2u);
  EXPECT_EQ(page->changes[0].id, "i-a");
  EXPECT_FALSE(page->changes[0].instance != nullptr);
  EXPECT_EQ(page->changes[1].id, "i-b");
  EXPECT_EQ(page->changes[1].revision, 2);
  EXPECT_EQ(page->changes[1].instance_revision, 6);
}

TEST_F(FeedTest, ReaderBehindTheCompactedFeedMustResync) {
  SqliteStore::Options options;
  options.path = dir_.File("compact.db");
  options.feed_retention = 10;
  options.feed_compact_every = 16;
  auto store = OpenWith(options);
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(store->Put(MakeInstance("i-" + std::to_string(i % 7)), {}).ok());
  // Compacted when revision 32 was reached: entries <= 22 are gone.
  EXPECT_EQ(RawQueryText(options.path, "SELECT value FROM meta WHERE key = 'feed_floor'"), "22");
  EXPECT_EQ(RawQueryText(options.path, "SELECT min(revision) FROM changes"), "23");

  auto page = store->ChangesSince(5, 100);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->resync_required);
  EXPECT_THAT(page->resync_reason, HasSubstr("compacted"));
  EXPECT_TRUE(page->changes.empty());
  EXPECT_EQ(page->latest, 40);

  std::map<std::string, StoredInstance> view;
  auto scanned = store->Scan([&](SharedInstance&& shared) {
    StoredInstance s{*shared.instance, shared.revision};
    view[s.instance.id] = std::move(s);
    return common::Status::Ok();
  });
  ASSERT_TRUE(scanned.ok());
  EXPECT_EQ(*scanned, 40);
  // From the floor itself the feed is whole.
  std::map<std::string, StoredInstance> from_floor = view;
  EXPECT_EQ(Follow(*store, 22, 4, from_floor), 40);
  ExpectViewMatches(*store, from_floor);
}

TEST_F(FeedTest, AGapInTheLogMeansResync) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store_->Put(MakeInstance("i-" + std::to_string(i)), {}).ok());
  RawExec(path_, "DELETE FROM changes WHERE revision = 3");
  auto page = store_->ChangesSince(0, 100);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->resync_required);
  EXPECT_THAT(page->resync_reason, StartsWith("gap in the change feed after revision 2"));
  EXPECT_TRUE(page->changes.empty());
  EXPECT_EQ(page->through, 0);
  // Past the hole the feed is fine.
  page = store_->ChangesSince(3, 100);
  ASSERT_TRUE(page.ok());
  EXPECT_FALSE(page->resync_required);
  EXPECT_EQ(page->changes.size(), 2u);

  // A hole at the end (entries missing up to latest).
  RawExec(path_, "DELETE FROM changes WHERE revision = 5");
  page = store_->ChangesSince(3, 100);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->resync_required);
  EXPECT_THAT(page->resync_reason, StartsWith("gap in the change feed after revision 4"));
  page = store_->ChangesSince(4, 100);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->resync_required);
  EXPECT_THAT(page->resync_reason, StartsWith("gap in the change feed after revision 4"));
}

TEST_F(FeedTest, ACorruptRecordMeansResync) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-a"), {}).ok());
  ASSERT_TRUE(store_->Put(MakeInstance("i-b"), {}).ok());
  RawExec(path_, "UPDATE instances SET json = '{\"id\":' WHERE id = 'i-b'");
  auto page = store_->ChangesSince(0, 100);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->resync_required);
  EXPECT_THAT(page->resync_reason, HasSubstr("stored instance i-b does not parse"));
  EXPECT_TRUE(page->changes.empty());
  // Scan says the same, as an error.
  auto scanned = store_->Scan([](SharedInstance&&) { return common::Status::Ok(); });
  EXPECT_EQ(scanned.status().code(), Code::kInternal);
  EXPECT_THAT(scanned.status().message(), HasSubstr("i-b"));
}

TEST_F(FeedTest, AReaderAheadOfTheStoreMustResync) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-a"), {}).ok());
  auto page = store_->ChangesSince(100, 10);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->resync_required);
  EXPECT_THAT(page->resync_reason, HasSubstr("the store was replaced or restored"));
  EXPECT_EQ(page->latest, 1);
}

TEST_F(FeedTest, TwoStoreObjectsOnOneFileSeeEachOthersWrites) {
  auto other = OpenStore(path_);
  ASSERT_NE(other, nullptr);
  std::map<std::string, StoredInstance> view_a;
  std::map<std::string, StoredInstance> view_b;
  ASSERT_TRUE(store_->Put(MakeInstance("i-a"), {}).ok());
  ASSERT_TRUE(store_->PutMany({MakeInstance("i-b"), MakeInstance("i-c")}).ok());
  EXPECT_EQ(Follow(*other, 0, 2, view_b), 3);
  ExpectViewMatches(*store_, view_b);

  ASSERT_TRUE(other->Delete("i-b", {}).ok());
  ASSERT_TRUE(other->Put(MakeInstance("i-d"), {}).ok());
  EXPECT_EQ(Follow(*store_, 0, 100, view_a), 5);
  EXPECT_EQ(Follow(*other, 3, 100, view_b), 5);
  ExpectViewMatches(*store_, view_a);
  ExpectViewMatches(*store_, view_b);
}

// --- Migration from schema 1 --------------------------------------------------

// Schema step 1 exactly as released: a store written before the feed existed.
constexpr const char* kSchemaV1 = R"sql(
  CREATE TABLE instances (
    id TEXT PRIMARY KEY NOT NULL,
    revision INTEGER NOT NULL,
    json TEXT NOT NULL
  );
  CREATE TABLE addresses (
    network TEXT NOT NULL,
    address TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    PRIMARY KEY (network, address)
  ) WITHOUT ROWID;
  CREATE INDEX addresses_by_instance ON addresses (instance_id);
  CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value
  );
  INSERT INTO meta (key, value) VALUES ('revision', 0);
  CREATE TABLE secrets (
    name TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
  );
  PRAGMA user_version = 1;
)sql";

std::string InsertV1(const model::Instance& in, int64_t revision) {
  std::string json = model::ToJsonText(in);
  std::string quoted;
  for (char c : json) {
    quoted += c;
    if (c == '\'') quoted += '\'';
  }
  return "INSERT INTO instances (id, revision, json) VALUES ('" + in.id + "', " +
         std::to_string(revision) + ", '" + quoted + "');";
}

TEST(FeedMigrationTest, AVersion1StoreStartsItsFeedAtItsRevision) {
  TempDir dir;
  const std::string path = dir.File("v1.db");
  RawExec(path, std::string(kSchemaV1) + InsertV1(MakeInstance("i-a", {"10.0.0.1"}), 1) +
                    InsertV1(MakeInstance("i-b"), 3) +
                    "INSERT INTO addresses VALUES ('default', '10.0.0.1', 'i-a');"
                    "UPDATE meta SET value = 3 WHERE key = 'revision';");

  SqliteStore::Options options;
  options.path = path;
  options.max_instances = 3;
  auto store = OpenWith(options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(RawQueryText(path, "PRAGMA user_version"),
            std::to_string(SqliteStore::kSchemaVersion));
  EXPECT_EQ(RawQueryText(path, "SELECT value FROM meta WHERE key = 'instance_count'"), "2");

  // History before revision 3 is unknown: a reader from 0 must resync.
  auto page = store->ChangesSince(0, 100);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->resync_required);
  EXPECT_THAT(page->resync_reason, StartsWith("the store predates the change feed"));
  EXPECT_EQ(page->latest, 3);
  page = store->ChangesSince(2, 100);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->resync_required);

  // ... and follows on from the revision a Scan returns.
  std::vector<std::string> ids;
  auto scanned = store->Scan([&](SharedInstance&& shared) {
    StoredInstance s{*shared.instance, shared.revision};
    ids.push_back(s.instance.id);
    return common::Status::Ok();
  });
  ASSERT_TRUE(scanned.ok());
  EXPECT_EQ(*scanned, 3);
  EXPECT_THAT(ids, UnorderedElementsAre("i-a", "i-b"));
  page = store->ChangesSince(3, 100);
  ASSERT_TRUE(page.ok());
  EXPECT_FALSE(page->resync_required);
  EXPECT_TRUE(page->changes.empty());

  ASSERT_TRUE(store->Put(MakeInstance("i-c"), {}).ok());
  page = store->ChangesSince(3, 100);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->changes.size(), 1u);
  EXPECT_EQ(page->changes[0].id, "i-c");
  EXPECT_EQ(page->changes[0].revision, 4);
  // The migrated count feeds --max-instances.
  EXPECT_EQ(store->Put(MakeInstance("i-d"), {}).status().code(), Code::kInsufficientStorage);
  // The migrated address index still holds (replacing is allowed at the limit).
  EXPECT_EQ(store->Put(MakeInstance("i-b", {"10.0.0.1"}), {}).status().code(), Code::kConflict);
}

TEST(FeedMigrationTest, AnEmptyVersion1StoreHasTheWholeFeed) {
  TempDir dir;
  const std::string path = dir.File("v1.db");
  RawExec(path, kSchemaV1);
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put(MakeInstance("i-a"), {}).ok());
  auto page = store->ChangesSince(0, 100);
  ASSERT_TRUE(page.ok());
  EXPECT_FALSE(page->resync_required) << page->resync_reason;
  EXPECT_EQ(page->changes.size(), 1u);
}

// --- Scan -----------------------------------------------------------------------

TEST_F(FeedTest, ScanStreamsEverythingInIdOrder) {
  auto empty = store_->Scan([](SharedInstance&&) {
    ADD_FAILURE() << "sink called on an empty store";
    return common::Status::Ok();
  });
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, 0);

  ASSERT_TRUE(store_->PutMany({MakeInstance("i-c", {"10.0.0.3"}), MakeInstance("i-a"),
                               MakeInstance("i-b", {"fd00::2"})})
                  .ok());
  ASSERT_TRUE(store_->Put(MakeInstance("i-a", {"10.0.0.1"}), {}).ok());
  std::vector<StoredInstance> seen;
  auto latest = store_->Scan([&](SharedInstance&& shared) {
    StoredInstance s{*shared.instance, shared.revision};
    // The sink may use the store: Scan holds no lock of this object.
    EXPECT_TRUE(store_->Get(s.instance.id).ok());
    seen.push_back(std::move(s));
    return common::Status::Ok();
  });
  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  EXPECT_EQ(*latest, 4);
  auto list = store_->List();
  ASSERT_EQ(seen.size(), list->size());
  // Scan's order is the table's; List's is by id.
  std::sort(seen.begin(), seen.end(), [](const StoredInstance& a, const StoredInstance& b) {
    return a.instance.id < b.instance.id;
  });
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].instance, (*list)[i].instance);
    EXPECT_EQ(seen[i].revision, (*list)[i].revision);
  }
  EXPECT_THAT(Ids(seen), ElementsAre("i-a", "i-b", "i-c"));
}

TEST_F(FeedTest, ASinkErrorStopsTheScan) {
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(store_->Put(MakeInstance("i-" + std::to_string(i)), {}).ok());
  }
  int calls = 0;
  auto result = store_->Scan([&](SharedInstance&&) {
    return ++calls == 4 ? common::Unavailable("reader went away") : common::Status::Ok();
  });
  EXPECT_EQ(result.status().code(), Code::kUnavailable);
  EXPECT_EQ(result.status().message(), "reader went away");
  EXPECT_EQ(calls, 4);
}

class ScanThreadsTest : public ::testing::TestWithParam<unsigned> {};

TEST_P(ScanThreadsTest, ParsesInParallelAndKeepsTheOrder) {
  TempDir dir;
  SqliteStore::Options options;
  options.path = dir.File("store.db");
  options.scan_threads = GetParam();
  auto store = OpenWith(options);
  ASSERT_NE(store, nullptr);
  // A few thousand rows: several batches in flight at once.
  constexpr int kCount = 3000;
  std::vector<model::Instance> batch;
  for (int i = 0; i < kCount; ++i) {
    model::Instance in = MakeInstance("i-" + std::to_string(i),
                                      {"10." + std::to_string(i / 250) + "." +
                                       std::to_string(i % 250) + ".1"});
    in.user_data = std::string(200 + i % 100, 'x');
    batch.push_back(std::move(in));
  }
  ASSERT_TRUE(store->PutMany(batch).ok());
  ASSERT_TRUE(store->Delete("i-17", {}).ok());

  auto list = store->List();
  ASSERT_TRUE(list.ok());
  std::map<std::string, const StoredInstance*> listed;
  for (const StoredInstance& s : *list) listed.emplace(s.instance.id.view(), &s);
  size_t n = 0;
  bool same = true;
  auto latest = store->Scan([&](SharedInstance&& shared) {
    auto it = listed.find(std::string(shared.instance->id.view()));
    if (it == listed.end() || !(it->second->instance == *shared.instance) ||
        it->second->revision != shared.revision) {
      same = false;
    }
    ++n;
    return common::Status::Ok();
  });
  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  EXPECT_EQ(*latest, kCount + 1);
  EXPECT_EQ(n, static_cast<size_t>(kCount - 1));
  EXPECT_TRUE(same);

  // A sink error while other batches are being parsed stops cleanly.
  int calls = 0;
  auto stopped = store->Scan([&](SharedInstance&&) {
    return ++calls == 1500 ? common::Internal("enough") : common::Status::Ok();
  });
  EXPECT_EQ(stopped.status().message(), "enough");
  EXPECT_EQ(calls, 1500);
}

INSTANTIATE_TEST_SUITE_P(Threads, ScanThreadsTest, ::testing::Values(0u, 1u, 3u),
                         [](const auto& info) { return "T" + std::to_string(info.param); });

}  // namespace
}  // namespace openimds::store
