// Key rotation of IMDSv2 session tokens: the epoch schedule, swapping the
// ring while in use, and several authorities agreeing through one secret
// store (a plain map here; the real one is the SQLite store's secrets).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "auth/token_authority.h"
#include "common/clock.h"

namespace openimds::auth {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::system_clock;

constexpr std::string_view kInstance = "i-0123456789abcdef0";
constexpr int64_t kIncarnation = 7;

// An in-memory secret store with the store's first-writer-wins semantics.
class SecretMap {
 public:
  SecretGetOrCreate Fn() {
    return
        [this](std::string_view name, std::string_view candidate) -> common::Result<std::string> {
          std::lock_guard lock(mu_);
          ++calls_;
          auto [it, fresh] = secrets_.emplace(std::string(name), std::string(candidate));
          return it->second;
        };
  }
  size_t size() const { return secrets_.size(); }
  bool has(const std::string& name) const { return secrets_.count(name) > 0; }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> secrets_;
  int calls_ = 0;
};

std::optional<TokenError> Check(const TokenAuthority& a, std::string_view token) {
  TokenError why = TokenError::kMalformed;
  if (a.Verify(token, kInstance, kIncarnation, &why).ok()) return std::nullopt;
  return why;
}

class TokenRotationTest : public ::testing::Test {
 protected:
  // 2024-05-01T12:00:00Z: a multiple of 6 h, so epochs start on the hour.
  common::FakeClock clock_{system_clock::time_point(seconds(1'714'564'800))};
  TokenKeySchedule schedule_;  // 6 h periods, 6 h token lifetime
  SecretMap store_;

  TokenAuthority Fresh() {
    auto a = TokenAuthority::Create({TokenKey{0, std::string(32, 'x')}}, clock_);
    EXPECT_TRUE(a.ok());
    TokenAuthority out = std::move(a).value();
    EXPECT_TRUE(RefreshTokenKeys(out, clock_.Now(), schedule_, store_.Fn()).ok());
    return out;
  }
};

TEST_F(TokenRotationTest, EpochWindow) {
  const int64_t base = 1'714'564'800 / 21600;  // epoch at the fixture's start
  struct Case {
    seconds offset;
    uint32_t first, issuing, last;
  };
  const std::vector<Case> cases = {
      {seconds(0), static_cast<uint32_t>(base - 2), static_cast<uint32_t>(base),
       static_cast<uint32_t>(base + 1)},
      {hours(6) - seconds(1), static_cast<uint32_t>(base - 2), static_cast<uint32_t>(base),
       static_cast<uint32_t>(base + 1)},
      {hours(6), static_cast<uint32_t>(base - 1), static_cast<uint32_t>(base + 1),
       static_cast<uint32_t>(base + 2)},
  };
  for (const auto& c : cases) {
    const TokenEpochWindow w = TokenEpochsAt(clock_.Now() + c.offset, schedule_);
    EXPECT_EQ(w.first, c.first) << c.offset.count();
    EXPECT_EQ(w.issuing, c.issuing) << c.offset.count();
    EXPECT_EQ(w.last, c.last) << c.offset.count();
  }
  // A shorter period keeps more epochs: every key a live token may carry.
  TokenKeySchedule hourly;
  hourly.period = hours(1);
  const TokenEpochWindow w = TokenEpochsAt(clock_.Now(), hourly);
  EXPECT_EQ(w.issuing - w.first, 7u);  // 6 h of tokens + one period of clock lag
  EXPECT_EQ(w.last, w.issuing + 1);
  // Before the epoch of time: nothing underflows.
  const TokenEpochWindow zero = TokenEpochsAt(system_clock::time_point{}, schedule_);
  EXPECT_EQ(zero.first, 0u);
  EXPECT_EQ(zero.issuing, 0u);
}

TEST_F(TokenRotationTest, SecretNamesCarryThePeriod) {
  EXPECT_EQ(TokenKeySecretName(schedule_, 79378), "imds_token_key/21600/79378");
  TokenKeySchedule hourly;
  hourly.period = hours(1);
  EXPECT_EQ(TokenKeySecretName(hourly, 7), "imds_token_key/3600/7");
}

TEST_F(TokenRotationTest, RefreshInstallsTheWindowAndIssuesWithTheCurrentEpoch) {
  TokenAuthority a = Fresh();
  const TokenEpochWindow w = TokenEpochsAt(clock_.Now(), schedule_);
  std::vector<uint32_t> want;
  for (uint32_t e = w.first; e <= w.last; ++e) want.push_back(e);
  EXPECT_EQ(a.Epochs(), want);
  EXPECT_EQ(a.IssuingEpoch(), w.issuing);  // not the newest: that one only verifies
  EXPECT_EQ(store_.size(), want.size());
  EXPECT_TRUE(store_.has(TokenKeySecretName(schedule_, w.last)));
}

TEST_F(TokenRotationTest, OutstandingTokensSurviveRotationUntilTheyExpire) {
  TokenAuthority a = Fresh();
  clock_.Advance(hours(6) - minutes(1));  // one minute before the rotation
  auto token = a.Issue(kInstance, kIncarnation, seconds(21600));
  ASSERT_TRUE(token.ok());
  const uint32_t old_epoch = a.IssuingEpoch();

  clock_.Advance(minutes(2));  // rotated
  ASSERT_TRUE(RefreshTokenKeys(a, clock_.Now(), schedule_, store_.Fn()).ok());
  EXPECT_EQ(a.IssuingEpoch(), old_epoch + 1);
  EXPECT_EQ(Check(a, *token), std::nullopt);
  auto fresh = a.Issue(kInstance, kIncarnation, seconds(60));
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(Check(a, *fresh), std::nullopt);

  // Just before the token's own expiry, after another rotation: still good.
  clock_.Advance(hours(6) - minutes(3));
  ASSERT_TRUE(RefreshTokenKeys(a, clock_.Now(), schedule_, store_.Fn()).ok());
  EXPECT_EQ(Check(a, *token), std::nullopt);
  clock_.Advance(minutes(1));
  EXPECT_EQ(Check(a, *token), TokenError::kExpired);
}

TEST_F(TokenRotationTest, ReplayAfterRotationBeyondTheOverlapIsUnknownKey) {
  TokenAuthority a = Fresh();
  auto token = a.Issue(kInstance, kIncarnation, seconds(21600));
  ASSERT_TRUE(token.ok());
  // Two periods past the token's lifetime: its epoch has left every ring.
  clock_.Advance(hours(6) + hours(12) + seconds(1));
  ASSERT_TRUE(RefreshTokenKeys(a, clock_.Now(), schedule_, store_.Fn()).ok());
  EXPECT_EQ(Check(a, *token), TokenError::kUnknownKey);
}

TEST_F(TokenRotationTest, ProcessesSharingAStoreAcceptEachOthersTokensAcrossRotations) {
  TokenAuthority a = Fresh();
  TokenAuthority b = Fresh();
  auto from_a = a.Issue(kInstance, kIncarnation, seconds(21600));
  ASSERT_TRUE(from_a.ok());
  EXPECT_EQ(Check(b, *from_a), std::nullopt);

  // b's clock runs 2 minutes ahead and rotates first; a has not refreshed yet.
  clock_.Advance(hours(6) - minutes(1));
  ASSERT_TRUE(RefreshTokenKeys(b, clock_.Now() + minutes(2), schedule_, store_.Fn()).ok());
  auto from_b = b.Issue(kInstance, kIncarnation, seconds(3600));
  ASSERT_TRUE(from_b.ok());
  EXPECT_EQ(b.IssuingEpoch(), a.IssuingEpoch() + 1);
  // a already holds b's epoch (the window's "last", made before it issues).
  EXPECT_EQ(Check(a, *from_b), std::nullopt);
  EXPECT_EQ(Check(b, *from_a), std::nullopt);
}

TEST_F(TokenRotationTest, ADifferentStoreMeansDifferentKeys) {
  TokenAuthority a = Fresh();
  SecretMap other;
  auto c = TokenAuthority::Create({TokenKey{0, std::string(32, 'x')}}, clock_);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(RefreshTokenKeys(*c, clock_.Now(), schedule_, other.Fn()).ok());
  auto token = a.Issue(kInstance, kIncarnation, seconds(60));
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(Check(*c, *token), TokenError::kBadSeal);  // same epoch number, other key
}

TEST_F(TokenRotationTest, StoreErrorsLeaveTheRingAlone) {
  TokenAuthority a = Fresh();
  const auto before = a.Epochs();
  auto failing = [](std::string_view, std::string_view) -> common::Result<std::string> {
    return common::Unavailable("store away");
  };
  clock_.Advance(hours(6));
  EXPECT_EQ(RefreshTokenKeys(a, clock_.Now(), schedule_, failing).code(),
            common::Code::kUnavailable);
  EXPECT_EQ(a.Epochs(), before);
  auto short_key = [](std::string_view, std::string_view) -> common::Result<std::string> {
    return std::string("short");
  };
  EXPECT_EQ(RefreshTokenKeys(a, clock_.Now(), schedule_, short_key).code(),
            common::Code::kInternal);
  EXPECT_EQ(a.Epochs(), before);
}

TEST_F(TokenRotationTest, SetKeysChecksItsInput) {
  TokenAuthority a = Fresh();
  const auto before = a.Epochs();
  EXPECT_EQ(a.SetKeys({}).code(), common::Code::kInvalidArgument);
  EXPECT_EQ(a.SetKeys({TokenKey{1, "short"}}).code(), common::Code::kInvalidArgument);
  EXPECT_EQ(
      a.SetKeys({TokenKey{1, std::string(32, 'a')}, TokenKey{1, std::string(32, 'b')}}).code(),
      common::Code::kInvalidArgument);
  EXPECT_EQ(a.SetKeys({TokenKey{1, std::string(32, 'a')}}, 2).code(), common::Code::kNotFound);
  EXPECT_EQ(a.Epochs(), before);
  EXPECT_TRUE(
      a.SetKeys({TokenKey{5, std::string(32, 'a')}, TokenKey{6, std::string(32, 'b')}}, 5).ok());
  EXPECT_EQ(a.IssuingEpoch(), 5u);
  EXPECT_TRUE(
      a.SetKeys({TokenKey{6, std::string(32, 'b')}, TokenKey{5, std::string(32, 'a')}}).ok());
  EXPECT_EQ(a.IssuingEpoch(), 6u);  // default: the newest
}

// Verify keeps recently verified tokens per thread; nothing it must refuse
// gets through that way.
TEST_F(TokenRotationTest, RecentlyVerifiedTokensAreStillCheckedInFull) {
  TokenAuthority a = Fresh();
  auto token = a.Issue(kInstance, kIncarnation, seconds(10));
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(Check(a, *token), std::nullopt);
  EXPECT_EQ(Check(a, *token), std::nullopt);  // from the cache
  // Another instance presenting it: a full verification, refused.
  TokenError why = TokenError::kMalformed;
  EXPECT_FALSE(a.Verify(*token, "i-0ffffffffffffffff", kIncarnation, &why).ok());
  EXPECT_EQ(why, TokenError::kBadSeal);
  // One character changed: refused.
  std::string altered = *token;
  altered[30] = altered[30] == 'A' ? 'B' : 'A';
  EXPECT_NE(Check(a, altered), std::nullopt);
  // Another authority with the very same keys has its own ring: accepted in
  // full, and a third with other keys refuses.
  TokenAuthority b = Fresh();
  EXPECT_EQ(Check(b, *token), std::nullopt);
  // The clock still applies.
  clock_.Advance(seconds(10));
  EXPECT_EQ(Check(a, *token), TokenError::kExpired);
  clock_.Advance(-seconds(10));
  EXPECT_EQ(Check(a, *token), std::nullopt);
  // The key leaves the ring: refused at once, cached or not.
  ASSERT_TRUE(a.SetKeys({TokenKey{1, std::string(32, 'z')}}).ok());
  EXPECT_EQ(Check(a, *token), TokenError::kUnknownKey);
}

// Verifiers on several threads while another thread keeps swapping rings
// that all contain the token's key: no refusal, no crash (run under TSan/ASan
// to see the memory side).
TEST_F(TokenRotationTest, SwappingTheRingWhileVerifying) {
  TokenAuthority a = Fresh();
  auto token = a.Issue(kInstance, kIncarnation, seconds(3600));
  ASSERT_TRUE(token.ok());
  const uint32_t epoch = a.IssuingEpoch();
  std::vector<TokenKey> keys;
  const auto ring = a.Epochs();
  for (uint32_t e : ring) {
    keys.push_back(TokenKey{e, *store_.Fn()(TokenKeySecretName(schedule_, e), "unused")});
  }
  std::atomic<bool> stop{false};
  std::atomic<int> refused{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        if (!a.Verify(*token, kInstance, kIncarnation).ok()) refused.fetch_add(1);
      }
    });
  }
  for (int i = 0; i < 2000; ++i) {
    // Alternate between the full ring and one with an extra verify-only key.
    std::vector<TokenKey> next = keys;
    if (i % 2 == 0)
      next.push_back(TokenKey{ring.back() + 1 + static_cast<uint32_t>(i), std::string(32, 'z')});
    ASSERT_TRUE(a.SetKeys(std::move(next), epoch).ok());
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(refused.load(), 0);
}

}  // namespace
}  // namespace openimds::auth
