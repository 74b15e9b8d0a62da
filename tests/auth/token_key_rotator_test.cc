// The token authority of a serve process: keys read from (or created in) a
// shared secret store at start, refused periods, a store that fails.
#include "auth/token_key_rotator.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <string>

#include "common/clock.h"
#include "common/metrics.h"

namespace openimds::auth {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

// First writer wins, as the store's GetOrCreateSecret.
class SecretMap {
 public:
  SecretGetOrCreate Fn() {
    return
        [this](std::string_view name, std::string_view candidate) -> common::Result<std::string> {
          std::lock_guard lock(mu_);
          return secrets_.emplace(std::string(name), std::string(candidate)).first->second;
        };
  }
  size_t size() {
    std::lock_guard lock(mu_);
    return secrets_.size();
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> secrets_;
};

class TokenKeyRotatorTest : public ::testing::Test {
 protected:
  common::FakeClock clock_{system_clock::time_point(seconds(1'714'564'800))};
  common::MetricsRegistry metrics_;
  SecretMap secrets_;
};

TEST_F(TokenKeyRotatorTest, ProcessesOnOneStoreAcceptEachOthersTokens) {
  TokenKeyRotator::Options options;
  options.period = std::chrono::hours(1);
  auto a = TokenKeyRotator::Create(options, secrets_.Fn(), clock_, metrics_);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  common::MetricsRegistry other_metrics;
  auto b = TokenKeyRotator::Create(options, secrets_.Fn(), clock_, other_metrics);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_GT(secrets_.size(), 0u);  // the keys are the store's, not the placeholder

  auto token = (*a)->tokens().Issue("i-1", 3, seconds(600));
  ASSERT_TRUE(token.ok());
  EXPECT_TRUE((*b)->tokens().Verify(*token, "i-1", 3).ok());
  EXPECT_NE(metrics_.RenderPrometheus().find("imds_token_key_epoch"), std::string::npos);
}

TEST_F(TokenKeyRotatorTest, RefusesPeriodsShorterThanTheMinimum) {
  TokenKeyRotator::Options options;
  options.period = TokenKeyRotator::kMinPeriod - seconds(1);
  auto r = TokenKeyRotator::Create(options, secrets_.Fn(), clock_, metrics_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), common::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("--token-key-period must be at least 900"),
            std::string::npos);
  EXPECT_EQ(secrets_.size(), 0u);
}

TEST_F(TokenKeyRotatorTest, AStoreThatCannotBeReadKeepsItsCode) {
  auto failing = [](std::string_view, std::string_view) -> common::Result<std::string> {
    return common::Unavailable("database is locked");
  };
  auto r = TokenKeyRotator::Create({}, failing, clock_, metrics_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), common::Code::kUnavailable);
  EXPECT_EQ(r.status().message(),
            "cannot read IMDSv2 token keys from the store: database is locked");
}

TEST_F(TokenKeyRotatorTest, StopsWithoutWaitingForTheNextRefresh) {
  auto r = TokenKeyRotator::Create({}, secrets_.Fn(), clock_, metrics_);
  ASSERT_TRUE(r.ok());
  (*r)->Start();
  (*r)->Stop();  // returns at once: the refresh thread waits on a condition, not a sleep
  (*r)->Stop();  // idempotent
}

}  // namespace
}  // namespace openimds::auth
