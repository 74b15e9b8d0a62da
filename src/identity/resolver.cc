#include "identity/resolver.h"

#include <charconv>
#include <utility>

namespace openimds::identity {
namespace {

constexpr std::string_view kRejected = "identity_rejected_total";
constexpr std::string_view kRejectedHelp =
    "Requests whose asserted caller identity was refused, by reason.";

void Count(common::Counter* c) {
  if (c != nullptr) c->Inc();
}

// The value of a header that must appear exactly once; nullopt if absent,
// `*duplicate` set if it appears more than once.
std::optional<std::string_view> Single(const common::Request& r, std::string_view name,
                                       bool* duplicate) {
  int n = r.HeaderCount(name);
  if (n > 1) *duplicate = true;
  if (n != 1) return std::nullopt;
  return r.Header(name);
}

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

common::Result<Resolver> Resolver::Create(Options options, const common::Clock& clock,
                                          common::MetricsRegistry& metrics) {
  if (options.proxy_keys.empty() && options.neutron_shared_secret.empty()) {
    return common::InvalidArgument(
        "a proxy-mode listener needs proxy keys or a Neutron shared secret");
  }
  if (options.trusted_peers.empty() && !options.trust_unix_socket) {
    return common::InvalidArgument("a proxy-mode listener needs at least one trusted peer");
  }
  auto keys = MakeKeys(std::move(options.proxy_keys), std::move(options.neutron_shared_secret),
                       options.replay_window, clock);
  if (!keys.ok()) return keys.status();
  Resolver r;
  r.proxy_mode_ = true;
  r.clock_ = &clock;
  r.keys_ = std::make_unique<auth::Swappable<Keys>>(std::move(keys).value());
  options.proxy_keys.clear();
  options.neutron_shared_secret.clear();
  r.options_ = std::move(options);
  auto counter = [&metrics](std::string_view reason) {
    return &metrics.GetCounter(kRejected, kRejectedHelp, "reason=\"" + std::string(reason) + "\"");
  };
  Counters& c = r.counters_;
  c.untrusted_peer = counter("untrusted_peer");
  c.missing_identity = counter("missing_identity");
  c.duplicate_header = counter("duplicate_header");
  c.bad_source = counter("bad_source");
  c.malformed = counter("malformed");
  c.unknown_key = counter("unknown_key");
  c.bad_signature = counter("bad_signature");
  c.stale = counter("stale");
  c.neutron_missing_header = counter("neutron_missing_header");
  c.neutron_bad_signature = counter("neutron_bad_signature");
  c.neutron_disabled = counter("neutron_disabled");
  c.tenant_mismatch = counter("tenant_mismatch");
  const std::string_view kAccepted = "identity_accepted_total";
  const std::string_view kAcceptedHelp = "Requests identified from asserted identity, by kind.";
  c.accepted_proxy = &metrics.GetCounter(kAccepted, kAcceptedHelp, "via=\"proxy\"");
  c.accepted_neutron = &metrics.GetCounter(kAccepted, kAcceptedHelp, "via=\"neutron\"");
  return r;
}

common::Result<std::shared_ptr<const Resolver::Keys>> Resolver::MakeKeys(
    std::vector<auth::SigningKey> proxy_keys, std::string neutron_shared_secret,
    std::chrono::seconds replay_window, const common::Clock& clock) {
  if (proxy_keys.empty() && neutron_shared_secret.empty()) {
    return common::InvalidArgument(
        "a proxy-mode listener needs proxy keys or a Neutron shared secret");
  }
  auto keys = std::make_shared<Keys>();
  if (!proxy_keys.empty()) {
    auth::RequestSigner::Options so;
    so.replay_window = replay_window;
    auto verifier = auth::RequestSigner::Create(std::move(proxy_keys), so, clock);
    if (!verifier.ok()) return verifier.status();
    keys->verifier.emplace(std::move(verifier).value());
  }
  keys->neutron_shared_secret = std::move(neutron_shared_secret);
  return std::shared_ptr<const Keys>(std::move(keys));
}

common::Status Resolver::SetKeys(std::vector<auth::SigningKey> proxy_keys,
                                 std::string neutron_shared_secret) {
  if (!proxy_mode_ || !keys_) {
    return common::FailedPrecondition("a direct-mode resolver has no keys to replace");
  }
  auto keys = MakeKeys(std::move(proxy_keys), std::move(neutron_shared_secret),
                       options_.replay_window, *clock_);
  if (!keys.ok()) return keys.status();
  keys_->Set(std::move(keys).value());
  return common::Status::Ok();
}

common::Result<CallerIdentity> Resolver::Resolve(const common::Request& request) const {
  if (proxy_mode_) return ResolveProxied(request);
  if (request.local_port == 0) {
    return common::InvalidArgument("this listener has no guest address to identify the caller by");
  }
  CallerIdentity who;
  who.via = CallerIdentity::Via::kDirect;
  who.network = request.listener_network;
  who.address = request.peer;
  return who;
}

bool Resolver::Trusted(const common::Request& request) const {
  // A unix-socket listener has no local port (and no peer address).
  if (request.local_port == 0) return options_.trust_unix_socket;
  for (const auto& cidr : options_.trusted_peers) {
    if (cidr.Contains(request.peer)) return true;
  }
  return false;
}

common::Result<CallerIdentity> Resolver::ResolveProxied(const common::Request& request) const {
  if (!Trusted(request)) {
    Count(counters_.untrusted_peer);
    return common::PermissionDenied("peer " + request.peer.ToString() +
                                    " is not a trusted proxy on this listener");
  }
  // Our own headers take precedence: a request carrying both is from an
  // openimds proxy (which strips the Neutron ones a guest might send).
  // One look-up per request (lock-free); `keys` is used before this thread
  // reads any other Swappable.
  const Keys& keys = keys_->Get();
  if (request.HeaderCount(auth::kSignatureHeader) > 0 ||
      request.HeaderCount(auth::kNetworkHeader) > 0) {
    return ResolveSigned(keys, request);
  }
  if (request.HeaderCount(auth::kNeutronInstanceIdHeader) > 0 ||
      request.HeaderCount(auth::kNeutronSignatureHeader) > 0 ||
      request.HeaderCount(auth::kNeutronTenantIdHeader) > 0) {
    return ResolveNeutron(keys, request);
  }
  Count(counters_.missing_identity);
  return common::InvalidArgument("request from proxy " + request.peer.ToString() +
                                 " carries no caller identity headers");
}

common::Result<CallerIdentity> Resolver::ResolveSigned(const Keys& keys,
                                                       const common::Request& request) const {
  if (!keys.verifier) {
    Count(counters_.unknown_key);
    return common::PermissionDenied("proxy-signed identity is not accepted here (no proxy keys)");
  }
  bool dup = false;
  auto network = Single(request, auth::kNetworkHeader, &dup);
  auto source = Single(request, auth::kSourceHeader, &dup);
  auto timestamp = Single(request, auth::kTimestampHeader, &dup);
  auto key_id = Single(request, auth::kKeyIdHeader, &dup);
  auto signature = Single(request, auth::kSignatureHeader, &dup);
  if (dup) {
    Count(counters_.duplicate_header);
    return common::InvalidArgument("an identity header appears more than once");
  }
  if (!network || !source || !timestamp || !key_id || !signature) {
    Count(counters_.missing_identity);
    return common::InvalidArgument(
        "signed identity is incomplete (need " + std::string(auth::kNetworkHeader) + ", " +
        std::string(auth::kSourceHeader) + ", " + std::string(auth::kTimestampHeader) + ", " +
        std::string(auth::kKeyIdHeader) + ", " + std::string(auth::kSignatureHeader) + ")");
  }
  auth::SignatureError why = auth::SignatureError::kMalformed;
  common::Status verified = keys.verifier->Verify(request.method, request.target, *network, *source,
                                              *key_id, *timestamp, *signature, &why);
  if (!verified.ok()) {
    switch (why) {
      case auth::SignatureError::kMalformed:
        Count(counters_.malformed);
        break;
      case auth::SignatureError::kUnknownKey:
        Count(counters_.unknown_key);
        break;
      case auth::SignatureError::kBadSignature:
        Count(counters_.bad_signature);
        break;
      case auth::SignatureError::kStale:
        Count(counters_.stale);
        break;
    }
    return common::PermissionDenied("from proxy " + request.peer.ToString() + ": " +
                                    verified.message());
  }
  // Checked after the signature, so an unsigned guess at the format learns nothing.
  auto address = common::IpAddress::Parse(*source);
  if (!address) {
    Count(counters_.bad_source);
    return common::InvalidArgument("signed source '" + std::string(*source) +
                                   "' is not an IP address");
  }
  Count(counters_.accepted_proxy);
  CallerIdentity who;
  who.via = CallerIdentity::Via::kProxy;
  who.network = *network;
  who.address = *address;
  return who;
}

common::Result<CallerIdentity> Resolver::ResolveNeutron(const Keys& keys,
                                                        const common::Request& request) const {
  if (keys.neutron_shared_secret.empty()) {
    Count(counters_.neutron_disabled);
    return common::PermissionDenied(
        "Neutron instance headers are not accepted here (no shared secret configured)");
  }
  // Nova's order and wording (handler.py: _handle_instance_id_request).
  bool dup = false;
  auto instance_id = Single(request, auth::kNeutronInstanceIdHeader, &dup);
  auto signature = Single(request, auth::kNeutronSignatureHeader, &dup);
  auto tenant_id = Single(request, auth::kNeutronTenantIdHeader, &dup);
  if (dup) {
    Count(counters_.duplicate_header);
    return common::InvalidArgument("an X-Instance-ID, X-Tenant-ID or signature header repeats");
  }
  if (!instance_id || instance_id->empty()) {
    Count(counters_.neutron_missing_header);
    return common::InvalidArgument("X-Instance-ID header is missing from request.");
  }
  if (!signature || signature->empty()) {
    Count(counters_.neutron_missing_header);
    return common::InvalidArgument("X-Instance-ID-Signature header is missing from request.");
  }
  if (!tenant_id || tenant_id->empty()) {
    Count(counters_.neutron_missing_header);
    return common::InvalidArgument("X-Tenant-ID header is missing from request.");
  }
  if (!auth::VerifyNeutronInstanceSignature(keys.neutron_shared_secret, *instance_id,
                                            *signature)) {
    Count(counters_.neutron_bad_signature);
    return common::PermissionDenied("Invalid proxy request signature (instance " +
                                    std::string(*instance_id) + " from " + request.peer.ToString() +
                                    ").");
  }
  Count(counters_.accepted_neutron);
  CallerIdentity who;
  who.via = CallerIdentity::Via::kNeutron;
  who.instance_id = *instance_id;
  who.tenant_id = *tenant_id;
  who.has_address = false;
  if (auto xff = request.Header("X-Forwarded-For")) {
    // The agent sends exactly one address; Nova takes the first of a list.
    std::string_view first = TrimSpaces(xff->substr(0, xff->find(',')));
    if (auto ip = common::IpAddress::Parse(first)) {
      who.address = *ip;
      who.has_address = true;
    }
  }
  return who;
}

common::Result<const model::Instance*> Resolver::Lookup(const catalog::Snapshot& snapshot,
                                                        const CallerIdentity& who) const {
  if (who.via == CallerIdentity::Via::kNeutron) {
    const catalog::Entry* entry = snapshot.FindById(who.instance_id);
    if (entry == nullptr) {
      return common::NotFound("no instance " + std::string(who.instance_id));
    }
    if (entry->instance->account_id != who.tenant_id) {
      Count(counters_.tenant_mismatch);
      // Nova answers 404 here, not 403: the tenant does not own such an instance.
      return common::NotFound("instance " + std::string(who.instance_id) +
                              " does not belong to tenant " + std::string(who.tenant_id));
    }
    return entry->instance.get();
  }
  const model::Instance* instance = snapshot.FindByAddress(who.network, who.address);
  if (instance == nullptr) {
    // Shown to the caller, who is a stranger: its own address, nothing of
    // the listener's configuration (the service logs the network).
    return common::NotFound("no instance is registered for " + who.address.ToString());
  }
  return instance;
}

void Resolver::AdaptResponse(const CallerIdentity& who, common::Response& out) {
  if (!out.ip_ttl || who.via == CallerIdentity::Via::kDirect) return;
  if (who.via == CallerIdentity::Via::kProxy) {
    char buf[8];
    auto r = std::to_chars(buf, buf + sizeof(buf), *out.ip_ttl);
    out.AddHeader(std::string(auth::kIpTtlHeader), std::string(buf, r.ptr));
  }
  out.ip_ttl.reset();
}

}  // namespace openimds::identity
