// Fuzz target: the signed identity a proxy adds (auth/request_signer.h) as
// the server reads it (identity::Resolver in proxy mode), Neutron's
// signature, key files, and the proxy's header rules for our headers.
//
// Input, one field per line:
//   METHOD, TARGET, NETWORK, SOURCE, KEY_ID, TIMESTAMP, SIGNATURE
//   then "Name: value" header lines up to an empty line (sent along, so
//     duplicates and Neutron's X-Instance-ID* headers come from here)
//   then the text of a key file ("KEY_ID SECRET" lines).
// Each X-OpenIMDS-* header is sent only when its line is not empty.
//
// Invariants (each a FUZZ_CHECK):
//   - nothing is accepted without the key: RequestSigner::Verify and
//     Resolver::Resolve accept only a signature equal to HMAC-SHA256 under
//     the configured key over the canonical message (recomputed here), with
//     a timestamp inside the replay window; a verifier whose secret the
//     input cannot know accepts nothing; Neutron headers resolve only with
//     Neutron's signature of that instance id;
//   - a peer that is not trusted is refused whatever it sends; a trusted
//     TCP peer gets the answer the unix socket gets;
//   - every refusal is PermissionDenied or InvalidArgument;
//   - a key file ParseSigningKeys accepts holds valid, unique ids and long
//     enough secrets without blanks, makes a RequestSigner, and what it
//     signs verifies (and stops verifying for another target);
//   - the proxy strips every X-OpenIMDS-* header a guest sends and never
//     passes one from upstream on; ParseIpTtl gives nothing or 1..255.

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/request_signer.h"
#include "common/clock.h"
#include "common/http_message.h"
#include "common/ip_address.h"
#include "common/metrics.h"
#include "common/time_format.h"
#include "fuzz/fuzz_check.h"
#include "identity/resolver.h"
#include "proxy/header_policy.h"

namespace openimds::fuzz {
namespace {

constexpr std::string_view kKeyId = "k1";
constexpr std::string_view kSecret = "fuzz-proxy-secret-0123456789abcdef";
constexpr std::string_view kOldKeyId = "k0";
constexpr std::string_view kOldSecret = "fuzz-proxy-old-secret-0123456789";
constexpr std::string_view kNeutronSecret = "fuzz-neutron-secret-0123456789";
constexpr std::string_view kSecretMarker = "fuzz-secret-marker-7f3e";

struct World {
  common::FakeClock clock{*common::ParseRfc3339("2026-11-25T12:00:00Z")};
  common::MetricsRegistry metrics;
  std::optional<auth::RequestSigner> verifier;  // k1 and k0
  std::optional<auth::RequestSigner> stranger;  // k1 with a secret nobody has
  std::optional<identity::Resolver> resolver;
  std::optional<proxy::HeaderPolicy> policy;

  World() {
    std::vector<auth::SigningKey> keys = {{std::string(kKeyId), std::string(kSecret)},
                                          {std::string(kOldKeyId), std::string(kOldSecret)}};
    auto v = auth::RequestSigner::Create(keys, {}, clock);
    FUZZ_CHECK(v.ok(), v.status().ToString());
    verifier.emplace(std::move(v).value());
    auto s = auth::RequestSigner::Create(
        {{std::string(kKeyId), "a-secret-that-no-input-holds-9f3c2d"}}, {}, clock);
    FUZZ_CHECK(s.ok(), s.status().ToString());
    stranger.emplace(std::move(s).value());

    identity::Resolver::Options ro;
    ro.trusted_peers = {*common::Cidr::Parse("10.0.0.0/8"), *common::Cidr::Parse("fd00::/8")};
    ro.trust_unix_socket = true;
    ro.proxy_keys = std::move(keys);
    ro.neutron_shared_secret = std::string(kNeutronSecret);
    auto r = identity::Resolver::Create(std::move(ro), clock, metrics);
    FUZZ_CHECK(r.ok(), r.status().ToString());
    resolver.emplace(std::move(r).value());

    auto p = proxy::HeaderPolicy::Create();
    FUZZ_CHECK(p.ok(), p.status().ToString());
    policy.emplace(std::move(p).value());
  }
};

World& TheWorld() {
  static World* world = new World();
  return *world;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && common::EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

// The signature `secret` makes over these fields at `timestamp` (by a signer
// whose clock reads that second), or nullopt for a timestamp text Verify
// cannot read.
std::optional<std::string> ExpectedSignature(std::string_view secret, std::string_view method,
                                             std::string_view target, std::string_view network,
                                             std::string_view source,
                                             std::string_view timestamp_text) {
  int64_t ts = 0;
  auto r = std::from_chars(timestamp_text.data(), timestamp_text.data() + timestamp_text.size(),
                           ts);
  if (r.ec != std::errc() || r.ptr != timestamp_text.data() + timestamp_text.size()) {
    return std::nullopt;
  }
  // Only called for accepted timestamps, which are near the clock: no overflow.
  common::FakeClock at{std::chrono::system_clock::time_point(std::chrono::seconds(ts))};
  auto signer = auth::RequestSigner::Create({{"any", std::string(secret)}}, {}, at);
  FUZZ_CHECK(signer.ok(), signer.status().ToString());
  return signer->Sign(method, target, network, source).signature;
}

std::optional<std::string> SecretOf(std::string_view key_id) {
  if (key_id == kKeyId) return std::string(kSecret);
  if (key_id == kOldKeyId) return std::string(kOldSecret);
  return std::nullopt;
}

struct Fields {
  std::string_view method, target, network, source, key_id, timestamp, signature;
};

void CheckVerify(World& w, const Fields& f) {
  auth::SignatureError why{};
  const common::Status s = w.verifier->Verify(f.method, f.target, f.network, f.source, f.key_id,
                                              f.timestamp, f.signature, &why);
  if (s.ok()) {
    const auto secret = SecretOf(f.key_id);
    FUZZ_CHECK(secret.has_value(), "accepted under a key id we do not have");
    const auto expected =
        ExpectedSignature(*secret, f.method, f.target, f.network, f.source, f.timestamp);
    FUZZ_CHECK(expected && *expected == f.signature,
               "accepted a signature the key did not make: " + Printable(f.signature));
  } else {
    FUZZ_CHECK(s.code() == common::Code::kPermissionDenied, s.ToString());
  }
  FUZZ_CHECK(!w.stranger->Verify(f.method, f.target, f.network, f.source, f.key_id, f.timestamp,
                                 f.signature)
                  .ok(),
             "a verifier with an unknown secret accepted " + Printable(f.signature));
}

// Resolve's invariants for one request; returns its outcome (the status
// code) for comparison.
std::string CheckResolve(World& w, const common::Request& req) {
  auto who = w.resolver->Resolve(req);
  if (!who.ok()) {
    const common::Code c = who.status().code();
    FUZZ_CHECK(c == common::Code::kPermissionDenied || c == common::Code::kInvalidArgument,
               who.status().ToString());
    return std::string(common::CodeName(c));
  }
  if (who->via == identity::CallerIdentity::Via::kProxy) {
    FUZZ_CHECK(req.HeaderCount(auth::kSignatureHeader) == 1 &&
                   req.HeaderCount(auth::kKeyIdHeader) == 1 &&
                   req.HeaderCount(auth::kTimestampHeader) == 1 &&
                   req.HeaderCount(auth::kNetworkHeader) == 1 &&
                   req.HeaderCount(auth::kSourceHeader) == 1,
               "accepted a signed identity with a header missing or repeated");
    const auto secret = SecretOf(*req.Header(auth::kKeyIdHeader));
    FUZZ_CHECK(secret.has_value(), "resolved under a key id we do not have");
    const auto expected =
        ExpectedSignature(*secret, req.method, req.target, *req.Header(auth::kNetworkHeader),
                          *req.Header(auth::kSourceHeader), *req.Header(auth::kTimestampHeader));
    FUZZ_CHECK(expected && *expected == *req.Header(auth::kSignatureHeader),
               "resolved a signature the key did not make");
    FUZZ_CHECK(who->network == *req.Header(auth::kNetworkHeader), "resolved another network");
    FUZZ_CHECK(common::IpAddress::Parse(*req.Header(auth::kSourceHeader)) == who->address,
               "resolved another source");
  } else {
    FUZZ_CHECK(who->via == identity::CallerIdentity::Via::kNeutron, "direct in proxy mode");
    FUZZ_CHECK(req.HeaderCount(auth::kNeutronInstanceIdHeader) == 1 &&
                   req.HeaderCount(auth::kNeutronSignatureHeader) == 1,
               "accepted Neutron headers missing or repeated");
    const std::string_view id = *req.Header(auth::kNeutronInstanceIdHeader);
    FUZZ_CHECK(*req.Header(auth::kNeutronSignatureHeader) ==
                   auth::NeutronInstanceSignature(kNeutronSecret, id),
               "resolved a Neutron signature the secret did not make");
    FUZZ_CHECK(who->instance_id == id, "resolved another instance id");
  }
  return "ok";
}

void CheckKeyFile(World& w, std::string_view text, const Fields& f) {
  auto keys = auth::ParseSigningKeys(text);
  if (!keys.ok()) {
    FUZZ_CHECK(keys.status().code() == common::Code::kInvalidArgument, keys.status().ToString());
    // The message names the line and the id, never a secret: the same file
    // with every secret replaced by a marker must not show the marker.
    std::string marked;
    std::string_view lines = text;
    while (!lines.empty()) {
      // As ParseSigningKeys reads a line: trimmed, "ID<blanks>SECRET".
      const std::string_view line = NextLine(lines);
      const size_t id_at = std::min(line.find_first_not_of(" \t\r"), line.size());
      const size_t blank = line.find_first_of(" \t", id_at);
      const size_t start =
          blank == std::string_view::npos ? blank : line.find_first_not_of(" \t", blank);
      if (id_at == line.size() || line[id_at] == '#' || start == std::string_view::npos) {
        marked.append(line);
      } else {
        const size_t end = std::min(line.find_first_of(" \t\r", start), line.size());
        marked.append(line.substr(0, start));
        marked.append(kSecretMarker);
        marked.append(line.substr(end));
      }
      marked.push_back('\n');
    }
    // (Unless the input spells the marker itself, say as an id: the fuzzer
    // learns it from the comparisons below.)
    auto again = auth::ParseSigningKeys(marked);
    if (!again.ok() && text.find(kSecretMarker) == std::string_view::npos) {
      FUZZ_CHECK(again.status().message().find(kSecretMarker) == std::string::npos,
                 "a key file error shows a secret: " + again.status().ToString());
    }
    return;
  }
  FUZZ_CHECK(!keys->empty(), "no keys accepted as a key file");
  for (size_t i = 0; i < keys->size(); ++i) {
    const auth::SigningKey& k = (*keys)[i];
    FUZZ_CHECK(!k.id.empty() && k.id.size() <= 32, k.id);
    for (char c : k.id) {
      FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '.' || c == '_' || c == '-',
                 "key id " + Printable(k.id));
    }
    FUZZ_CHECK(k.secret.size() >= auth::kMinSecretBytes, "short secret accepted");
    // Blanks separate fields; any other byte may be part of a secret.
    FUZZ_CHECK(k.secret.find_first_of(" \t\n") == std::string::npos, "secret with blanks");
    for (size_t j = 0; j < i; ++j) FUZZ_CHECK((*keys)[j].id != k.id, "duplicate key id");
  }
  auto signer = auth::RequestSigner::Create(*keys, {}, w.clock);
  FUZZ_CHECK(signer.ok(), "parsed keys make no signer: " + signer.status().ToString());
  const auth::SignedIdentity signed_id = signer->Sign(f.method, f.target, f.network, f.source);
  FUZZ_CHECK(signed_id.key_id == keys->front().id, "the first key does not sign");
  const std::string ts = std::to_string(signed_id.timestamp);
  const common::Status good = signer->Verify(f.method, f.target, f.network, f.source,
                                             signed_id.key_id, ts, signed_id.signature);
  if (f.network.empty() || f.source.empty()) {
    FUZZ_CHECK(!good.ok(), "an empty network or source verified");
    return;
  }
  FUZZ_CHECK(good.ok(), "a fresh signature did not verify: " + good.ToString());
  const std::string other_target = std::string(f.target) + "/";
  FUZZ_CHECK(!signer->Verify(f.method, other_target, f.network, f.source, signed_id.key_id, ts,
                             signed_id.signature)
                  .ok(),
             "a signature verified for another target");
}

void CheckHeaderRules(World& w, std::string_view name, std::string_view value) {
  if (StartsWithIgnoreCase(name, auth::kHeaderPrefix)) {
    FUZZ_CHECK(proxy::HeaderPolicy::IsIdentityHeader(name), "not stripped: " + Printable(name));
    FUZZ_CHECK(!proxy::HeaderPolicy::ForwardResponseHeader(name),
               "passed on to a guest: " + Printable(name));
  }
  if (proxy::HeaderPolicy::IsIdentityHeader(name)) {
    FUZZ_CHECK(w.policy->Classify(name) == proxy::RequestHeaderAction::kStripIdentity,
               "an identity header is not stripped: " + Printable(name));
  }
  if (auto ttl = proxy::HeaderPolicy::ParseIpTtl(value)) {
    FUZZ_CHECK(*ttl >= 1 && *ttl <= 255, "ttl " + std::to_string(*ttl));
  }
}

}  // namespace
}  // namespace openimds::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace openimds;
  using namespace openimds::fuzz;
  World& w = TheWorld();
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  Fields f;
  f.method = NextLine(rest);
  f.target = NextLine(rest);
  f.network = NextLine(rest);
  f.source = NextLine(rest);
  f.key_id = NextLine(rest);
  f.timestamp = NextLine(rest);
  f.signature = NextLine(rest);
  std::vector<std::pair<std::string_view, std::string_view>> extra;
  while (!rest.empty()) {
    const std::string_view line = NextLine(rest);
    if (line.empty()) break;
    const size_t colon = line.find(':');
    std::string_view name = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view()
                                                             : line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    extra.emplace_back(name, value);
  }
  const std::string_view key_file = rest;

  CheckVerify(w, f);

  common::Request req;
  req.method = f.method;
  req.target = f.target;
  req.path = f.target.substr(0, f.target.find('?'));
  const std::pair<std::string_view, std::string_view> ours[] = {
      {auth::kNetworkHeader, f.network}, {auth::kSourceHeader, f.source},
      {auth::kKeyIdHeader, f.key_id},    {auth::kTimestampHeader, f.timestamp},
      {auth::kSignatureHeader, f.signature}};
  for (const auto& [name, value] : ours) {
    if (!value.empty()) req.headers.push_back({name, value});
  }
  for (const auto& [name, value] : extra) req.headers.push_back({name, value});

  // A unix socket (trusted), a trusted TCP peer, an untrusted one.
  const std::string on_unix = CheckResolve(w, req);
  common::Request tcp = req;
  tcp.local = *common::IpAddress::Parse("10.255.0.1");
  tcp.local_port = 80;
  tcp.peer = *common::IpAddress::Parse("10.1.2.3");
  FUZZ_CHECK(CheckResolve(w, tcp) == on_unix, "a trusted TCP peer is answered differently");
  tcp.peer = *common::IpAddress::Parse("192.0.2.7");
  auto untrusted = w.resolver->Resolve(tcp);
  FUZZ_CHECK(!untrusted.ok() && untrusted.status().code() == common::Code::kPermissionDenied,
             "an untrusted peer was not refused");

  CheckKeyFile(w, key_file, f);

  for (const auto& [name, value] : extra) CheckHeaderRules(w, name, value);
  for (const auto& [name, value] : ours) CheckHeaderRules(w, name, value);
  return 0;
}
