// SqliteStore's incarnations (model::ServerManaged): assigned by the write
// that creates a record, kept by updates, new after a delete and a re-create,
// and the same through every read path (Get, List, Scan, the change feed, a
// second connection, a restart) and after the migration from schema 2.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "model/instance_json.h"
#include "store/sqlite_store.h"
#include "store/store_testing.h"

namespace openimds::store {
namespace {

int64_t IncarnationOf(Store& store, const std::string& id) {
  auto got = store.Get(id);
  EXPECT_TRUE(got.ok()) << got.status().ToString();
  return got.ok() ? got->instance.managed.incarnation : -1;
}

// Every path that hands out records, by id.
std::map<std::string, int64_t> ScannedIncarnations(Store& store) {
  std::map<std::string, int64_t> out;
  auto scanned = store.Scan([&](SharedInstance&& s) {
    out[s.instance->id] = s.instance->managed.incarnation;
    return common::Status::Ok();
  });
  EXPECT_TRUE(scanned.ok()) << scanned.status().ToString();
  return out;
}

std::map<std::string, int64_t> FeedIncarnations(Store& store, int64_t since) {
  std::map<std::string, int64_t> out;
  auto page = store.ChangesSince(since, 1000);
  EXPECT_TRUE(page.ok()) << page.status().ToString();
  if (!page.ok()) return out;
  EXPECT_FALSE(page->resync_required) << page->resync_reason;
  for (const Change& c : page->changes) {
    out[c.id] = c.instance ? c.instance->managed.incarnation : 0;
  }
  return out;
}

// A merge-patch-like update: the record as stored with one field changed.
Mutation Rename(std::string id, std::string name) {
  return Mutation{std::move(id),
                  [name](const StoredInstance* current)
                      -> common::Result<std::optional<model::Instance>> {
                    model::Instance next = current->instance;
                    next.name = name;
                    return std::optional<model::Instance>(next);
                  }};
}

class IncarnationTest : public StoreFixture {};

TEST_F(IncarnationTest, CreateAssignsUpdatesKeepDeleteAndCreateRenews) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-other", {"10.0.0.9"}), {}).ok());  // revision 1
  auto created = store_->Put(MakeInstance("i-a", {"10.0.0.1"}), {});
  ASSERT_TRUE(created.ok());
  const int64_t first = *created;
  EXPECT_EQ(IncarnationOf(*store_, "i-a"), first) << "the revision of the creating write";
  EXPECT_EQ(IncarnationOf(*store_, "i-other"), 1);

  // Updates: a whole replacement, a read-modify-write, a no-op.
  model::Instance replaced = MakeInstance("i-a", {"10.0.0.2"});
  replaced.managed.incarnation = 999;  // not the client's to set: ignored
  auto put = store_->Put(replaced, {});
  ASSERT_TRUE(put.ok());
  EXPECT_GT(*put, first);
  EXPECT_EQ(IncarnationOf(*store_, "i-a"), first);

  std::vector<Write> writes;
  writes.push_back(WriteOf({Rename("i-a", "renamed")}));
  auto outcomes = store_->Commit(writes);
  ASSERT_TRUE(outcomes.ok() && (*outcomes)[0].status.ok());
  EXPECT_TRUE((*outcomes)[0].mutations[0].changed);
  EXPECT_EQ((*outcomes)[0].mutations[0].incarnation, first);
  EXPECT_EQ(IncarnationOf(*store_, "i-a"), first);

  writes.clear();
  writes.push_back(WriteOf({Rename("i-a", "renamed")}));
  outcomes = store_->Commit(writes);
  ASSERT_TRUE(outcomes.ok() && (*outcomes)[0].status.ok());
  EXPECT_FALSE((*outcomes)[0].mutations[0].changed);
  EXPECT_EQ((*outcomes)[0].mutations[0].incarnation, first);

  // Delete, then the same record again: a new life of the id.
  ASSERT_TRUE(store_->Delete("i-a", {}).ok());
  auto recreated = store_->Put(MakeInstance("i-a", {"10.0.0.2"}), {});
  ASSERT_TRUE(recreated.ok());
  EXPECT_EQ(IncarnationOf(*store_, "i-a"), *recreated);
  EXPECT_NE(*recreated, first);

  // Every read path agrees: List, Scan, the feed (this connection's, which
  // hands out the records it wrote, and another's, which parses the rows).
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].instance.managed.incarnation, *recreated);
  const std::map<std::string, int64_t> want = {{"i-a", *recreated}, {"i-other", 1}};
  EXPECT_EQ(ScannedIncarnations(*store_), want);
  EXPECT_EQ(FeedIncarnations(*store_, 0), want);
  auto other = OpenStore(path_);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(FeedIncarnations(*other, 0), want);

  // A restart reads them back from the file.
  store_.reset();
  other.reset();
  store_ = OpenStore(path_);
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(IncarnationOf(*store_, "i-a"), *recreated);
  EXPECT_EQ(ScannedIncarnations(*store_), want);
}

// Two Writes of one Commit: the first deletes, the second creates again.
TEST_F(IncarnationTest, DeleteAndCreateInOneCommit) {
  auto created = store_->Put(MakeInstance("i-a", {"10.0.0.1"}), {});
  ASSERT_TRUE(created.ok());
  std::vector<Write> writes;
  writes.push_back(WriteOf({DeleteOf("i-a")}));
  writes.push_back(WriteOf({PutOf(MakeInstance("i-a", {"10.0.0.1"}))}));
  auto outcomes = store_->Commit(writes);
  ASSERT_TRUE(outcomes.ok());
  ASSERT_TRUE((*outcomes)[1].status.ok());
  const MutationOutcome& again = (*outcomes)[1].mutations[0];
  EXPECT_FALSE(again.existed);
  EXPECT_EQ(again.incarnation, again.revision);
  EXPECT_EQ((*outcomes)[0].mutations[0].incarnation, 0) << "deleted: no incarnation";
  EXPECT_EQ(IncarnationOf(*store_, "i-a"), again.revision);
  EXPECT_NE(again.revision, *created);
  EXPECT_EQ(FeedIncarnations(*store_, *created).at("i-a"), again.revision);
}

// Schema 2 exactly as released (steps 1 and 2), with rows in it.
constexpr const char* kSchemaV2 = R"sql(
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
  CREATE TABLE changes (
    revision INTEGER PRIMARY KEY NOT NULL,
    id TEXT NOT NULL
  );
  INSERT INTO meta (key, value) SELECT 'feed_floor', value FROM meta WHERE key = 'revision';
  INSERT INTO meta (key, value) SELECT 'feed_origin', value FROM meta WHERE key = 'revision';
  INSERT INTO meta (key, value) SELECT 'instance_count', count(*) FROM instances;
  PRAGMA user_version = 2;
)sql";

std::string InsertV2(const model::Instance& in, int64_t revision) {
  std::string quoted;
  for (char c : model::ToJsonText(in)) {
    quoted += c;
    if (c == '\'') quoted += '\'';
  }
  return "INSERT INTO instances (id, revision, json) VALUES ('" + in.id + "', " +
         std::to_string(revision) + ", '" + quoted + "');" +
         "INSERT INTO changes (revision, id) VALUES (" + std::to_string(revision) + ", '" + in.id +
         "');";
}

// Rows written before incarnations existed take their revision: unique per
// row, below every revision to come, so a later delete and re-create still
// gives a new one.
TEST(IncarnationMigrationTest, Version2RowsTakeTheirRevision) {
  TempDir dir;
  const std::string path = dir.File("v2.db");
  RawExec(path, std::string(kSchemaV2) + InsertV2(MakeInstance("i-a"), 1) +
                    InsertV2(MakeInstance("i-b"), 2) +
                    "UPDATE meta SET value = 2 WHERE key = 'revision';"
                    "UPDATE meta SET value = 2 WHERE key = 'instance_count';");
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(RawQueryText(path, "PRAGMA user_version"), std::to_string(SqliteStore::kSchemaVersion));
  EXPECT_EQ(IncarnationOf(*store, "i-a"), 1);
  EXPECT_EQ(IncarnationOf(*store, "i-b"), 2);

  auto updated = store->Put(MakeInstance("i-a"), {});
  ASSERT_TRUE(updated.ok());
  EXPECT_EQ(IncarnationOf(*store, "i-a"), 1);
  ASSERT_TRUE(store->Delete("i-b", {}).ok());
  auto recreated = store->Put(MakeInstance("i-b"), {});
  ASSERT_TRUE(recreated.ok());
  EXPECT_EQ(IncarnationOf(*store, "i-b"), *recreated);
  EXPECT_GT(*recreated, 2);
}

}  // namespace
}  // namespace openimds::store
