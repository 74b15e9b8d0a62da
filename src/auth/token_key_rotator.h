#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "auth/token_authority.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/result.h"
#include "common/status.h"

namespace openimds::auth {

// Owns the IMDSv2 token authority of a process whose keys live in a shared
// secret store, and the background thread that keeps its ring current.
//
// Keys are the store's secrets named by TokenKeySecretName(period, epoch),
// created first-writer-wins through `get_or_create`, so every process on one
// store holds the same keys and accepts the others' tokens, across rotations
// too. The ring is read at Create() and then refreshed every
// min(60 s, period / 4); a failed refresh keeps the current ring (its keys
// stay good for at least one more period) and is logged and counted
// (token_key_refresh_failures_total). Gauge: imds_token_key_epoch.
//
// tokens() is safe for concurrent use (TokenAuthority::SetKeys swaps the
// ring atomically); Start and Stop are called by one thread.
class TokenKeyRotator {
 public:
  struct Options {
    // A new key epoch this often; the same on every process of one store.
    std::chrono::seconds period{std::chrono::hours(6)};
  };

  // Shortest period accepted: with 6 h of overlap, 15 min means 26 keys in
  // the ring (each verification scans it; per-thread cipher contexts are
  // cached for a few keys only).
  static constexpr std::chrono::seconds kMinPeriod{15 * 60};

  // InvalidArgument when period < kMinPeriod; the error of `get_or_create`
  // (the message says the keys could not be read) when the first ring
  // cannot be read. `clock` and `metrics` are borrowed.
  static common::Result<std::unique_ptr<TokenKeyRotator>> Create(const Options& options,
                                                                 SecretGetOrCreate get_or_create,
                                                                 const common::Clock& clock,
                                                                 common::MetricsRegistry& metrics);
  ~TokenKeyRotator();  // Stop()
  TokenKeyRotator(const TokenKeyRotator&) = delete;
  TokenKeyRotator& operator=(const TokenKeyRotator&) = delete;

  const TokenAuthority& tokens() const { return *tokens_; }

  // Starts the refresh thread. Call at most once.
  void Start();
  // Wakes and joins the refresh thread. Idempotent.
  void Stop();

 private:
  TokenKeyRotator(TokenKeySchedule schedule, SecretGetOrCreate get_or_create,
                  const common::Clock& clock, common::Counter& refresh_failures)
      : schedule_(schedule),
        get_or_create_(std::move(get_or_create)),
        clock_(clock),
        refresh_failures_(refresh_failures) {}
  common::Status Refresh();

  // Constant after construction.
  const TokenKeySchedule schedule_;
  const SecretGetOrCreate get_or_create_;
  const common::Clock& clock_;
  common::Counter& refresh_failures_;
  std::unique_ptr<TokenAuthority> tokens_;

  std::mutex mu_;
  bool stop_ = false;  // guarded by mu_
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace openimds::auth
