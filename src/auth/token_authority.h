#pragma once

#include <chrono>
#include <cstdint>
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
  kBadSeal,        // authentication failed: altered, or bound to another instance
  kExpired,
};
std::string_view TokenErrorName(TokenError e);

// Issues and verifies IMDSv2 session tokens: stateless AES-256-GCM blobs that
// bind (instance id, key epoch, expiry). Nothing is kept per token, so memory
// does not grow with tokens and several processes sharing the key ring accept
// each other's tokens. Immutable after construction; safe for concurrent use.
class TokenAuthority {
 public:
  // Token layout before base64url (no padding):
  //   version(1) | epoch(4, big endian) | nonce(12) | sealed expiry(8) | tag(16)
  // with AAD = version | epoch | instance id. 41 bytes -> 55 characters.
  static constexpr size_t kTokenChars = 55;

  // `keys` must not be empty; each key exactly 32 bytes (checked by Create).
  static common::Result<TokenAuthority> Create(std::vector<TokenKey> keys,
                                               const common::Clock& clock);

  // A token for `instance_id` valid for `ttl` from now.
  // Internal only if the RNG or cipher fails.
  common::Result<std::string> Issue(std::string_view instance_id, std::chrono::seconds ttl) const;

  // OK if `token` was issued for `instance_id` by a key in the ring and has
  // not expired; otherwise Unauthenticated, with `*why` set when non-null.
  // The length is checked before any decoding.
  common::Status Verify(std::string_view token, std::string_view instance_id,
                        TokenError* why = nullptr) const;

  // Random 32-byte key material (for app/ to create or rotate keys).
  static common::Result<std::string> NewKeyMaterial();

 private:
  TokenAuthority(std::vector<TokenKey> keys, const common::Clock& clock)
      : keys_(std::move(keys)), clock_(&clock) {}

  std::vector<TokenKey> keys_;  // newest last; constant after construction
  const common::Clock* clock_;
};

}  // namespace openimds::auth
