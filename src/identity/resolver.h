#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/request_signer.h"
#include "auth/signer_holder.h"
#include "catalog/catalog.h"
#include "common/clock.h"
#include "common/http_message.h"
#include "common/ip_address.h"
#include "common/metrics.h"
#include "common/result.h"
#include "model/instance.h"

namespace openimds::identity {

// Who is asking. Views point into the Request (headers) or the listener's
// configuration; valid while the request is handled.
struct CallerIdentity {
  enum class Via {
    kDirect,   // the TCP peer itself, on a listener that serves one network
    kProxy,    // an openimds proxy's signed statement (network, source)
    kNeutron,  // neutron-metadata-agent's signed instance id (Nova's protocol)
  };
  Via via = Via::kDirect;

  // kDirect and kProxy: the caller is whoever owns `address` in `network`.
  // kNeutron: `address` is X-Forwarded-For when it parses (informational, as
  // in Nova: it is not part of what the agent signs), and `network` is empty.
  std::string_view network;
  common::IpAddress address;
  bool has_address = true;

  // kNeutron only: the caller is the instance with this id, which must
  // belong to `tenant_id` (model::Instance::account_id).
  std::string_view instance_id;
  std::string_view tenant_id;
};

// Turns (listener, peer address, headers) into a CallerIdentity, and a
// CallerIdentity into the instance it designates. This is the only place
// identity is decided; nothing else reads identity headers.
//
// Direct mode (a Resolver built by the default constructor): the listener's
// network and the TCP peer address; identity headers are never read.
//
// Proxy mode (Resolver::Create, for listeners that face proxies): the peer
// must be trusted — inside one of `trusted_peers`, or on a unix-socket
// listener when `trust_unix_socket` (the socket's file mode is then the
// access control) — and the request must carry either
//   * an openimds proxy's signed identity (auth/request_signer.h headers),
//     verified with any accepted key inside the replay window; or
//   * when a Neutron shared secret is configured, Nova's headers
//     X-Instance-ID, X-Tenant-ID, X-Instance-ID-Signature (lowercase hex
//     HMAC-SHA256 of the instance id) and X-Forwarded-For, so an unmodified
//     neutron-metadata-agent can use OpenIMDS in place of nova-api-metadata.
//
// Results of Resolve, each counted in identity_rejected_total{reason=...}:
//   untrusted_peer      PermissionDenied (403): peer not trusted
//   missing_identity    InvalidArgument (400): trusted peer, no identity headers
//   duplicate_header    InvalidArgument (400): an identity header sent twice
//   bad_source          InvalidArgument (400): signed source is not an IP address
//   malformed|unknown_key|bad_signature|stale
//                       PermissionDenied (403): the proxy signature check
//   neutron_missing_header  InvalidArgument (400), as Nova
//   neutron_bad_signature   PermissionDenied (403), as Nova
//   neutron_disabled    PermissionDenied (403): Neutron headers, no secret set
// The messages name the reason, never a secret or an expected MAC; the
// caller logs them (one line per refusal).
//
// Safe for concurrent use. Only the keys change after construction
// (SetKeys, on SIGHUP); Resolve reads them lock-free (auth::Swappable).
class Resolver {
 public:
  struct Options {
    // Peers allowed to assert identity (proxies, neutron-metadata-agents).
    std::vector<common::Cidr> trusted_peers;
    // Requests on a unix-socket listener (no peer address) count as trusted.
    bool trust_unix_socket = true;
    // Keys whose proxy signatures are accepted (any of them; the first is
    // not special here). Empty: proxy-signed identity is refused.
    std::vector<auth::SigningKey> proxy_keys;
    // See auth::RequestSigner::Options::replay_window.
    std::chrono::seconds replay_window{30};
    // Nova's [neutron]metadata_proxy_shared_secret. Empty: Neutron headers
    // are refused (Nova accepts an empty secret; we do not).
    std::string neutron_shared_secret;
  };

  // Direct mode.
  Resolver() = default;

  // Proxy mode. InvalidArgument when neither proxy keys nor a Neutron secret
  // are given, when no peer could ever be trusted, or when a key is invalid
  // (see auth::RequestSigner::Create). `clock` and `metrics` are borrowed.
  static common::Result<Resolver> Create(Options options, const common::Clock& clock,
                                         common::MetricsRegistry& metrics);

  bool proxy_mode() const { return proxy_mode_; }

  // Replaces the accepted proxy keys and the Neutron shared secret while
  // requests are being resolved: those already running finish with the old
  // ones, later ones use the new ones. Same rules as Create: InvalidArgument
  // when both are empty or a key is invalid (the message names the key id,
  // never a secret); FailedPrecondition in direct mode. On error the keys in
  // use are unchanged. Thread-safe.
  common::Status SetKeys(std::vector<auth::SigningKey> proxy_keys,
                         std::string neutron_shared_secret);

  // Direct mode: InvalidArgument when the request has no peer address (a unix
  // socket listener). Proxy mode: see the table above.
  common::Result<CallerIdentity> Resolve(const common::Request& request) const;

  // The instance `who` designates in `snapshot`: by (network, address), or by
  // id for Neutron callers. NotFound when none does, or when a Neutron
  // caller's tenant differs from the instance's account_id (404, as Nova;
  // counted as identity_rejected_total{reason="tenant_mismatch"}).
  common::Result<const model::Instance*> Lookup(const catalog::Snapshot& snapshot,
                                                const CallerIdentity& who) const;

  // Adapts a rendered response to the hop it leaves on. A proxied caller is
  // not on the other end of this socket, so an IP TTL instruction (IMDSv2
  // token PUT) cannot be applied here: it moves into the X-OpenIMDS-IP-TTL
  // header, which the proxy applies on its guest-facing socket and strips.
  // For Neutron callers the instruction is dropped: the agent cannot apply
  // it. Direct callers: unchanged.
  static void AdaptResponse(const CallerIdentity& who, common::Response& out);

 private:
  struct Counters {
    common::Counter* untrusted_peer = nullptr;
    common::Counter* missing_identity = nullptr;
    common::Counter* duplicate_header = nullptr;
    common::Counter* bad_source = nullptr;
    common::Counter* malformed = nullptr;
    common::Counter* unknown_key = nullptr;
    common::Counter* bad_signature = nullptr;
    common::Counter* stale = nullptr;
    common::Counter* neutron_missing_header = nullptr;
    common::Counter* neutron_bad_signature = nullptr;
    common::Counter* neutron_disabled = nullptr;
    common::Counter* tenant_mismatch = nullptr;
    common::Counter* accepted_proxy = nullptr;
    common::Counter* accepted_neutron = nullptr;
  };

  // What SetKeys replaces, as one immutable value.
  struct Keys {
    std::optional<auth::RequestSigner> verifier;  // set iff proxy keys were given
    std::string neutron_shared_secret;            // empty: Neutron headers refused
  };
  static common::Result<std::shared_ptr<const Keys>> MakeKeys(
      std::vector<auth::SigningKey> proxy_keys, std::string neutron_shared_secret,
      std::chrono::seconds replay_window, const common::Clock& clock);

  common::Result<CallerIdentity> ResolveProxied(const common::Request& request) const;
  common::Result<CallerIdentity> ResolveSigned(const Keys& keys,
                                               const common::Request& request) const;
  common::Result<CallerIdentity> ResolveNeutron(const Keys& keys,
                                                const common::Request& request) const;
  bool Trusted(const common::Request& request) const;

  // Constant after construction. options_ keeps no secret: proxy_keys and
  // neutron_shared_secret are moved into keys_.
  bool proxy_mode_ = false;
  Options options_;
  const common::Clock* clock_ = nullptr;
  Counters counters_;
  // Proxy mode only (null in direct mode): the keys in use, replaced by
  // SetKeys. Behind a pointer so the Resolver stays movable until shared.
  std::unique_ptr<auth::Swappable<Keys>> keys_;
};

}  // namespace openimds::identity
