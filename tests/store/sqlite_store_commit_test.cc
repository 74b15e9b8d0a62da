// SqliteStore::Commit: several Writes in one transaction, each all-or-nothing
// on its own; no-op writes; the commit listener; --max-instances.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "store/sqlite_store.h"
#include "store/store_testing.h"

namespace openimds::store {
namespace {

using common::Code;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class CommitTest : public StoreFixture {
 protected:
  std::vector<WriteOutcome> CommitOk(std::vector<Write> writes) {
    auto outcomes = store_->Commit(writes);
    EXPECT_TRUE(outcomes.ok()) << outcomes.status().ToString();
    if (!outcomes.ok()) return {};
    EXPECT_EQ(outcomes->size(), writes.size());
    return std::move(*outcomes);
  }
};

Write Chained(std::shared_ptr<WriteChain> chain, std::vector<Mutation> mutations) {
  Write w = WriteOf(std::move(mutations));
  w.chain = std::move(chain);
  return w;
}

// The Writes of a chain apply in order and none after a refused one, in the
// same transaction or a later one; Writes outside the chain are not affected.
TEST_F(CommitTest, AChainStopsAtItsFirstRefusal) {
  auto chain = std::make_shared<WriteChain>();
  bool ran_after_refusal = false;
  std::vector<Write> writes;
  writes.push_back(Chained(chain, {PutOf(MakeInstance("i-a", {"10.0.0.1"}))}));
  writes.push_back(Chained(chain, {PutOf(MakeInstance("i-b", {"10.0.0.1"}))}));  // clashes
  writes.push_back(WriteOf({PutOf(MakeInstance("i-free"))}));
  writes.push_back(Chained(chain, {Mutation{"i-c", [&](const StoredInstance*)
                                                   -> common::Result<std::optional<model::Instance>> {
                                              ran_after_refusal = true;
                                              return std::optional(MakeInstance("i-c"));
                                            }}}));
  const auto out = CommitOk(std::move(writes));
  ASSERT_EQ(out.size(), 4u);
  EXPECT_TRUE(out[0].status.ok()) << out[0].status.ToString();
  EXPECT_EQ(out[1].status.code(), Code::kConflict);
  EXPECT_TRUE(out[2].status.ok()) << out[2].status.ToString();
  EXPECT_EQ(out[3].status.code(), Code::kFailedPrecondition);
  EXPECT_EQ(out[3].status.message(), kChainBrokenMessage);
  EXPECT_FALSE(ran_after_refusal);
  EXPECT_TRUE(chain->broken);

  std::vector<Write> later;
  later.push_back(Chained(chain, {PutOf(MakeInstance("i-d"))}));
  const auto out2 = CommitOk(std::move(later));
  ASSERT_EQ(out2.size(), 1u);
  EXPECT_EQ(out2[0].status.code(), Code::kFailedPrecondition);
  EXPECT_THAT(Ids(*store_->List()), ElementsAre("i-a", "i-free"));
  // The refusals took no revision.
  EXPECT_EQ(*store_->LatestRevision(), 2);
}

// A chain whose Write did not commit at all (the store refused the whole
// transaction) is broken too: its next Write must not apply on its own.
TEST_F(CommitTest, AFailedCommitBreaksItsChains) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-a"), {}).ok());
  auto read_only = OpenStore(path_, /*read_only=*/true);
  ASSERT_NE(read_only, nullptr);
  auto chain = std::make_shared<WriteChain>();
  std::vector<Write> writes;
  writes.push_back(Chained(chain, {PutOf(MakeInstance("i-b"))}));
  auto failed = read_only->Commit(writes);
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(chain->broken);
  std::vector<Write> next;
  next.push_back(Chained(chain, {PutOf(MakeInstance("i-c"))}));
  const auto out = CommitOk(std::move(next));
  EXPECT_EQ(out[0].status.code(), Code::kFailedPrecondition);
  EXPECT_THAT(Ids(*store_->List()), ElementsAre("i-a"));
}

// Mutation::put: the very record given is written and handed to the feed.
TEST_F(CommitTest, APutRecordIsTheOneTheFeedHandsOut) {
  auto record = std::make_shared<model::Instance>(MakeInstance("i-a", {"10.0.0.1"}));
  std::vector<Write> writes;
  Mutation m;
  m.id = "i-a";
  m.put = record;
  writes.push_back(WriteOf({}));
  writes.back().mutations.push_back(std::move(m));
  const auto out = CommitOk(std::move(writes));
  ASSERT_TRUE(out[0].status.ok()) << out[0].status.ToString();
  EXPECT_EQ(record->managed.incarnation, out[0].mutations[0].revision);
  auto page = store_->ChangesSince(0, 10);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->changes.size(), 1u);
  EXPECT_EQ(page->changes[0].instance.get(), record.get());
  EXPECT_EQ(store_->Get("i-a")->instance, *record);
}

// Mutation::current_hint stands for the row only while it is the row: a
// hint of another revision, or any hint after another connection changed
// the file (a hand edit that kept the revision), is ignored.
TEST_F(CommitTest, AHintIsUsedOnlyWhileItIsTheRow) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-a"), {}).ok());
  const int64_t rev = *store_->LatestRevision();
  auto seen_name = [&](std::shared_ptr<const model::Instance> hint, int64_t hint_rev) {
    std::string name;
    Mutation m{"i-a", [&name](const StoredInstance* current)
                          -> common::Result<std::optional<model::Instance>> {
                 name = current ? std::string(current->instance.name.view()) : "(none)";
                 return common::FailedPrecondition("looked only");
               }};
    m.current_hint = std::move(hint);
    m.current_hint_revision = hint_rev;
    std::vector<Write> writes;
    writes.push_back(WriteOf({}));
    writes.back().mutations.push_back(std::move(m));
    CommitOk(std::move(writes));
    return name;
  };
  model::Instance hinted = MakeInstance("i-a");
  hinted.name = "from the hint";
  auto hint = std::make_shared<const model::Instance>(hinted);
  EXPECT_EQ(seen_name(hint, rev), "from the hint");
  EXPECT_EQ(seen_name(hint, rev + 7), "name of i-a");
  // Behind the store's back: the revision stays, the record does not.
  const std::string json = RawQueryText(path_, "SELECT json FROM instances WHERE id = 'i-a'");
  std::string edited = json;
  edited.replace(edited.find("name of i-a"), 11, "edited");
  RawExec(path_, "UPDATE instances SET json = '" + edited + "' WHERE id = 'i-a'");
  EXPECT_EQ(seen_name(hint, rev), "edited");
}

TEST_F(CommitTest, RefusedWritesDoNotStopTheOthers) {
  std::vector<Write> writes;
  writes.push_back(WriteOf({PutOf(MakeInstance("i-a", {"10.0.0.1"}))}));
  writes.push_back(WriteOf({RefuseOf("i-b", common::FailedPrecondition("i-b moved on"))}));
  // Clashes with i-a, written earlier in the same transaction.
  writes.push_back(WriteOf({PutOf(MakeInstance("i-c", {"10.0.0.1"}))}));
  writes.push_back(WriteOf({PutOf(MakeInstance("i-d", {"10.0.0.4"}))}));
  const auto out = CommitOk(std::move(writes));
  ASSERT_EQ(out.size(), 4u);

  ASSERT_TRUE(out[0].status.ok()) << out[0].status.ToString();
  ASSERT_EQ(out[0].mutations.size(), 1u);
  EXPECT_EQ(out[0].mutations[0].revision, 1);
  EXPECT_FALSE(out[0].mutations[0].existed);
  EXPECT_TRUE(out[0].mutations[0].changed);

  EXPECT_EQ(out[1].status.code(), Code::kFailedPrecondition);
  EXPECT_EQ(out[1].status.message(), "i-b moved on");  // one mutation: no prefix
  EXPECT_TRUE(out[1].mutations.empty());

  EXPECT_EQ(out[2].status.code(), Code::kConflict);
  EXPECT_EQ(out[2].status.message(),
            "address 10.0.0.1 in network default is held by instance i-a");

  // The refused Writes took no revision: the sequence has no hole.
  ASSERT_TRUE(out[3].status.ok()) << out[3].status.ToString();
  EXPECT_EQ(out[3].mutations[0].revision, 2);
  EXPECT_EQ(*store_->LatestRevision(), 2);
  EXPECT_THAT(Ids(*store_->List()), ElementsAre("i-a", "i-d"));
  // The refused i-c claimed nothing.
  EXPECT_TRUE(store_->Put(MakeInstance("i-x", {"10.0.0.3"}), {}).ok());
}

TEST_F(CommitTest, UnchangedRecordTakesNoRevision) {
  model::Instance in = MakeInstance("i-a", {"10.0.0.1"});
  in.nics[0].mac = "02:00:00:00:00:aa";
  auto first = CommitOk([&] {
    std::vector<Write> w;
    w.push_back(WriteOf({PutOf(in)}));
    return w;
  }());
  ASSERT_TRUE(first[0].status.ok());
  const int64_t rev = first[0].mutations[0].revision;

  // The same record, spelled differently (upper-case MAC): equal once normalized.
  model::Instance same = in;
  same.nics[0].mac = "02:00:00:00:00:AA";
  std::vector<Write> writes;
  writes.push_back(WriteOf({PutOf(same)}));
  // A mutate that returns the current record as it is.
  writes.push_back(WriteOf({Mutation{
      "i-a", [](const StoredInstance* current) -> common::Result<std::optional<model::Instance>> {
        return std::optional<model::Instance>(current->instance);
      }}}));
  const auto out = CommitOk(std::move(writes));
  for (const auto& o : out) {
    ASSERT_TRUE(o.status.ok()) << o.status.ToString();
    EXPECT_EQ(o.mutations[0].revision, rev);
    EXPECT_TRUE(o.mutations[0].existed);
    EXPECT_FALSE(o.mutations[0].changed);
  }
  EXPECT_EQ(*store_->LatestRevision(), rev);
  auto page = store_->ChangesSince(rev, 10);
  ASSERT_TRUE(page.ok());
  EXPECT_FALSE(page->resync_required);
  EXPECT_TRUE(page->changes.empty());
  EXPECT_EQ(page->through, rev);
}

TEST_F(CommitTest, DeletingAnAbsentInstanceDoesNothing) {
  std::vector<Write> writes;
  writes.push_back(WriteOf({DeleteOf("i-ghost")}));
  const auto out = CommitOk(std::move(writes));
  ASSERT_TRUE(out[0].status.ok());
  EXPECT_EQ(out[0].mutations[0].revision, 0);
  EXPECT_FALSE(out[0].mutations[0].existed);
  EXPECT_FALSE(out[0].mutations[0].changed);
  EXPECT_EQ(*store_->LatestRevision(), 0);
}

TEST_F(CommitTest, DeleteTakesARevision) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-a", {"10.0.0.1"}), {}).ok());
  std::vector<Write> writes;
  writes.push_back(WriteOf({DeleteOf("i-a")}));
  const auto out = CommitOk(std::move(writes));
  ASSERT_TRUE(out[0].status.ok());
  EXPECT_EQ(out[0].mutations[0].revision, 2);
  EXPECT_TRUE(out[0].mutations[0].existed);
  EXPECT_TRUE(out[0].mutations[0].changed);
  EXPECT_EQ(store_->Get("i-a").status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->Put(MakeInstance("i-b", {"10.0.0.1"}), {}).ok());  // address freed
}

TEST_F(CommitTest, MultiMutationWriteRollsBackAsAWhole) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-a", {"10.0.0.1"}), {}).ok());
  model::Instance invalid = MakeInstance("i-c");
  invalid.options.hop_limit = 0;
  std::vector<Write> writes;
  // Refused by validation of its third mutation, after the first two applied.
  writes.push_back(WriteOf({PutOf(MakeInstance("i-b", {"10.0.0.2"})), DeleteOf("i-a"),
                            PutOf(invalid)}));
  // Refused by its own mutate.
  writes.push_back(WriteOf({PutOf(MakeInstance("i-d")),
                            RefuseOf("i-a", common::NotFound("no such thing"))}));
  // Takes the address i-a holds in the same Write in which i-a gives it up.
  writes.push_back(WriteOf({PutOf(MakeInstance("i-e", {"10.0.0.1"})),
                            PutOf(MakeInstance("i-a", {"10.0.0.9"}))}));
  // Two members claim one address.
  writes.push_back(WriteOf({PutOf(MakeInstance("i-f", {"10.0.0.7"})),
                            PutOf(MakeInstance("i-g", {"10.0.0.7"}))}));
  // One id twice.
  writes.push_back(WriteOf({PutOf(MakeInstance("i-h")), DeleteOf("i-h")}));
  const auto out = CommitOk(std::move(writes));

  EXPECT_EQ(out[0].status.code(), Code::kInvalidArgument);
  EXPECT_THAT(out[0].status.message(),
              StartsWith("instance 2 (i-c): /metadata_options/hop_limit: 0 not in 1..64"));
  EXPECT_EQ(out[1].status.code(), Code::kNotFound);
  EXPECT_EQ(out[1].status.message(), "instance 1 (i-a): no such thing");
  ASSERT_TRUE(out[2].status.ok()) << out[2].status.ToString();
  EXPECT_EQ(out[2].mutations[0].revision, 2);
  EXPECT_EQ(out[2].mutations[1].revision, 3);
  EXPECT_EQ(out[3].status.code(), Code::kConflict);
  EXPECT_EQ(out[3].status.message(),
            "instance 1 (i-g): address 10.0.0.7 in network default is also claimed by instance "
            "0 (i-f) in this batch");
  EXPECT_EQ(out[4].status.code(), Code::kInvalidArgument);
  EXPECT_EQ(out[4].status.message(), "instance 1 (i-h): id repeated (also instance 0)");

  EXPECT_THAT(Ids(*store_->List()), ElementsAre("i-a", "i-e"));
  EXPECT_EQ(store_->Get("i-a")->instance, MakeInstance("i-a", {"10.0.0.9"}));
  EXPECT_EQ(*store_->LatestRevision(), 3);
  EXPECT_EQ(store_->Put(MakeInstance("i-z", {"10.0.0.1"}), {}).status().code(), Code::kConflict);
  EXPECT_TRUE(store_->Put(MakeInstance("i-z", {"10.0.0.2", "10.0.0.7"}), {}).ok());
}

TEST_F(CommitTest, MutateSeesTheStateEarlierWritesLeft) {
  std::vector<Write> writes;
  writes.push_back(WriteOf({PutOf(MakeInstance("i-a"))}));
  writes.push_back(WriteOf({Mutation{
      "i-a", [](const StoredInstance* current) -> common::Result<std::optional<model::Instance>> {
        if (current == nullptr) return common::NotFound("absent");
        if (current->revision != 1) return common::FailedPrecondition("wrong revision");
        model::Instance next = current->instance;
        next.name = "patched";
        return std::optional<model::Instance>(std::move(next));
      }}}));
  const auto out = CommitOk(std::move(writes));
  ASSERT_TRUE(out[1].status.ok()) << out[1].status.ToString();
  EXPECT_EQ(out[1].mutations[0].revision, 2);
  EXPECT_TRUE(out[1].mutations[0].existed);
  EXPECT_EQ(store_->Get("i-a")->instance.name, "patched");
}

TEST_F(CommitTest, MutateMayNotChangeTheId) {
  std::vector<Write> writes;
  writes.push_back(WriteOf({Mutation{
      "i-a", [](const StoredInstance*) -> common::Result<std::optional<model::Instance>> {
        return std::optional<model::Instance>(MakeInstance("i-b"));
      }}}));
  const auto out = CommitOk(std::move(writes));
  EXPECT_EQ(out[0].status.code(), Code::kInvalidArgument);
  EXPECT_THAT(out[0].status.message(), HasSubstr("instance i-a, not i-b"));
  EXPECT_EQ(*store_->LatestRevision(), 0);
}

TEST_F(CommitTest, ListenerHearsCommitsThatChangedSomething) {
  std::vector<int64_t> heard;
  store_->SetCommitListener([&](int64_t latest) { heard.push_back(latest); });
  std::vector<Write> writes;
  writes.push_back(WriteOf({PutOf(MakeInstance("i-a")), PutOf(MakeInstance("i-b"))}));
  writes.push_back(WriteOf({PutOf(MakeInstance("i-c"))}));
  CommitOk(std::move(writes));
  ASSERT_TRUE(store_->Put(MakeInstance("i-d"), {}).ok());
  ASSERT_TRUE(store_->Delete("i-d", {}).ok());
  // Nothing changed: not signalled.
  writes.clear();
  writes.push_back(WriteOf({DeleteOf("i-ghost")}));
  CommitOk(std::move(writes));
  EXPECT_EQ(store_->Delete("i-ghost", {}).code(), Code::kNotFound);
  EXPECT_THAT(heard, ElementsAre(3, 4, 5));

  store_->SetCommitListener(nullptr);
  ASSERT_TRUE(store_->Put(MakeInstance("i-e"), {}).ok());
  EXPECT_EQ(heard.size(), 3u);
}

TEST_F(CommitTest, ReadOnlyStoreFailsTheWholeCommit) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-a"), {}).ok());
  auto ro = OpenStore(path_, /*read_only=*/true);
  ASSERT_NE(ro, nullptr);
  std::vector<Write> writes;
  writes.push_back(WriteOf({PutOf(MakeInstance("i-b"))}));
  auto out = ro->Commit(writes);
  EXPECT_EQ(out.status().code(), Code::kUnavailable);
}

TEST_F(CommitTest, EmptyCommitAndEmptyWrite) {
  std::vector<Write> none;
  auto out = store_->Commit(none);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->empty());
  std::vector<Write> writes(1);
  out = store_->Commit(writes);
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->size(), 1u);
  EXPECT_TRUE((*out)[0].status.ok());
  EXPECT_TRUE((*out)[0].mutations.empty());
}

// A Write large enough to be prepared on several threads reports the
// lowest-numbered offender, whatever kind of refusal it is.
TEST(LargeWriteTest, PreparedInParallelAndJudgedInOrder) {
  TempDir dir;
  SqliteStore::Options options;
  options.path = dir.File("store.db");
  options.write_threads = 3;
  auto opened = SqliteStore::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  SqliteStore& store = **opened;
  auto big = [](int bad_at, int clash_at, int refuse_at) {
    std::vector<Mutation> m;
    for (int i = 0; i < 600; ++i) {
      const std::string id = "i-" + std::to_string(i);
      if (i == refuse_at) {
        m.push_back(RefuseOf(id, common::FailedPrecondition("lost the race")));
        continue;
      }
      model::Instance in = MakeInstance(
          id, {"10.1." + std::to_string(i / 200) + "." + std::to_string(i % 200)});
      if (i == bad_at) in.options.hop_limit = 0;
      if (i == clash_at) in.nics[0].private_ipv4s = {"10.1.0.7"};  // i-7's address
      m.push_back(PutOf(std::move(in)));
    }
    std::vector<Write> w;
    w.push_back(WriteOf(std::move(m)));
    return w;
  };
  struct Case {
    int bad, clash, refuse;
    const char* message;
  };
  for (const Case& c : {Case{400, 450, 500, "instance 400 (i-400): /metadata_options/hop_limit"},
                        Case{-1, 450, 500, "instance 450 (i-450): address 10.1.0.7"},
                        Case{520, 510, 300, "instance 300 (i-300): lost the race"}}) {
    auto writes = big(c.bad, c.clash, c.refuse);
    auto out = store.Commit(writes);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_THAT((*out)[0].status.message(), StartsWith(c.message));
    EXPECT_EQ(*store.LatestRevision(), 0);
  }
  auto writes = big(-1, -1, -1);
  auto out = store.Commit(writes);
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE((*out)[0].status.ok()) << (*out)[0].status.ToString();
  for (int i = 0; i < 600; ++i) EXPECT_EQ((*out)[0].mutations[i].revision, i + 1);
  EXPECT_EQ(store.Get("i-599")->instance, MakeInstance("i-599", {"10.1.2.199"}));
  // Again, unchanged: nothing written.
  writes = big(-1, -1, -1);
  out = store.Commit(writes);
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE((*out)[0].status.ok());
  EXPECT_FALSE((*out)[0].mutations[10].changed);
  EXPECT_EQ(*store.LatestRevision(), 600);
}

// --- --max-instances -----------------------------------------------------------

std::unique_ptr<SqliteStore> OpenLimited(const std::string& path, int64_t max) {
  SqliteStore::Options options;
  options.path = path;
  options.max_instances = max;
  auto store = SqliteStore::Open(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(*store) : nullptr;
}

TEST(MaxInstancesTest, RefusesTheWriteThatWouldExceedIt) {
  TempDir dir;
  auto store = OpenLimited(dir.File("store.db"), 3);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->PutMany({MakeInstance("i-a"), MakeInstance("i-b"), MakeInstance("i-c")}).ok());

  auto put = store->Put(MakeInstance("i-d"), {});
  EXPECT_EQ(put.status().code(), Code::kInsufficientStorage);
  EXPECT_EQ(put.status().message(),
            "the store holds 3 instances, the limit set by --max-instances (3); delete some or "
            "raise the limit");
  const int64_t latest = *store->LatestRevision();
  EXPECT_EQ(latest, 3);

  // At the limit, replacing is fine, and so is a Write that adds one and
  // deletes one.
  EXPECT_TRUE(store->Put(MakeInstance("i-a", {"10.0.0.1"}), {}).ok());
  std::vector<Write> writes;
  writes.push_back(WriteOf({PutOf(MakeInstance("i-d")), DeleteOf("i-b")}));
  auto out = store->Commit(writes);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE((*out)[0].status.ok()) << (*out)[0].status.ToString();
  EXPECT_THAT(Ids(*store->List()), ElementsAre("i-a", "i-c", "i-d"));

  ASSERT_TRUE(store->Delete("i-a", {}).ok());
  auto many = store->PutMany({MakeInstance("i-x"), MakeInstance("i-y")});
  EXPECT_EQ(many.status().code(), Code::kInsufficientStorage);
  EXPECT_EQ(many.status().message(),
            "this write would bring the store to 4 instances, over the limit of 3 set by "
            "--max-instances; delete some or raise the limit");
  EXPECT_TRUE(store->Put(MakeInstance("i-x"), {}).ok());
}

TEST(MaxInstancesTest, TheCountIsSharedByProcessesOnOneFile) {
  TempDir dir;
  auto a = OpenLimited(dir.File("store.db"), 2);
  auto b = OpenLimited(dir.File("store.db"), 2);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->Put(MakeInstance("i-a"), {}).ok());
  ASSERT_TRUE(b->Put(MakeInstance("i-b"), {}).ok());
  EXPECT_EQ(a->Put(MakeInstance("i-c"), {}).status().code(), Code::kInsufficientStorage);
  EXPECT_EQ(b->Put(MakeInstance("i-c"), {}).status().code(), Code::kInsufficientStorage);
  ASSERT_TRUE(a->Delete("i-b", {}).ok());
  EXPECT_TRUE(b->Put(MakeInstance("i-c"), {}).ok());
  EXPECT_EQ(RawQueryText(dir.File("store.db"),
                         "SELECT value FROM meta WHERE key = 'instance_count'"),
            "2");
}

}  // namespace
}  // namespace openimds::store
