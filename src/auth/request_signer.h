#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

namespace openimds::auth {

// A MAC context keyed once per key; defined in request_signer.cc, the only
// place that sees OpenSSL for it.
struct KeyedMac;

// Headers that carry a proxy's signed statement of who is asking. The proxy
// strips any a guest sends; only identity::Resolver (server) and the proxy's
// chain check read them.
inline constexpr std::string_view kNetworkHeader = "X-OpenIMDS-Network";
inline constexpr std::string_view kSourceHeader = "X-OpenIMDS-Source";
inline constexpr std::string_view kTimestampHeader = "X-OpenIMDS-Timestamp";
inline constexpr std::string_view kKeyIdHeader = "X-OpenIMDS-Key-Id";
inline constexpr std::string_view kSignatureHeader = "X-OpenIMDS-Signature";
// Response header, server -> proxy: the IP TTL / hop limit the proxy must give
// this response on its guest-facing socket (IMDSv2 token PUT). Never reaches
// a guest.
inline constexpr std::string_view kIpTtlHeader = "X-OpenIMDS-IP-TTL";
// Request header, proxy -> next hop: milliseconds the sender still waits for
// this response; an inner proxy gives up before that.
inline constexpr std::string_view kBudgetHeader = "X-OpenIMDS-Budget-Ms";
// Every header of ours starts with this (case-insensitive).
inline constexpr std::string_view kHeaderPrefix = "X-OpenIMDS-";

// Neutron / Nova's proxy protocol (openstack.md §2.2): the metadata agent
// sends these to nova-api-metadata.
inline constexpr std::string_view kNeutronInstanceIdHeader = "X-Instance-ID";
inline constexpr std::string_view kNeutronTenantIdHeader = "X-Tenant-ID";
inline constexpr std::string_view kNeutronSignatureHeader = "X-Instance-ID-Signature";

// One shared secret and the id under which it travels. Several keys may be
// accepted at once, which is how secrets rotate: add the new key everywhere
// that verifies, switch signers to it, then drop the old one.
struct SigningKey {
  std::string id;      // [A-Za-z0-9._-]{1,32}; sent in clear
  std::string secret;  // at least kMinSecretBytes bytes; never logged
};

// Shorter secrets are refused: 16 bytes of a random token are 96+ bits.
inline constexpr size_t kMinSecretBytes = 16;

// Parses a key file's text: one "KEY_ID SECRET" per line, blank lines and
// lines starting with '#' skipped, surrounding whitespace trimmed. The first
// key is the one that signs. InvalidArgument (naming the line, never the
// secret) on a malformed line, a bad id, a short secret, a duplicate id, or
// no key at all.
common::Result<std::vector<SigningKey>> ParseSigningKeys(std::string_view text);

// Why a signed identity was refused; each reason has its own counter label.
enum class SignatureError {
  kMalformed,     // a field is empty, not a number, or not 64 hex digits
  kUnknownKey,    // the key id is not among the accepted keys
  kBadSignature,  // the MAC does not match: altered, or another secret
  kStale,         // timestamp outside the replay window (either side of now)
};
std::string_view SignatureErrorName(SignatureError e);

// The identity headers' values as a proxy sends them.
struct SignedIdentity {
  std::string key_id;
  int64_t timestamp = 0;  // Unix seconds
  std::string signature;  // lowercase hex HMAC-SHA256, 64 characters
};

// Signs and verifies a proxy's statement "this request, for this method and
// target, comes from `source` in `network`, at `timestamp`":
//
//   HMAC-SHA256(secret, "openimds-identity-v1\n" METHOD "\n" TARGET "\n"
//                       NETWORK "\n" SOURCE "\n" TIMESTAMP)
//
// TARGET is the request-target as sent (path and query). None of the fields
// can contain '\n' (HTTP forbids it in a request line and header values), so
// the message is unambiguous. Verification accepts any configured key,
// compares in constant time, and refuses timestamps more than
// `replay_window` away from now: a captured request can be replayed only
// within that window, only for the same method and target, and only from a
// trusted peer address (checked by the caller).
//
// Immutable after construction; safe for concurrent use.
class RequestSigner {
 public:
  struct Options {
    // How far a timestamp may be from the verifier's clock, either way. It
    // must cover clock skew between proxy and server hosts plus the request's
    // time in flight; it bounds how long a captured request stays usable.
    std::chrono::seconds replay_window{30};
  };

  // `keys` must not be empty; ids unique, secrets >= kMinSecretBytes. The
  // first key signs; all verify. `clock` is borrowed.
  static common::Result<RequestSigner> Create(std::vector<SigningKey> keys, Options options,
                                              const common::Clock& clock);

  // Signs with the first key at the clock's current second.
  SignedIdentity Sign(std::string_view method, std::string_view target, std::string_view network,
                      std::string_view source) const;

  // OK iff `signature_hex` is the MAC of the fields under the key `key_id`
  // and `timestamp_text` is within the replay window. Otherwise
  // PermissionDenied with a message fit for logs and callers (it never
  // contains a secret or the expected MAC), and `*why` set when non-null.
  common::Status Verify(std::string_view method, std::string_view target, std::string_view network,
                        std::string_view source, std::string_view key_id,
                        std::string_view timestamp_text, std::string_view signature_hex,
                        SignatureError* why = nullptr) const;

  // The id of the signing key (first configured), for logs.
  const std::string& signing_key_id() const { return keys_.front().id; }
  const Options& options() const { return options_; }

  // The exact bytes that are MACed (exposed for tests and documentation).
  static std::string CanonicalMessage(std::string_view method, std::string_view target,
                                      std::string_view network, std::string_view source,
                                      int64_t timestamp);

 private:
  RequestSigner(std::vector<SigningKey> keys, std::vector<std::shared_ptr<const KeyedMac>> macs,
                Options options, const common::Clock& clock)
      : keys_(std::move(keys)), macs_(std::move(macs)), options_(options), clock_(&clock) {}

  // Constant after construction; the first key signs. macs_[i] is keys_[i]'s
  // secret already keyed into HMAC-SHA256 (copied per use, never changed), so
  // a signature costs one context copy rather than a key schedule.
  std::vector<SigningKey> keys_;
  std::vector<std::shared_ptr<const KeyedMac>> macs_;
  Options options_;
  const common::Clock* clock_;
};

// Neutron's signature over an instance id: lowercase hex of
// HMAC-SHA256(shared_secret, instance_id), exactly as neutron-metadata-agent
// computes it (neutron/common/utils.py: sign_instance_id).
std::string NeutronInstanceSignature(std::string_view shared_secret, std::string_view instance_id);

// True iff `signature` equals NeutronInstanceSignature(secret, instance_id);
// the comparison takes the same time wherever the first difference is (as
// Nova's hmac.compare_digest). Uppercase hex does not match, as in Nova.
bool VerifyNeutronInstanceSignature(std::string_view shared_secret, std::string_view instance_id,
                                    std::string_view signature);

}  // namespace openimds::auth
