#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

namespace openimds::auth {

// A 256-bit AEAD key with its epoch number. Epochs only grow; the newest
// key issues tokens, every key in the ring verifies them.
struct TokenKey {
  uint32_t epoch = 0;
  std::string key;  // exactly 32 bytes
};

// Why a token was refused; each has its own counter label.
enum class TokenError {
  kMalformed,      // wrong length, bad encoding, unknown version
  kUnknownKey,     // epoch not in the ring (rotated out, or from another deployment)
  kBadSeal,        // authentication failed: altered, or bound to another instance or
                   // another incarnation of it
  kExpired,
};
std::string_view TokenErrorName(TokenError e);

// The request header a guest sends its token in (EC2's name; every flavour
// that asks for the token reads it from there).
inline constexpr std::string_view kTokenHeader = "X-aws-ec2-metadata-token";

// Issues and verifies IMDSv2 session tokens: stateless AES-256-GCM blobs that
// bind (instance id, incarnation, key epoch, expiry). The incarnation
// (model::ServerManaged) changes when an instance is deleted and created
// again with the same id, so a token issued to the old instance is refused
// for the new one. Nothing is kept per token, so memory does not grow with
// tokens and several processes sharing the key ring accept each other's
// tokens.
//
// The ring can be replaced while the authority is in use (SetKeys), which is
// how keys rotate: the hot path reads the current ring with one atomic load
// and no lock. Safe for concurrent use; Issue and Verify never block.
class TokenAuthority {
 public:
  // Token layout before base64url (no padding):
  //   version(1) | epoch(4, big endian) | nonce(12) | sealed expiry(8) | tag(16)
  // with AAD = version | epoch | incarnation(8, big endian) | instance id.
  // 41 bytes -> 55 characters. Version 2; version 1 (AAD without the
  // incarnation) is refused as malformed, so tokens issued before an upgrade
  // stop working and clients fetch new ones (they do on 401).
  static constexpr size_t kTokenChars = 55;

  // `keys` must not be empty; each key exactly 32 bytes, epochs distinct
  // (InvalidArgument otherwise). The newest epoch issues.
  static common::Result<TokenAuthority> Create(std::vector<TokenKey> keys,
                                               const common::Clock& clock);

  // Movable only before it is shared between threads; never copied.
  TokenAuthority(TokenAuthority&& other) noexcept;
  TokenAuthority& operator=(TokenAuthority&&) = delete;
  TokenAuthority(const TokenAuthority&) = delete;
  TokenAuthority& operator=(const TokenAuthority&) = delete;
  ~TokenAuthority();

  // A token for incarnation `incarnation` of `instance_id` valid for `ttl`
  // from now. Internal only if the RNG or cipher fails.
  common::Result<std::string> Issue(std::string_view instance_id, int64_t incarnation,
                                    std::chrono::seconds ttl) const;

  // OK if `token` was issued for this incarnation of `instance_id` by a key
  // in the ring and has not expired; otherwise Unauthenticated, with `*why`
  // set when non-null (kBadSeal for another instance or incarnation). The
  // length is checked before any decoding. Allocation-free. A token this
  // thread verified recently, for the same instance and incarnation and with
  // the same ring, is accepted without running the cipher again (its expiry
  // is still checked): clients present one token for many requests.
  common::Status Verify(std::string_view token, std::string_view instance_id,
                        int64_t incarnation, TokenError* why = nullptr) const;

  // Replaces the ring atomically: calls already running finish with the old
  // ring, later ones see the new one. `issuing_epoch` names the key that
  // issues (default: the newest); the others only verify, so a key for the
  // next period can be installed before it is used. Same checks as Create,
  // plus NotFound when `issuing_epoch` is not in `keys`; on error the ring in
  // use is unchanged. Thread-safe; callers that race each install theirs.
  common::Status SetKeys(std::vector<TokenKey> keys,
                         std::optional<uint32_t> issuing_epoch = std::nullopt);

  // The epochs in the ring, oldest first, and the one that issues.
  std::vector<uint32_t> Epochs() const;
  uint32_t IssuingEpoch() const;

  // Random 32-byte key material (for app/ to create or rotate keys).
  static common::Result<std::string> NewKeyMaterial();

 private:
  struct Ring {
    std::vector<TokenKey> keys;  // sorted by epoch
    size_t issuing = 0;          // index into keys
    uint64_t id = 0;             // unique in the process (never reused, unlike an address)
  };
  using SteadyTime = std::chrono::steady_clock::time_point;

  TokenAuthority(std::unique_ptr<const Ring> ring, const common::Clock& clock);
  static common::Result<std::unique_ptr<const Ring>> MakeRing(
      std::vector<TokenKey> keys, std::optional<uint32_t> issuing_epoch);

  // The ring in use. Readers load it without a lock; a replaced ring is kept
  // (retired_) for kRetireGrace before it is freed, far longer than any
  // Issue or Verify call holds the pointer.
  std::atomic<const Ring*> ring_;
  const common::Clock* clock_;
  mutable std::mutex retire_mu_;
  std::vector<std::pair<SteadyTime, const Ring*>> retired_;  // guarded by retire_mu_
};

// When token keys rotate. Every `serve` sharing a store must use the same
// schedule: the epoch a token carries is derived from the wall clock.
struct TokenKeySchedule {
  // A new key starts issuing every `period` (epoch = Unix time / period).
  std::chrono::seconds period{std::chrono::hours(6)};
  // How long a key keeps verifying after it stopped issuing: the longest
  // token lifetime EC2 allows (21600 s), so no token outlives its key.
  std::chrono::seconds max_token_ttl{21600};
};

// The epochs a process needs at `now`: `issuing` = now / period; from
// `first` (the epoch of a token issued max_token_ttl ago, less one period
// for clocks that lag) to `last` = issuing + 1 (a process whose clock runs
// ahead may already issue with it). Precondition: period >= 1 s.
struct TokenEpochWindow {
  uint32_t first = 0;
  uint32_t issuing = 0;
  uint32_t last = 0;
};
TokenEpochWindow TokenEpochsAt(std::chrono::system_clock::time_point now,
                               const TokenKeySchedule& schedule);

// The store secret that holds `epoch`'s key: "imds_token_key/<period s>/<epoch>".
std::string TokenKeySecretName(const TokenKeySchedule& schedule, uint32_t epoch);

// Reads (or creates, first writer wins) the key of every epoch in
// TokenEpochsAt(now) through `get_or_create(name, candidate)` and installs
// them with SetKeys. Processes that share the secret store agree on every
// key, so each accepts the others' tokens, across rotations too. Errors:
// whatever get_or_create returns (the ring in use is then unchanged),
// Internal when a stored key is not 32 bytes.
using SecretGetOrCreate =
    std::function<common::Result<std::string>(std::string_view name, std::string_view candidate)>;
common::Status RefreshTokenKeys(TokenAuthority& authority,
                                std::chrono::system_clock::time_point now,
                                const TokenKeySchedule& schedule,
                                const SecretGetOrCreate& get_or_create);

}  // namespace openimds::auth
