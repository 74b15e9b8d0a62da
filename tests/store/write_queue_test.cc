#include "store/write_queue.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "store/sqlite_store.h"
#include "store/store_testing.h"

namespace openimds::store {
namespace {

using common::Code;
using common::Result;
using common::Status;

// Forwards to a real store and counts the Commit calls (and the largest
// group), so a test can see that groups form.
class CountingStore final : public Store {
 public:
  explicit CountingStore(Store& base) : base_(base) {}

  Result<std::vector<WriteOutcome>> Commit(std::vector<Write>& writes) override {
    if (before_commit) before_commit();
    commits_.fetch_add(1);
    size_t largest = largest_.load();
    while (writes.size() > largest && !largest_.compare_exchange_weak(largest, writes.size())) {
    }
    return base_.Commit(writes);
  }
  int commits() const { return commits_.load(); }
  // Runs at the start of every Commit, on the queue's thread (a test holds a
  // commit there to fill the queue behind it).
  std::function<void()> before_commit;
  size_t largest() const { return largest_.load(); }

  Result<int64_t> Put(const model::Instance& in, Precondition pre) override {
    return base_.Put(in, pre);
  }
  Result<std::vector<int64_t>> PutMany(const std::vector<model::Instance>& in) override {
    return base_.PutMany(in);
  }
  Result<StoredInstance> Get(std::string_view id) override { return base_.Get(id); }
  Status Delete(std::string_view id, Precondition pre) override { return base_.Delete(id, pre); }
  Result<std::vector<StoredInstance>> List() override { return base_.List(); }
  Result<std::string> GetOrCreateSecret(std::string_view n, std::string_view c) override {
    return base_.GetOrCreateSecret(n, c);
  }
  Result<std::optional<std::string>> GetSecret(std::string_view n) override {
    return base_.GetSecret(n);
  }
  Status PutSecret(std::string_view n, std::string_view v) override { return base_.PutSecret(n, v); }
  Status DeleteSecret(std::string_view n) override { return base_.DeleteSecret(n); }
  Result<int64_t> LatestRevision() override { return base_.LatestRevision(); }
  Result<ChangePage> ChangesSince(int64_t since, size_t max) override {
    return base_.ChangesSince(since, max);
  }
  Result<int64_t> Scan(const std::function<Status(SharedInstance&&)>& sink) override {
    return base_.Scan(sink);
  }
  void SetCommitListener(std::function<void(int64_t)> listener) override {
    base_.SetCommitListener(std::move(listener));
  }

 private:
  Store& base_;
  std::atomic<int> commits_{0};
  std::atomic<size_t> largest_{0};
};

class WriteQueueTest : public StoreFixture {};

// Counts down the outstanding `done` calls.
class Outstanding {
 public:
  explicit Outstanding(int n) : n_(n) {}
  void Done() {
    std::lock_guard lock(mu_);
    if (--n_ == 0) cv_.notify_all();
  }
  void Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return n_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int n_;
};

TEST_F(WriteQueueTest, ConcurrentSubmitsFormGroupsWithContiguousRevisions) {
  CountingStore counting(*store_);
  constexpr int kThreads = 4;
  constexpr int kEach = 200;
  std::mutex mu;
  std::vector<int64_t> revisions;
  std::vector<std::string> errors;
  Outstanding outstanding(kThreads * kEach);
  {
    WriteQueue queue(counting);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          const std::string id = "i-" + std::to_string(t) + "-" + std::to_string(i);
          queue.Submit(WriteOf({PutOf(MakeInstance(id))}), [&](WriteOutcome outcome) {
            {
              std::lock_guard lock(mu);
              if (outcome.status.ok()) {
                revisions.push_back(outcome.mutations.at(0).revision);
              } else {
                errors.push_back(outcome.status.ToString());
              }
            }
            outstanding.Done();
          });
        }
      });
    }
    for (auto& th : threads) th.join();
    outstanding.Wait();
  }
  EXPECT_THAT(errors, ::testing::IsEmpty());
  std::set<int64_t> distinct(revisions.begin(), revisions.end());
  ASSERT_EQ(distinct.size(), static_cast<size_t>(kThreads * kEach));
  EXPECT_EQ(*distinct.begin(), 1);
  EXPECT_EQ(*distinct.rbegin(), kThreads * kEach);
  EXPECT_LT(counting.commits(), kThreads * kEach);
  EXPECT_GT(counting.largest(), 1u);
  EXPECT_EQ(store_->List()->size(), static_cast<size_t>(kThreads * kEach));
}

TEST_F(WriteQueueTest, RefusedWriteDoesNotSpoilItsGroup) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-holder", {"10.0.0.1"}), {}).ok());
  std::vector<WriteOutcome> outcomes(3);
  {
    WriteQueue queue(*store_);
    // Queued together while nothing runs is not guaranteed; the outcomes are
    // the same either way.
    queue.Submit(WriteOf({PutOf(MakeInstance("i-a"))}),
                 [&](WriteOutcome o) { outcomes[0] = std::move(o); });
    queue.Submit(WriteOf({PutOf(MakeInstance("i-b", {"10.0.0.1"}))}),
                 [&](WriteOutcome o) { outcomes[1] = std::move(o); });
    queue.Submit(WriteOf({PutOf(MakeInstance("i-c"))}),
                 [&](WriteOutcome o) { outcomes[2] = std::move(o); });
  }
  EXPECT_TRUE(outcomes[0].status.ok());
  EXPECT_EQ(outcomes[1].status.code(), Code::kConflict);
  EXPECT_TRUE(outcomes[2].status.ok());
  EXPECT_EQ(outcomes[2].mutations[0].revision, 3);
}

TEST_F(WriteQueueTest, CommitOneWaitsForTheOutcome) {
  WriteQueue queue(*store_);
  WriteOutcome a = queue.CommitOne(WriteOf({PutOf(MakeInstance("i-a"))}));
  ASSERT_TRUE(a.status.ok());
  EXPECT_EQ(a.mutations[0].revision, 1);
  EXPECT_TRUE(store_->Get("i-a").ok());
  WriteOutcome again = queue.CommitOne(WriteOf({RefuseOf("i-a", common::NotFound("gone"))}));
  EXPECT_EQ(again.status.code(), Code::kNotFound);
}

TEST_F(WriteQueueTest, DestructorCommitsWhatIsQueued) {
  std::atomic<int> ok{0};
  {
    WriteQueue queue(*store_, {.max_group_writes = 7, .max_group_mutations = 20000});
    for (int i = 0; i < 100; ++i) {
      queue.Submit(WriteOf({PutOf(MakeInstance("i-" + std::to_string(i)))}),
                   [&](WriteOutcome o) { ok += o.status.ok() ? 1 : 0; });
    }
  }
  EXPECT_EQ(ok.load(), 100);
  EXPECT_EQ(store_->List()->size(), 100u);
}

TEST_F(WriteQueueTest, GroupsRespectTheMutationLimit) {
  CountingStore counting(*store_);
  std::atomic<int> ok{0};
  {
    WriteQueue queue(counting, {.max_group_writes = 512, .max_group_mutations = 10});
    for (int i = 0; i < 20; ++i) {
      std::vector<Mutation> m;
      for (int j = 0; j < 4; ++j) {
        m.push_back(PutOf(MakeInstance("i-" + std::to_string(i) + "-" + std::to_string(j))));
      }
      queue.Submit(WriteOf(std::move(m)), [&](WriteOutcome o) { ok += o.status.ok() ? 1 : 0; });
    }
  }
  EXPECT_EQ(ok.load(), 20);
  EXPECT_LE(counting.largest(), 2u);  // 2 × 4 mutations fit in 10, 3 do not
}

TEST_F(WriteQueueTest, AFailedCommitFailsEveryWriteOfTheGroup) {
  ASSERT_TRUE(store_->Put(MakeInstance("i-a"), {}).ok());
  auto ro = OpenStore(path_, /*read_only=*/true);
  ASSERT_NE(ro, nullptr);
  std::vector<Code> codes(5, Code::kOk);
  {
    WriteQueue queue(*ro);
    for (int i = 0; i < 5; ++i) {
      queue.Submit(WriteOf({PutOf(MakeInstance("i-" + std::to_string(i)))}),
                   [&, i](WriteOutcome o) { codes[i] = o.status.code(); });
    }
  }
  for (Code c : codes) EXPECT_EQ(c, Code::kUnavailable);
}

// A process killed with SIGKILL (no destructor, no checkpoint) while four
// threads write through a queue loses no write it acknowledged.
TEST_F(WriteQueueTest, AcknowledgedWritesSurviveSigkill) {
  store_.reset();
  int acks[2];
  ASSERT_EQ(::pipe(acks), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(acks[0]);
    auto store = SqliteStore::Open({.path = path_});
    if (!store.ok()) ::_exit(2);
    WriteQueue queue(**store);
    std::vector<std::thread> writers;
    for (int t = 0; t < 4; ++t) {
      writers.emplace_back([&, t] {
        for (int i = 0; i < 100000; ++i) {
          const std::string id = "i-" + std::to_string(t) + "-" + std::to_string(i);
          WriteOutcome o = queue.CommitOne(WriteOf({PutOf(MakeInstance(id))}));
          if (!o.status.ok()) ::_exit(3);
          // One write below PIPE_BUF is atomic: lines never interleave.
          const std::string line = id + "\n";
          if (::write(acks[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
            ::_exit(4);
          }
        }
      });
    }
    for (auto& w : writers) w.join();
    ::_exit(5);  // should have been killed long before
  }
  ::close(acks[1]);
  std::string received;
  char buf[4096];
  auto lines = [&] { return std::count(received.begin(), received.end(), '\n'); };
  while (lines() < 400) {
    const ssize_t n = ::read(acks[0], buf, sizeof(buf));
    ASSERT_GT(n, 0) << "child ended early";
    received.append(buf, static_cast<size_t>(n));
  }
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  // Whatever it acknowledged before it died is still in the pipe.
  for (ssize_t n; (n = ::read(acks[0], buf, sizeof(buf))) > 0;) received.append(buf, n);
  ::close(acks[0]);

  auto reopened = OpenStore(path_);
  ASSERT_NE(reopened, nullptr);
  std::set<std::string> present;
  auto list = reopened->List();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  for (const auto& s : *list) present.insert(s.instance.id);
  size_t acknowledged = 0;
  for (size_t pos = 0, nl; (nl = received.find('\n', pos)) != std::string::npos; pos = nl + 1) {
    const std::string id = received.substr(pos, nl - pos);
    ++acknowledged;
    EXPECT_TRUE(present.count(id)) << "acknowledged " << id << " is lost";
  }
  EXPECT_GE(acknowledged, 400u);
  // The feed survived with the data: contiguous up to the latest revision.
  auto page = reopened->ChangesSince(0, 1000000);
  ASSERT_TRUE(page.ok());
  EXPECT_FALSE(page->resync_required) << page->resync_reason;
  EXPECT_EQ(page->through, *reopened->LatestRevision());
  EXPECT_EQ(page->changes.size(), present.size());
}

TEST(WriteQueueLimitTest, AFullQueueRefusesInsteadOfGrowing) {
  TempDir dir;
  auto base = OpenStore(dir.File("s.db"));
  CountingStore store(*base);
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> first{true};
  store.before_commit = [&] {
    if (first.exchange(false)) {
      entered.set_value();
      released.wait();
    }
  };
  WriteQueue::Options options;
  options.max_queued_mutations = 3;
  std::vector<WriteOutcome> outcomes(5);
  std::atomic<int> done{0};
  {
    WriteQueue queue(store, options);
    auto submit = [&](size_t slot, std::vector<Mutation> mutations) {
      queue.Submit(WriteOf(std::move(mutations)), [&, slot](WriteOutcome o) {
        outcomes[slot] = std::move(o);
        ++done;
      });
    };
    submit(0, {PutOf(MakeInstance("held"))});  // taken by the thread, held in Commit
    entered.get_future().wait();
    submit(1, {PutOf(MakeInstance("a")), PutOf(MakeInstance("b"))});  // 2 waiting
    submit(2, {PutOf(MakeInstance("c"))});                             // 3 waiting: the limit
    submit(3, {PutOf(MakeInstance("d"))});                             // over it: refused
    EXPECT_EQ(done.load(), 1);  // the refusal is immediate, on this thread
    EXPECT_EQ(outcomes[3].status.code(), common::Code::kResourceExhausted);
    EXPECT_NE(outcomes[3].status.message().find("3 instance writes waiting"), std::string::npos)
        << outcomes[3].status.message();
    release.set_value();
    // Once the queue drained, writes are taken again.
    while (done.load() < 4) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    submit(4, {PutOf(MakeInstance("e"))});
  }
  EXPECT_EQ(done.load(), 5);
  for (size_t i : {0u, 1u, 2u, 4u}) EXPECT_TRUE(outcomes[i].status.ok()) << i;
  EXPECT_FALSE(base->Get("d").ok());
  EXPECT_TRUE(base->Get("e").ok());
}

}  // namespace
}  // namespace openimds::store
