// SignerHolder / Swappable: a replaced signer is seen by every thread, an old
// one stays usable while a thread holds it, and readers racing many swaps
// always get a whole, working signer (never a torn or freed one).
#include "auth/signer_holder.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "auth/request_signer.h"
#include "common/clock.h"

namespace openimds::auth {
namespace {

std::shared_ptr<const RequestSigner> MakeSigner(const std::string& id,
                                                const common::Clock& clock) {
  auto s = RequestSigner::Create({{id, "secret-of-" + id + "-0123456789"}}, {}, clock);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::make_shared<const RequestSigner>(std::move(s).value());
}

// Signs with `signer` and checks the signature with the same object: only a
// whole, live signer passes.
bool RoundTrip(const RequestSigner& signer) {
  SignedIdentity sig = signer.Sign("GET", "/latest/meta-data/", "tenant-a", "10.0.0.5");
  return signer
      .Verify("GET", "/latest/meta-data/", "tenant-a", "10.0.0.5", sig.key_id,
              std::to_string(sig.timestamp), sig.signature)
      .ok();
}

class SignerHolderTest : public ::testing::Test {
 protected:
  common::SystemClock clock_;
};

TEST_F(SignerHolderTest, GetReturnsTheInitialSigner) {
  SignerHolder holder(MakeSigner("k1", clock_));
  EXPECT_EQ(holder.Get().signing_key_id(), "k1");
  EXPECT_EQ(holder.generation(), 1u);
  EXPECT_TRUE(RoundTrip(holder.Get()));
}

TEST_F(SignerHolderTest, SwapIsVisibleToAThreadThatCachedTheOldSigner) {
  SignerHolder holder(MakeSigner("old", clock_));
  std::promise<void> swapped;
  std::promise<std::string> before;
  std::promise<std::string> after;
  std::thread reader([&] {
    before.set_value(holder.Get().signing_key_id());  // fills this thread's cache
    swapped.get_future().wait();
    after.set_value(holder.Get().signing_key_id());
  });
  EXPECT_EQ(before.get_future().get(), "old");
  holder.Set(MakeSigner("new", clock_));
  swapped.set_value();
  EXPECT_EQ(after.get_future().get(), "new");
  reader.join();
  // A thread that never used the holder, and this one, see it too.
  std::thread([&] { EXPECT_EQ(holder.Get().signing_key_id(), "new"); }).join();
  EXPECT_EQ(holder.Get().signing_key_id(), "new");
  EXPECT_EQ(holder.generation(), 2u);
}

TEST_F(SignerHolderTest, OldSignerStaysValidWhileAThreadStillUsesIt) {
  std::weak_ptr<const RequestSigner> watch;
  SignerHolder holder([&] {
    auto s = MakeSigner("old", clock_);
    watch = s;
    return s;
  }());
  std::promise<void> got_reference, swapped, used_old, refreshed;
  std::thread reader([&] {
    const RequestSigner& in_use = holder.Get();  // a request in flight on this thread
    got_reference.set_value();
    swapped.get_future().wait();
    // Another thread replaced the signer meanwhile: this one still works.
    EXPECT_EQ(in_use.signing_key_id(), "old");
    EXPECT_TRUE(RoundTrip(in_use));
    used_old.set_value();
    refreshed.get_future().wait();
    EXPECT_EQ(holder.Get().signing_key_id(), "new");  // next request: drops "old"
  });
  got_reference.get_future().wait();
  holder.Set(MakeSigner("new", clock_));
  EXPECT_FALSE(watch.expired()) << "the reader's cache must keep the old signer alive";
  swapped.set_value();
  used_old.get_future().wait();
  EXPECT_FALSE(watch.expired());
  refreshed.set_value();
  reader.join();
  EXPECT_TRUE(watch.expired()) << "nobody holds the old signer any more";
}

TEST_F(SignerHolderTest, SnapshotOutlivesSwaps) {
  SignerHolder holder(MakeSigner("k0", clock_));
  std::shared_ptr<const RequestSigner> held = holder.Snapshot();
  for (int i = 1; i <= 5; ++i) holder.Set(MakeSigner("k" + std::to_string(i), clock_));
  EXPECT_EQ(held->signing_key_id(), "k0");
  EXPECT_TRUE(RoundTrip(*held));
  EXPECT_EQ(holder.Get().signing_key_id(), "k5");
  EXPECT_EQ(holder.generation(), 6u);
}

TEST_F(SignerHolderTest, ManyHoldersOnOneThreadEachReturnTheirOwn) {
  // More holders than the per-thread cache has slots: entries are reused and
  // refilled, and every Get() still answers for its own holder.
  std::vector<std::unique_ptr<SignerHolder>> holders;
  for (int i = 0; i < 9; ++i) {
    holders.push_back(
        std::make_unique<SignerHolder>(MakeSigner("h" + std::to_string(i), clock_)));
  }
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 9; ++i) {
      if (round == 1 && i % 2 == 0) {
        holders[i]->Set(MakeSigner("h" + std::to_string(i) + "b", clock_));
      }
      const std::string want = "h" + std::to_string(i) + (round >= 1 && i % 2 == 0 ? "b" : "");
      EXPECT_EQ(holders[i]->Get().signing_key_id(), want) << "round " << round;
    }
  }
}

TEST_F(SignerHolderTest, HoldsAnyImmutableType) {
  struct KeySet {
    std::string neutron_secret;
  };
  Swappable<KeySet> holder(std::make_shared<const KeySet>(KeySet{"one"}));
  EXPECT_EQ(holder.Get().neutron_secret, "one");
  holder.Set(std::make_shared<const KeySet>(KeySet{"two"}));
  EXPECT_EQ(holder.Get().neutron_secret, "two");
}

// Readers sign and verify as fast as they can while a writer installs a new
// signer thousands of times (each old one freed once no reader holds it).
// Every reader must get a working signer every time, and never go back to an
// older key than one it has already seen.
TEST_F(SignerHolderTest, ConcurrentReadersWhileSwapping) {
  constexpr int kReaders = 4;
  constexpr int kSwaps = 3000;
  SignerHolder holder(MakeSigner("k0", clock_));
  std::atomic<bool> writer_done{false};
  std::atomic<int> failures{0};
  std::latch start(kReaders + 1);
  std::vector<std::thread> readers;
  std::vector<long> reads(kReaders, 0);
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      start.arrive_and_wait();
      int last_seen = 0;
      while (true) {
        const bool done = writer_done.load(std::memory_order_acquire);
        const RequestSigner& s = holder.Get();
        const int seen = std::stoi(s.signing_key_id().substr(1));
        if (seen < last_seen || !RoundTrip(s)) failures.fetch_add(1);
        last_seen = seen;
        ++reads[r];
        // After the writer finished, the last Get() must see the last key.
        if (done) {
          if (seen != kSwaps) failures.fetch_add(1);
          break;
        }
      }
    });
  }
  start.arrive_and_wait();
  for (int i = 1; i <= kSwaps; ++i) holder.Set(MakeSigner("k" + std::to_string(i), clock_));
  writer_done.store(true, std::memory_order_release);
  for (auto& t : readers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(holder.generation(), static_cast<uint64_t>(kSwaps) + 1);
  for (int r = 0; r < kReaders; ++r) EXPECT_GT(reads[r], 0) << "reader " << r;
}

}  // namespace
}  // namespace openimds::auth
