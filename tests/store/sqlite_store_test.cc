#include "store/sqlite_store.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <latch>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "model/instance_json.h"
#include "store/store_testing.h"

namespace openimds::store {
namespace {

using common::Code;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class SqliteStoreTest : public StoreFixture {};

TEST_F(SqliteStoreTest, PutGetListDelete) {
  EXPECT_EQ(store_->Get("i-a").status().code(), Code::kNotFound);
  auto r1 = store_->Put(MakeInstance("i-b", {"10.0.0.2"}), {});
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();
  auto r2 = store_->Put(MakeInstance("i-a", {"10.0.0.1", "fd00::1"}), {});
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  auto r3 = store_->Put(MakeInstance("i-c"), {});
  ASSERT_TRUE(r3.ok()) << r3.status().ToString();

  auto got = store_->Get("i-a");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->instance, MakeInstance("i-a", {"10.0.0.1", "fd00::1"}));
  EXPECT_EQ(got->revision, *r2);

  auto list = store_->List();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_THAT(Ids(*list), ::testing::ElementsAre("i-a", "i-b", "i-c"));
  EXPECT_EQ((*list)[1].revision, *r1);

  ASSERT_TRUE(store_->Delete("i-b", {}).ok());
  EXPECT_EQ(store_->Get("i-b").status().code(), Code::kNotFound);
  common::Status again = store_->Delete("i-b", {});
  EXPECT_EQ(again.code(), Code::kNotFound);
  EXPECT_EQ(again.message(), "no instance i-b");
  list = store_->List();
  ASSERT_TRUE(list.ok());
  EXPECT_THAT(Ids(*list), ::testing::ElementsAre("i-a", "i-c"));
}

TEST_F(SqliteStoreTest, RevisionsGrowAndAreNeverReused) {
  EXPECT_EQ(*store_->LatestRevision(), 0);
  std::vector<int64_t> seen;
  seen.push_back(*store_->Put(MakeInstance("i-a"), {}));
  seen.push_back(*store_->Put(MakeInstance("i-b"), {}));
  seen.push_back(*store_->Put(MakeInstance("i-a"), {}));
  ASSERT_TRUE(store_->Delete("i-a", {}).ok());
  const int64_t after_delete = *store_->LatestRevision();
  // Re-created after a delete: a revision an old ETag can never match.
  seen.push_back(*store_->Put(MakeInstance("i-a"), {}));
  auto many = store_->PutMany({MakeInstance("i-x"), MakeInstance("i-y")});
  ASSERT_TRUE(many.ok());
  for (int64_t r : *many) seen.push_back(r);

  for (size_t i = 1; i < seen.size(); ++i) EXPECT_GT(seen[i], seen[i - 1]);
  EXPECT_GT(after_delete, seen[2]);  // the delete took a revision of its own
  EXPECT_GT(seen[3], after_delete);
  EXPECT_EQ(*store_->LatestRevision(), seen.back());
  EXPECT_EQ(store_->Get("i-a")->revision, seen[3]);
}

struct PreconditionCase {
  const char* name;
  bool exists;                      // is i-a stored (at revision `stored`) beforehand?
  std::optional<int64_t> expected;  // relative: kCurrent means "the stored revision"
  Code put;                         // outcome of Put
  Code del;                         // outcome of Delete
  const char* message;              // Put's message must contain this
};
constexpr int64_t kCurrent = -1000;
void PrintTo(const PreconditionCase& c, std::ostream* os) { *os << c.name; }

class PreconditionTest : public SqliteStoreTest,
                         public ::testing::WithParamInterface<PreconditionCase> {};

TEST_P(PreconditionTest, PutAndDelete) {
  const PreconditionCase& c = GetParam();
  int64_t stored = 0;
  if (c.exists) {
    ASSERT_TRUE(store_->Put(MakeInstance("i-a"), {}).ok());
    stored = *store_->Put(MakeInstance("i-a"), {});  // revision 2
  }
  Precondition pre;
  if (c.expected) pre.expected_revision = *c.expected == kCurrent ? stored : *c.expected;

  const int64_t before = *store_->LatestRevision();
  auto put = store_->Put(MakeInstance("i-a", {"10.0.0.1"}), pre);
  EXPECT_EQ(put.status().code(), c.put) << put.status().ToString();
  if (!put.ok()) {
    EXPECT_THAT(put.status().message(), HasSubstr(c.message));
    EXPECT_EQ(*store_->LatestRevision(), before);
    auto got = store_->Get("i-a");
    EXPECT_EQ(got.ok(), c.exists);
    if (got.ok()) {
      EXPECT_EQ(got->revision, stored);
    }
  }

  // Delete with the same precondition, against the state before the Put.
  TempDir other;
  auto fresh = OpenStore(other.File("store.db"));
  ASSERT_NE(fresh, nullptr);
  if (c.exists) {
    ASSERT_TRUE(fresh->Put(MakeInstance("i-a"), {}).ok());
    ASSERT_TRUE(fresh->Put(MakeInstance("i-a"), {}).ok());
  }
  common::Status del = fresh->Delete("i-a", pre);
  EXPECT_EQ(del.code(), c.del) << del.ToString();
  EXPECT_EQ(fresh->Get("i-a").ok(), c.exists && !del.ok());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PreconditionTest,
    ::testing::Values(
        PreconditionCase{"NoneAbsent", false, std::nullopt, Code::kOk, Code::kNotFound, ""},
        PreconditionCase{"NonePresent", true, std::nullopt, Code::kOk, Code::kOk, ""},
        PreconditionCase{"CreateOnlyAbsent", false, 0, Code::kOk, Code::kNotFound, ""},
        PreconditionCase{"CreateOnlyPresent", true, 0, Code::kFailedPrecondition,
                         Code::kFailedPrecondition, "instance i-a already exists (revision 2)"},
        PreconditionCase{"CurrentRevision", true, kCurrent, Code::kOk, Code::kOk, ""},
        PreconditionCase{"StaleRevision", true, 1, Code::kFailedPrecondition,
                         Code::kFailedPrecondition, "instance i-a is at revision 2, not 1"},
        PreconditionCase{"FutureRevision", true, 7, Code::kFailedPrecondition,
                         Code::kFailedPrecondition, "instance i-a is at revision 2, not 7"},
        PreconditionCase{"RevisionOfAbsent", false, 2, Code::kFailedPrecondition, Code::kNotFound,
                         "instance i-a does not exist (expected revision 2)"},
        PreconditionCase{"Negative", true, -5, Code::kInvalidArgument, Code::kInvalidArgument,
                         "expected revision -5 is negative"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(SqliteStoreTest, AddressConflictNamesTheHolder) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-abc", {"10.0.0.5", "fd00::5"}), {}).ok());
  const int64_t before = *store_->LatestRevision();

  auto clash = store_->Put(MakeInstance("i-new", {"10.0.0.9", "10.0.0.5"}), {});
  EXPECT_EQ(clash.status().code(), Code::kConflict);
  EXPECT_EQ(clash.status().message(),
            "address 10.0.0.5 in network default is held by instance i-abc");

  // Canonicalised before the index is consulted: FD00:0::5 is fd00::5.
  auto clash6 = store_->Put(MakeInstance("i-new", {"FD00:0::5"}), {});
  EXPECT_EQ(clash6.status().code(), Code::kConflict);
  EXPECT_THAT(clash6.status().message(), HasSubstr("address fd00::5 in network default"));

  EXPECT_EQ(store_->Get("i-new").status().code(), Code::kNotFound);
  EXPECT_EQ(*store_->LatestRevision(), before);
  // 10.0.0.9 was not left claimed by the failed write.
  EXPECT_TRUE(store_->Put(MakeInstance("i-other", {"10.0.0.9"}), {}).ok());

  // The same address in another network is another address.
  EXPECT_TRUE(store_->Put(MakeInstance("i-elsewhere", {"10.0.0.5"}, "tenant-b"), {}).ok());
}

TEST_F(SqliteStoreTest, ReplaceMovesAddresses) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-a", {"10.0.0.5", "10.0.0.6"}), {}).ok());
  // Re-Put without 10.0.0.5: it is free again, 10.0.0.6 is still held.
  ASSERT_TRUE(store_->Put(MakeInstance("i-a", {"10.0.0.6", "10.0.0.7"}), {}).ok());
  EXPECT_TRUE(store_->Put(MakeInstance("i-b", {"10.0.0.5"}), {}).ok());
  EXPECT_EQ(store_->Put(MakeInstance("i-c", {"10.0.0.6"}), {}).status().code(), Code::kConflict);
  EXPECT_EQ(store_->Put(MakeInstance("i-c", {"10.0.0.7"}), {}).status().code(), Code::kConflict);
  // Moving i-a to another network frees its addresses in the old one.
  ASSERT_TRUE(store_->Put(MakeInstance("i-a", {"10.0.0.6"}, "tenant-b"), {}).ok());
  EXPECT_TRUE(store_->Put(MakeInstance("i-c", {"10.0.0.6", "10.0.0.7"}), {}).ok());
  EXPECT_EQ(store_->Put(MakeInstance("i-d", {"10.0.0.6"}, "tenant-b"), {}).status().code(),
            Code::kConflict);
}

TEST_F(SqliteStoreTest, DeleteFreesAddresses) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-a", {"10.0.0.5", "fd00::5"}), {}).ok());
  ASSERT_EQ(store_->Put(MakeInstance("i-b", {"fd00::5"}), {}).status().code(), Code::kConflict);
  ASSERT_TRUE(store_->Delete("i-a", {}).ok());
  EXPECT_TRUE(store_->Put(MakeInstance("i-b", {"10.0.0.5", "fd00::5"}), {}).ok());
}

// The address table holds exactly what the records claim: a write that keeps
// its addresses leaves their rows alone, one that changes some moves only
// those, and rows agree with the records afterwards.
TEST_F(SqliteStoreTest, AddressRowsFollowTheRecords) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-a", {"10.0.0.5", "10.0.0.6"}), {}).ok());
  model::Instance tagged = MakeInstance("i-a", {"10.0.0.6", "10.0.0.5"});
  tagged.tags.insert_or_assign(model::Str("k"), model::Str("v"));
  ASSERT_TRUE(store_->Put(tagged, {}).ok());
  const std::string rows =
      "SELECT group_concat(network || ' ' || address || ' ' || instance_id, ', ') FROM "
      "(SELECT * FROM addresses ORDER BY network, address)";
  EXPECT_EQ(RawQueryText(path_, rows), "default 10.0.0.5 i-a, default 10.0.0.6 i-a");
  ASSERT_TRUE(store_->Put(MakeInstance("i-a", {"10.0.0.6", "10.0.0.7"}), {}).ok());
  EXPECT_EQ(RawQueryText(path_, rows), "default 10.0.0.6 i-a, default 10.0.0.7 i-a");
  ASSERT_TRUE(store_->Put(MakeInstance("i-a", {"10.0.0.7"}, "tenant-b"), {}).ok());
  EXPECT_EQ(RawQueryText(path_, rows), "tenant-b 10.0.0.7 i-a");
  ASSERT_TRUE(store_->Delete("i-a", {}).ok());
  EXPECT_EQ(RawQueryText(path_, "SELECT count(*) FROM addresses"), "0");
}

// A row whose holder's record does not claim the address (the instances
// table was edited behind the store) does not lock the address away.
TEST_F(SqliteStoreTest, AStaleAddressRowIsTakenOver) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-a", {"10.0.0.5"}), {}).ok());
  RawExec(path_,
          "INSERT INTO addresses (network, address, instance_id) VALUES "
          "('default', '10.0.0.9', 'i-a'), ('default', '10.0.0.10', 'i-gone');");
  ASSERT_TRUE(store_->Put(MakeInstance("i-b", {"10.0.0.9", "10.0.0.10"}), {}).ok());
  EXPECT_EQ(RawQueryText(path_, "SELECT group_concat(instance_id) FROM addresses WHERE "
                                "address IN ('10.0.0.9', '10.0.0.10')"),
            "i-b,i-b");
  // A real holder still wins.
  EXPECT_EQ(store_->Put(MakeInstance("i-c", {"10.0.0.5"}), {}).status().code(), Code::kConflict);
}

// The WAL is copied back into the database file by the store's own thread
// once it holds checkpoint_bytes, not only when the committing thread does it
// itself (inline_checkpoint_bytes) or when the last connection closes.
TEST(SqliteStoreCheckpointTest, TheBackgroundCheckpointerCopiesTheWalBack) {
  TempDir dir;
  SqliteStore::Options options;
  options.path = dir.File("store.db");
  options.checkpoint_bytes = 1;                        // after every commit
  options.inline_checkpoint_bytes = int64_t{1} << 40;  // never on the writer
  auto store = SqliteStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const auto size = [&] { return std::filesystem::file_size(options.path); };
  const auto before = size();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE((*store)->Put(MakeInstance("i-" + std::to_string(i)), {}).ok());
  }
  for (int i = 0; i < 500 && size() == before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GT(size(), before) << "nothing was checkpointed while the store was open";
}

TEST_F(SqliteStoreTest, RefusesInvalidInstances) {
  model::Instance bad = MakeInstance("i-a", {"10.0.0.5"});
  bad.nics[0].mac = "not-a-mac";
  auto put = store_->Put(bad, {});
  EXPECT_EQ(put.status().code(), Code::kInvalidArgument);
  EXPECT_THAT(put.status().message(), StartsWith("/nics/0/mac: "));
  EXPECT_EQ(store_->Get("i-a").status().code(), Code::kNotFound);
  EXPECT_EQ(*store_->LatestRevision(), 0);
}

TEST_F(SqliteStoreTest, StoresTheNormalizedRecord) {
  model::Instance in = MakeInstance("i-a");
  model::Nic second;
  second.mac = "02:00:00:00:00:AA";
  second.device_number = 1;
  second.ipv6s = {"FD00:0:0::7"};
  model::Nic first;
  first.mac = "02:00:00:00:00:01";
  first.private_ipv4s = {"10.0.0.5"};
  in.nics = {second, first};
  in.launch_time = model::TimePoint(std::chrono::milliseconds(1764075600123));
  ASSERT_TRUE(store_->Put(in, {}).ok());

  model::Normalize(in);
  auto got = store_->Get("i-a");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->instance, in);
  EXPECT_EQ(got->instance.nics[1].mac, "02:00:00:00:00:aa");
  EXPECT_EQ(got->instance.nics[1].ipv6s[0], "fd00::7");
  // The index holds the canonical address too.
  EXPECT_EQ(store_->Put(MakeInstance("i-b", {"fd00::7"}), {}).status().code(), Code::kConflict);
}

TEST_F(SqliteStoreTest, PutManyWritesAllInOrder) {
  auto revs = store_->PutMany(
      {MakeInstance("i-c", {"10.0.0.3"}), MakeInstance("i-a", {"10.0.0.1"}), MakeInstance("i-b")});
  ASSERT_TRUE(revs.ok()) << revs.status().ToString();
  ASSERT_EQ(revs->size(), 3u);
  EXPECT_EQ(store_->Get("i-c")->revision, (*revs)[0]);
  EXPECT_EQ(store_->Get("i-a")->revision, (*revs)[1]);
  EXPECT_EQ(store_->Get("i-b")->revision, (*revs)[2]);
  EXPECT_EQ(*store_->LatestRevision(), (*revs)[2]);

  auto empty = store_->PutMany({});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST_F(SqliteStoreTest, PutManyJudgesTheStateItLeaves) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-a", {"10.0.0.5"}), {}).ok());
  // i-b takes 10.0.0.5, which i-a (later in the batch) gives up.
  auto revs =
      store_->PutMany({MakeInstance("i-b", {"10.0.0.5"}), MakeInstance("i-a", {"10.0.0.6"})});
  ASSERT_TRUE(revs.ok()) << revs.status().ToString();
  EXPECT_EQ(store_->Put(MakeInstance("i-c", {"10.0.0.5"}), {}).status().code(), Code::kConflict);
}

struct BatchFailure {
  const char* name;
  std::vector<model::Instance> (*batch)();
  Code code;
  const char* message;
};

void PrintTo(const BatchFailure& c, std::ostream* os) { *os << c.name; }

class PutManyFailureTest : public SqliteStoreTest,
                           public ::testing::WithParamInterface<BatchFailure> {};

TEST_P(PutManyFailureTest, WritesNothing) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-holder", {"10.0.0.99"}), {}).ok());
  ASSERT_TRUE(store_->Put(MakeInstance("i-a", {"10.0.0.1"}), {}).ok());
  const auto before = store_->List();
  ASSERT_TRUE(before.ok());
  const int64_t revision = *store_->LatestRevision();

  auto result = store_->PutMany(GetParam().batch());
  EXPECT_EQ(result.status().code(), GetParam().code) << result.status().ToString();
  EXPECT_THAT(result.status().message(), StartsWith(GetParam().message));

  const auto after = store_->List();
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), before->size());
  for (size_t i = 0; i < after->size(); ++i) {
    EXPECT_EQ((*after)[i].instance, (*before)[i].instance);
    EXPECT_EQ((*after)[i].revision, (*before)[i].revision);
  }
  EXPECT_EQ(*store_->LatestRevision(), revision);
  // Items 0..2 of every batch below are writable on their own: nothing of them
  // stuck (i-a still holds its old address; 10.0.0.2 is free).
  EXPECT_EQ(store_->Put(MakeInstance("i-z", {"10.0.0.1"}), {}).status().code(), Code::kConflict);
  EXPECT_TRUE(store_->Put(MakeInstance("i-z", {"10.0.0.2"}), {}).ok());
}

// Items 0..2 are fine (item 1 replaces i-a and moves it to 10.0.0.2); item 3 fails.
std::vector<model::Instance> GoodThree() {
  return {MakeInstance("i-b"), MakeInstance("i-a", {"10.0.0.2"}), MakeInstance("i-c", {"fd00::3"})};
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PutManyFailureTest,
    ::testing::Values(
        BatchFailure{"AddressHeldOutside",
                     [] {
                       auto b = GoodThree();
                       b.push_back(MakeInstance("i-d", {"10.0.0.99"}));
                       return b;
                     },
                     Code::kConflict,
                     "instance 3 (i-d): address 10.0.0.99 in network default is held by "
                     "instance i-holder"},
        BatchFailure{"AddressClaimedTwiceInBatch",
                     [] {
                       auto b = GoodThree();
                       b.push_back(MakeInstance("i-d", {"10.0.0.2"}));
                       return b;
                     },
                     Code::kConflict,
                     "instance 3 (i-d): address 10.0.0.2 in network default is also claimed "
                     "by instance 1 (i-a) in this batch"},
        BatchFailure{"Invalid",
                     [] {
                       auto b = GoodThree();
                       b.push_back(MakeInstance("i-d"));
                       b.back().options.hop_limit = 0;
                       return b;
                     },
                     Code::kInvalidArgument,
                     "instance 3 (i-d): /metadata_options/hop_limit: 0 not in 1..64"},
        BatchFailure{"DuplicateId",
                     [] {
                       auto b = GoodThree();
                       b.push_back(MakeInstance("i-b"));
                       return b;
                     },
                     Code::kInvalidArgument, "instance 3 (i-b): id repeated (also instance 0)"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(SqliteStoreTest, PersistsAcrossReopen) {
  model::Instance rich = MakeInstance("i-a", {"10.0.0.5", "fd00::5"});
  rich.user_data = std::string("#!/bin/sh\n\0binary", 17);
  rich.tags = {{"Name", "demo"}};
  rich.iam = model::IamRole{"role", "", "", std::nullopt};
  const int64_t rev = *store_->Put(rich, {});
  ASSERT_TRUE(store_->PutSecret("token-key", std::string("\0\1\2secret", 9)).ok());
  store_.reset();

  auto reopened = OpenStore(path_);
  ASSERT_NE(reopened, nullptr);
  auto got = reopened->Get("i-a");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->instance, rich);
  EXPECT_EQ(got->revision, rev);
  EXPECT_EQ(**reopened->GetSecret("token-key"), std::string("\0\1\2secret", 9));
  EXPECT_EQ(*reopened->LatestRevision(), rev);
  // The sequence continues; the address index survived too.
  EXPECT_GT(*reopened->Put(MakeInstance("i-b"), {}), rev);
  EXPECT_EQ(reopened->Put(MakeInstance("i-c", {"fd00::5"}), {}).status().code(), Code::kConflict);
}

// A process that dies right after an acknowledged write (no destructor, no
// checkpoint) loses nothing.
TEST_F(SqliteStoreTest, AcknowledgedWriteSurvivesACrash) {
  store_.reset();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    SqliteStore::Options options;
    options.path = path_;
    auto store = SqliteStore::Open(options);
    if (!store.ok()) ::_exit(2);
    auto rev = (*store)->Put(MakeInstance("i-crash", {"10.0.0.5"}), {});
    ::_exit(rev.ok() && *rev == 1 ? 0 : 3);  // skips every destructor
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  // The WAL still holds the write: the child never checkpointed.
  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));

  auto reopened = OpenStore(path_);
  ASSERT_NE(reopened, nullptr);
  auto got = reopened->Get("i-crash");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->revision, 1);
}

TEST_F(SqliteStoreTest, FileIsPrivateAndInWalMode) {
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(RawQueryText(path_, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(RawQueryText(path_, "PRAGMA user_version"),
            std::to_string(SqliteStore::kSchemaVersion));
}

TEST_F(SqliteStoreTest, Secrets) {
  auto absent = store_->GetSecret("k");
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());

  EXPECT_EQ(*store_->GetOrCreateSecret("k", "first"), "first");
  EXPECT_EQ(*store_->GetOrCreateSecret("k", "second"), "first");
  EXPECT_EQ(**store_->GetSecret("k"), "first");
  ASSERT_TRUE(store_->PutSecret("k", "third").ok());
  EXPECT_EQ(*store_->GetOrCreateSecret("k", "fourth"), "third");

  // Bytes, not text; empty is a value, not NULL.
  const std::string binary("\0\xff\x80zero", 7);
  ASSERT_TRUE(store_->PutSecret("bin", binary).ok());
  EXPECT_EQ(**store_->GetSecret("bin"), binary);
  EXPECT_EQ(*store_->GetOrCreateSecret("empty", ""), "");
  auto empty = store_->GetSecret("empty");
  ASSERT_TRUE(empty.ok() && empty->has_value());
  EXPECT_EQ(**empty, "");

  EXPECT_EQ(store_->GetOrCreateSecret("", "x").status().code(), Code::kInvalidArgument);
  // Secrets take no instance revision.
  EXPECT_EQ(*store_->LatestRevision(), 0);
}

TEST_F(SqliteStoreTest, TwoStoresOnOneFileAgreeOnTheSecret) {
  auto other = OpenStore(path_);
  ASSERT_NE(other, nullptr);
  constexpr int kThreads = 8;
  constexpr int kNames = 20;
  std::vector<std::vector<std::string>> results(kThreads, std::vector<std::string>(kNames));
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      SqliteStore& store = t % 2 == 0 ? *store_ : *other;
      start.arrive_and_wait();
      for (int n = 0; n < kNames; ++n) {
        auto v =
            store.GetOrCreateSecret("name-" + std::to_string(n), "candidate-" + std::to_string(t));
        results[t][n] = v.ok() ? *v : "error: " + v.status().ToString();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int n = 0; n < kNames; ++n) {
    const std::string stored = **store_->GetSecret("name-" + std::to_string(n));
    EXPECT_THAT(stored, StartsWith("candidate-"));
    for (int t = 0; t < kThreads; ++t) EXPECT_EQ(results[t][n], stored) << t << " " << n;
  }
}

TEST_F(SqliteStoreTest, ProcessesRacingOnASecretAgree) {
  store_.reset();
  constexpr int kChildren = 6;
  int go[2];
  int out[2];
  ASSERT_EQ(::pipe(go), 0);
  ASSERT_EQ(::pipe(out), 0);
  std::vector<pid_t> children;
  for (int i = 0; i < kChildren; ++i) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(go[1]);
      ::close(out[0]);
      SqliteStore::Options options;
      options.path = path_;
      auto store = SqliteStore::Open(options);
      char c;
      // Everyone opens first, then all start together when the pipe closes.
      while (::read(go[0], &c, 1) > 0) {
      }
      std::string line = "error\n";
      if (store.ok()) {
        auto v = (*store)->GetOrCreateSecret("race", "child-" + std::to_string(i));
        if (v.ok()) line = *v + "\n";
      }
      // One write below PIPE_BUF is atomic: lines never interleave.
      const bool written =
          ::write(out[1], line.data(), line.size()) == static_cast<ssize_t>(line.size());
      ::_exit(written ? 0 : 1);
    }
    children.push_back(pid);
  }
  ::close(go[0]);
  ::close(out[1]);
  ::close(go[1]);  // start
  std::string all;
  char buf[256];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof(buf))) > 0;) all.append(buf, n);
  ::close(out[0]);
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  std::vector<std::string> lines;
  for (size_t pos = 0, nl; (nl = all.find('\n', pos)) != std::string::npos; pos = nl + 1) {
    lines.push_back(all.substr(pos, nl - pos));
  }
  ASSERT_EQ(lines.size(), static_cast<size_t>(kChildren));
  auto store = OpenStore(path_);
  ASSERT_NE(store, nullptr);
  const std::string winner = **store->GetSecret("race");
  EXPECT_THAT(winner, StartsWith("child-"));
  for (const auto& line : lines) EXPECT_EQ(line, winner);
}

TEST_F(SqliteStoreTest, ConcurrentWritersGetDistinctRevisions) {
  auto other = OpenStore(path_);
  ASSERT_NE(other, nullptr);
  constexpr int kThreads = 4;
  constexpr int kEach = 25;
  std::vector<std::vector<int64_t>> revs(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      SqliteStore& store = t % 2 == 0 ? *store_ : *other;
      for (int i = 0; i < kEach; ++i) {
        const std::string n = std::to_string(t * kEach + i);
        auto r = store.Put(
            MakeInstance("i-" + n, {"10.1." + std::to_string(t) + "." + std::to_string(i)}), {});
        revs[t].push_back(r.ok() ? *r : -1);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<int64_t> all;
  for (const auto& v : revs) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kEach));
  EXPECT_EQ(*all.begin(), 1);
  EXPECT_EQ(*all.rbegin(), kThreads * kEach);
  EXPECT_EQ(store_->List()->size(), static_cast<size_t>(kThreads * kEach));
}

TEST_F(SqliteStoreTest, LockedPastBusyTimeoutIsUnavailable) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-a"), {}).ok());
  SqliteStore::Options options;
  options.path = path_;
  options.busy_timeout = std::chrono::milliseconds(100);
  auto impatient = SqliteStore::Open(options);
  ASSERT_TRUE(impatient.ok()) << impatient.status().ToString();

  // Another connection holds the write lock.
  sqlite3* holder = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &holder), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(holder, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);

  auto put = (*impatient)->Put(MakeInstance("i-b"), {});
  EXPECT_EQ(put.status().code(), Code::kUnavailable);
  EXPECT_THAT(put.status().message(), HasSubstr("database is locked"));
  EXPECT_EQ((*impatient)->Delete("i-a", {}).code(), Code::kUnavailable);
  // Readers are not blocked by a writer in WAL mode.
  EXPECT_TRUE((*impatient)->Get("i-a").ok());

  ASSERT_EQ(sqlite3_exec(holder, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(holder);
  EXPECT_TRUE((*impatient)->Put(MakeInstance("i-b"), {}).ok());
}

TEST_F(SqliteStoreTest, CorruptRecordIsInternal) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-a"), {}).ok());
  RawExec(path_, "UPDATE instances SET json = '{\"id\":\"i-a\",\"colour\":1}' WHERE id = 'i-a'");
  auto got = store_->Get("i-a");
  EXPECT_EQ(got.status().code(), Code::kInternal);
  EXPECT_THAT(got.status().message(),
              HasSubstr("stored instance i-a does not parse: /colour: unknown field"));
  EXPECT_EQ(store_->List().status().code(), Code::kInternal);
}

// --- Opening -----------------------------------------------------------------

TEST(SqliteStoreOpenTest, RefusesANewerSchema) {
  TempDir dir;
  const std::string path = dir.File("store.db");
  ASSERT_NE(OpenStore(path), nullptr);
  RawExec(path, "PRAGMA user_version = " + std::to_string(SqliteStore::kSchemaVersion + 1));
  auto store = SqliteStore::Open({.path = path});
  EXPECT_EQ(store.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("newer than this build understands"));
}

TEST(SqliteStoreOpenTest, RefusesSomeoneElsesDatabase) {
  TempDir dir;
  const std::string path = dir.File("other.db");
  RawExec(path, "CREATE TABLE customers (id INTEGER)");
  auto store = SqliteStore::Open({.path = path});
  EXPECT_EQ(store.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("not an openimds store"));
}

TEST(SqliteStoreOpenTest, NotADatabaseIsUnavailable) {
  TempDir dir;
  const std::string path = dir.File("junk.db");
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    for (int i = 0; i < 1000; ++i) std::fputs("this is not a database. ", f);
    std::fclose(f);
  }
  auto store = SqliteStore::Open({.path = path});
  EXPECT_EQ(store.status().code(), Code::kUnavailable);
  EXPECT_THAT(store.status().message(), HasSubstr("not a database"));
}

TEST(SqliteStoreOpenTest, MissingDirectoryIsUnavailable) {
  TempDir dir;
  auto store = SqliteStore::Open({.path = dir.File("no/such/dir/store.db")});
  EXPECT_EQ(store.status().code(), Code::kUnavailable);
}

// Several processes starting at once on a file that does not exist yet: one
// creates the schema, the others wait for its lock and find it done.
TEST(SqliteStoreOpenTest, ProcessesOpeningAFreshFileAtOnce) {
  TempDir dir;
  const std::string path = dir.File("store.db");
  constexpr int kChildren = 6;
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  std::vector<pid_t> children;
  for (int i = 0; i < kChildren; ++i) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(go[1]);
      char c;
      while (::read(go[0], &c, 1) > 0) {
      }
      auto store = SqliteStore::Open({.path = path});
      if (!store.ok()) ::_exit(2);
      ::_exit((*store)->Put(MakeInstance("i-" + std::to_string(i)), {}).ok() ? 0 : 3);
    }
    children.push_back(pid);
  }
  ::close(go[0]);
  ::close(go[1]);  // start
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->List()->size(), static_cast<size_t>(kChildren));
  EXPECT_EQ(*store->LatestRevision(), kChildren);
}

TEST(SqliteStoreOpenTest, MigrationIsIdempotent) {
  TempDir dir;
  const std::string path = dir.File("store.db");
  {
    auto store = OpenStore(path);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put(MakeInstance("i-a"), {}).ok());
  }
  auto again = OpenStore(path);
  ASSERT_NE(again, nullptr);
  EXPECT_TRUE(again->Get("i-a").ok());
}

// --- Read-only and full stores ------------------------------------------------

// The read-only path for real: SQLite opened with SQLITE_OPEN_READONLY refuses
// every write with SQLITE_READONLY. (Tests run as root, which file modes do not
// stop, so chmod 0444 would prove nothing.)
TEST(SqliteStoreReadOnlyTest, ReadsWorkWritesAreUnavailable) {
  TempDir dir;
  const std::string path = dir.File("store.db");
  {
    auto store = OpenStore(path);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put(MakeInstance("i-a", {"10.0.0.5"}), {}).ok());
    ASSERT_TRUE(store->PutSecret("key", "value").ok());
  }
  auto ro = OpenStore(path, /*read_only=*/true);
  ASSERT_NE(ro, nullptr);
  EXPECT_EQ(ro->Get("i-a")->instance, MakeInstance("i-a", {"10.0.0.5"}));
  EXPECT_EQ(ro->List()->size(), 1u);
  EXPECT_EQ(**ro->GetSecret("key"), "value");
  EXPECT_EQ(*ro->GetOrCreateSecret("key", "other"), "value");
  EXPECT_EQ(*ro->LatestRevision(), 1);

  auto put = ro->Put(MakeInstance("i-b"), {});
  EXPECT_EQ(put.status().code(), Code::kUnavailable);
  EXPECT_THAT(put.status().message(), HasSubstr("readonly database"));
  EXPECT_EQ(ro->PutMany({MakeInstance("i-b")}).status().code(), Code::kUnavailable);
  EXPECT_EQ(ro->Delete("i-a", {}).code(), Code::kUnavailable);
  EXPECT_EQ(ro->PutSecret("key", "x").code(), Code::kUnavailable);
  EXPECT_EQ(ro->GetOrCreateSecret("new", "x").status().code(), Code::kUnavailable);
  ro.reset();

  auto rw = OpenStore(path);
  ASSERT_NE(rw, nullptr);
  EXPECT_TRUE(rw->Get("i-a").ok());
  EXPECT_EQ(rw->Get("i-b").status().code(), Code::kNotFound);
  EXPECT_EQ(**rw->GetSecret("key"), "value");
}

TEST(SqliteStoreReadOnlyTest, ReadOnlyNeedsAnExistingStore) {
  TempDir dir;
  auto store = SqliteStore::Open({.path = dir.File("absent.db"), .read_only = true});
  EXPECT_EQ(store.status().code(), Code::kUnavailable);
  EXPECT_FALSE(std::filesystem::exists(dir.File("absent.db")));
}

TEST(SqliteStoreReadOnlyTest, ReadOnlyFileSystem) {
  TempDir dir;
  if (!dir.MountTmpfs(4 << 20)) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno)
                 << "); needs CAP_SYS_ADMIN";
  }
  const std::string path = dir.File("store.db");
  {
    auto store = OpenStore(path);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put(MakeInstance("i-a"), {}).ok());
  }
  ASSERT_TRUE(dir.RemountReadOnly()) << std::strerror(errno);
  auto store = SqliteStore::Open({.path = path});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kUnavailable);
  EXPECT_THAT(store.status().message(), StartsWith("store unavailable: open " + path));
}

TEST(SqliteStoreFullDiskTest, FullDiskIsInsufficientStorageAndLosesNothing) {
  TempDir dir;
  if (!dir.MountTmpfs(1 << 20)) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno)
                 << "); needs CAP_SYS_ADMIN";
  }
  const std::string path = dir.File("store.db");
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  const model::Instance keep = MakeInstance("i-keep", {"10.0.0.5"});
  const int64_t keep_rev = *store->Put(keep, {});
  ASSERT_TRUE(store->PutSecret("key", "value").ok());

  // Fill the file system for real.
  const std::string filler = dir.File("filler");
  {
    const int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    const std::string block(4096, 'f');
    while (::write(fd, block.data(), block.size()) > 0) {
    }
    EXPECT_EQ(errno, ENOSPC);
    ::close(fd);
  }

  model::Instance big = MakeInstance("i-big", {"10.0.0.6"});
  big.user_data = std::string(64 * 1024, 'u');  // the most the admin API may be set to take
  auto put = store->Put(big, {});
  EXPECT_EQ(put.status().code(), Code::kInsufficientStorage) << put.status().ToString();
  EXPECT_THAT(put.status().message(), StartsWith("store disk is full"));

  // Nothing lost, nothing half-written.
  auto got = store->Get("i-keep");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->instance, keep);
  EXPECT_EQ(got->revision, keep_rev);
  EXPECT_EQ(store->Get("i-big").status().code(), Code::kNotFound);
  EXPECT_EQ(*store->LatestRevision(), keep_rev);

  // Room again: the same write goes through, and its address was not left claimed.
  ASSERT_EQ(::unlink(filler.c_str()), 0);
  auto retry = store->Put(big, {});
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_EQ(*retry, keep_rev + 1);
  store.reset();

  auto reopened = OpenStore(path);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->Get("i-keep")->instance, keep);
  EXPECT_EQ(reopened->Get("i-big")->instance, big);
  EXPECT_EQ(**reopened->GetSecret("key"), "value");
}

// With a reserve on the file system, a full disk still takes deletes: the
// store releases the reserve, refuses writes that add or change records
// (507) and says so through DegradedReason, until there is room for the
// reserve again.
TEST(SqliteStoreFullDiskTest, TheReserveLetsDeletesThroughOnAFullDisk) {
  TempDir dir;
  if (!dir.MountTmpfs(4 << 20)) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno)
                 << "); needs CAP_SYS_ADMIN";
  }
  const std::string path = dir.File("store.db");
  auto opened = SqliteStore::Open({.path = path, .reserve_bytes = 512 << 10});
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto& store = *opened;
  EXPECT_TRUE(std::filesystem::exists(path + ".reserve"));
  ASSERT_TRUE(store->Put(MakeInstance("i-keep", {"10.0.0.5"}), {}).ok());
  ASSERT_TRUE(store->Put(MakeInstance("i-gone", {"10.0.0.7"}), {}).ok());
  EXPECT_EQ(store->DegradedReason(), "");

  const std::string filler = dir.File("filler");
  {
    const int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    const std::string block(4096, 'f');
    while (::write(fd, block.data(), block.size()) > 0) {
    }
    ::close(fd);
  }
  model::Instance big = MakeInstance("i-big", {"10.0.0.6"});
  big.user_data = std::string(16 * 1024, 'u');
  auto put = store->Put(big, {});
  EXPECT_EQ(put.status().code(), Code::kInsufficientStorage) << put.status().ToString();
  EXPECT_THAT(put.status().message(), HasSubstr("only deletes are accepted"));
  EXPECT_FALSE(std::filesystem::exists(path + ".reserve"));
  EXPECT_THAT(store->DegradedReason(), StartsWith("storage full"));

  // The operator frees space through the API: deletes go through.
  ASSERT_TRUE(store->Delete("i-gone", {}).ok());
  EXPECT_EQ(store->Get("i-gone").status().code(), Code::kNotFound);
  EXPECT_EQ(store->Put(big, {}).status().code(), Code::kInsufficientStorage);

  // Room on the file system again: the reserve comes back, writes with it.
  ASSERT_EQ(::unlink(filler.c_str()), 0);
  auto retry = store->Put(big, {});
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_TRUE(std::filesystem::exists(path + ".reserve"));
  EXPECT_EQ(store->DegradedReason(), "");
  EXPECT_TRUE(store->Get("i-keep").ok());
}

}  // namespace
}  // namespace openimds::store
