#include "auth/token_key_rotator.h"

#include <algorithm>
#include <string>

#include "common/log.h"

namespace openimds::auth {
namespace {
constexpr std::string_view kComponent = "serve";
}  // namespace

common::Result<std::unique_ptr<TokenKeyRotator>> TokenKeyRotator::Create(
    const Options& options, SecretGetOrCreate get_or_create, const common::Clock& clock,
    common::MetricsRegistry& metrics) {
  if (options.period < kMinPeriod) {
    return common::InvalidArgument("--token-key-period must be at least " +
                                   std::to_string(kMinPeriod.count()) + " seconds");
  }
  TokenKeySchedule schedule;
  schedule.period = options.period;
  std::unique_ptr<TokenKeyRotator> rotator(new TokenKeyRotator(
      schedule, std::move(get_or_create), clock,
      metrics.GetCounter("token_key_refresh_failures_total",
                         "IMDSv2 token key refreshes that failed (the ring in use was kept)")));

  // The ring starts with a throw-away key that is replaced before anything
  // is served: the real keys come from the store.
  auto placeholder = TokenAuthority::NewKeyMaterial();
  if (!placeholder.ok()) return placeholder.status();
  auto tokens = TokenAuthority::Create({TokenKey{0, *placeholder}}, clock);
  if (!tokens.ok()) return tokens.status();
  rotator->tokens_ = std::make_unique<TokenAuthority>(std::move(*tokens));
  if (common::Status s = rotator->Refresh(); !s.ok()) {
    return common::Status(s.code(), "cannot read IMDSv2 token keys from the store: " + s.message());
  }
  TokenAuthority* t = rotator->tokens_.get();
  metrics.AddGauge("imds_token_key_epoch", "Epoch of the key that issues IMDSv2 tokens.",
                   [t] { return static_cast<double>(t->IssuingEpoch()); });
  return rotator;
}

common::Status TokenKeyRotator::Refresh() {
  return RefreshTokenKeys(*tokens_, clock_.Now(), schedule_, get_or_create_);
}

void TokenKeyRotator::Start() {
  const auto interval =
      std::min<std::chrono::seconds>(std::chrono::seconds(60), schedule_.period / 4);
  thread_ = std::thread([this, interval] {
    std::unique_lock lock(mu_);
    while (!wake_.wait_for(lock, interval, [this] { return stop_; })) {
      lock.unlock();
      const uint32_t before = tokens_->IssuingEpoch();
      if (common::Status s = Refresh(); !s.ok()) {
        refresh_failures_.Inc();
        common::LogWarn(kComponent, "IMDSv2 token key refresh failed (keeping the current keys): " +
                                        s.ToString());
      } else if (tokens_->IssuingEpoch() != before) {
        common::LogInfo(kComponent, "IMDSv2 token keys rotated to epoch " +
                                        std::to_string(tokens_->IssuingEpoch()));
      }
      lock.lock();
    }
  });
}

void TokenKeyRotator::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

TokenKeyRotator::~TokenKeyRotator() { Stop(); }

}  // namespace openimds::auth
