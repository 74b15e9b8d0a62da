// Fuzz target: the guest request path end to end, without sockets.
//
// Raw bytes are framed as the guest listener frames them (guest_wire.h: the
// server's own http::RequestParser, limits and refusals), up to
// kMaxPipelined requests back to back as a pipelining client sends them;
// each request goes to service::MetadataService::Handle (identity ->
// catalog -> flavour) with the EC2 and OpenStack flavours registered as
// `openimds serve` registers them, once per caller:
//   - direct mode, network "default", from the addresses of instances A
//     (IPv4), B (IPv6), C, and from an address no instance holds;
//   - direct mode, network "blue", from D (which shares A's IPv4 address);
//   - proxy mode on a unix socket (signed X-OpenIMDS-* or Neutron headers).
//
// Invariants (each a FUZZ_CHECK):
//   - a refused framing is 400, 413 or 431;
//   - every answer has a status in 100..599, no deferral (nothing here
//     waits on an upstream), header names and values and the content type
//     free of CR, LF and NUL, and an IP TTL, if any, in 1..255;
//   - an answer to HEAD carries no body (Response::head) and any other
//     answer does;
//   - nothing an answer shows (body, header values) names another
//     instance (its id, hostname or MAC) than the caller's own, unless the
//     request itself spelled that name; a caller no instance holds sees no
//     instance's names; a proxy-mode answer names at most one instance.
//
// So that the fuzzer can reach the paths behind valid credentials, three
// header values are replaced before the request is handled (the corpus uses
// them; they are no format of the service):
//   X-aws-ec2-metadata-token: @token-a@ (-b, -c, -d)  a valid IMDSv2 token
//                                                     for that instance
//   X-OpenIMDS-Signature: @sign@     the proxy key's signature over this
//                                    request's method, target and its
//                                    X-OpenIMDS-Network/-Source values
//   X-Instance-ID-Signature: @neutron@   Neutron's signature of X-Instance-ID
// The clock stands at 2026-11-25T12:00:00Z (Unix 1795608000).
//
// OPENIMDS_FUZZ_VERBOSE=1 prints each answer's status and the start of its
// body (for writing seeds: does this input reach what it means to?).

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/request_signer.h"
#include "auth/token_authority.h"
#include "catalog/catalog.h"
#include "common/clock.h"
#include "common/http_message.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/time_format.h"
#include "flavour/ec2/ec2_flavour.h"
#include "flavour/flavour.h"
#include "flavour/openstack/openstack_flavour.h"
#include "flavour/openstack/password_store.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/guest_wire.h"
#include "identity/resolver.h"
#include "model/instance_json.h"
#include "service/metadata_service.h"

namespace openimds::fuzz {
namespace {

constexpr size_t kMaxPipelined = 8;
constexpr std::string_view kProxyKeyId = "k1";
constexpr std::string_view kProxySecret = "fuzz-proxy-secret-0123456789abcdef";
constexpr std::string_view kNeutronSecret = "fuzz-neutron-secret-0123456789";

// Four instances. Every name that identifies one (id, hostname, MAC) is
// unique to it and no substring of another's, so that a leak shows.
// A: EC2, tokens optional, credentials, tags, user-data.
// B: tokens required, hop limit 3, reached over IPv6, events.
// C: OpenStack-style (UUID id, tenant for Neutron), network config,
//    devices, vendor data, pinned to the OpenStack flavour.
// D: in network "blue" with A's IPv4 address; endpoint disabled.
constexpr std::string_view kInstanceA = R"({
  "id": "i-0a1f00000000000a1", "network": "default", "name": "alpha",
  "hostname": "alpha-host.internal", "local_hostname": "alpha-host.internal",
  "account_id": "111111111111", "image_id": "ami-0aaaaaaaaaaaaaaa1",
  "instance_type": "t3.micro", "region": "us-east-1", "availability_zone": "us-east-1a",
  "launch_time": "2026-11-25T10:00:00Z",
  "nics": [{"mac": "02:00:00:a1:a1:01", "device_number": 0,
            "interface_id": "eni-0aaaaaaaaaaaaaaa1", "private_ipv4s": ["10.0.0.11"],
            "public_ipv4s": ["203.0.113.11"], "subnet_id": "subnet-0aaaaaaaaaaaaaaa1",
            "subnet_ipv4_cidr": "10.0.0.0/24", "vpc_id": "vpc-0aaaaaaaaaaaaaaa1",
            "vpc_ipv4_cidr": "10.0.0.0/16", "security_groups": ["web"],
            "security_group_ids": ["sg-0aaaaaaaaaaaaaaa1"]}],
  "ssh_keys": [{"name": "alpha-key", "key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlphaAlphaAlphaAlphaAlphaAlphaAlphaAlpha0001 alpha"}],
  "user_data": "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogYWxwaGEK",
  "tags": {"Name": "alpha", "team": "red"},
  "iam": {"role": "alpha-role",
          "instance_profile_arn": "arn:aws:iam::111111111111:instance-profile/alpha-role",
          "instance_profile_id": "AIPAALPHA0000000001",
          "credentials": {"access_key_id": "ASIAALPHA00000000001",
                          "secret_access_key": "alpha/secret/not/real",
                          "token": "alpha-session-token", "expiration": "2026-11-25T18:00:00Z",
                          "last_updated": "2026-11-25T11:00:00Z"}},
  "block_devices": {"ami": "/dev/xvda", "root": "/dev/xvda"},
  "metadata_options": {"http_tokens": "optional", "hop_limit": 1,
                       "instance_metadata_tags": "enabled"}
})";
constexpr std::string_view kInstanceB = R"({
  "id": "i-0b2e00000000000b2", "network": "default", "name": "bravo",
  "hostname": "bravo-host.internal", "account_id": "222222222222",
  "nics": [{"mac": "02:00:00:b2:b2:02", "device_number": 0,
            "private_ipv4s": ["10.0.0.12"], "ipv6s": ["fd00::b12"]}],
  "user_data": "YnJhdm8gdXNlciBkYXRhCg==",
  "events": {"spot": {"action": "terminate", "time": "2026-11-25T12:01:00Z"},
             "scheduled": [{"id": "instance-event-0b0000000000000b2", "code": "system-reboot",
                            "not_before": "2026-11-26T09:00:00Z"}]},
  "metadata_options": {"http_tokens": "required", "hop_limit": 3}
})";
constexpr std::string_view kInstanceC = R"({
  "id": "c3c3c3c3-0000-4000-8000-00000000c003", "network": "default", "name": "charlie",
  "hostname": "charlie-host", "account_id": "tenant-charlie", "availability_zone": "nova",
  "nics": [{"mac": "fa:16:3e:c3:c3:03", "device_number": 0, "interface_id": "port-charlie",
            "private_ipv4s": ["10.0.0.13"]}],
  "ssh_keys": [{"name": "charlie-key", "key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICharlieCharlieCharlieCharlieCharlie0003 charlie"}],
  "user_data": "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogY2hhcmxpZQo=",
  "tags": {"role": "db"},
  "network_config": {
    "links": [{"name": "tap-charlie", "type": "physical", "mac": "fa:16:3e:c3:c3:03",
               "mtu": 1500, "vif_type": "ovs", "vif_id": "port-charlie"},
              {"name": "tap-charlie.7", "type": "vlan", "vlan_id": 7, "vlan_link": "tap-charlie"}],
    "networks": [{"link": "tap-charlie", "network_id": "net-c", "mode": "dhcp"},
                 {"link": "tap-charlie.7", "network_id": "net-c7", "address": "172.16.7.13/24",
                  "gateway": "172.16.7.1", "dns_servers": ["172.16.7.2"]}],
    "dns_servers": ["1.1.1.1"]},
  "devices": [{"type": "disk", "bus": "scsi", "address": "0:0", "serial": "disk-c",
               "tags": ["data"]}],
  "vendor_data": {"site": "lab-c"},
  "flavours": ["openstack"]
})";
constexpr std::string_view kInstanceD = R"({
  "id": "i-0d4d00000000000d4", "network": "blue", "name": "delta",
  "hostname": "delta-host.internal",
  "nics": [{"mac": "02:00:00:d4:d4:04", "device_number": 0, "private_ipv4s": ["10.0.0.11"]}],
  "metadata_options": {"http_endpoint": "disabled"}
})";

struct Known {
  std::string id;
  std::vector<std::string> names;  // id, hostname, MAC
  std::string token;               // a valid IMDSv2 token for it
};

struct World {
  common::FakeClock clock{*common::ParseRfc3339("2026-11-25T12:00:00Z")};
  common::MetricsRegistry metrics;
  std::optional<auth::TokenAuthority> tokens;
  std::optional<auth::RequestSigner> proxy_signer;
  flavour::openstack::MemoryPasswordStore passwords;
  flavour::Registry flavours;
  catalog::Catalog catalog;
  identity::Resolver direct;
  std::optional<identity::Resolver> proxied;
  std::optional<service::MetadataService> direct_service;
  std::optional<service::MetadataService> proxied_service;
  std::vector<Known> known;  // A, B, C, D
  const bool verbose = getenv("OPENIMDS_FUZZ_VERBOSE") != nullptr;

  World() {
    // Refusals are what this target provokes all day; errors still print.
    common::SetLogLevel(common::LogLevel::kError);

    auto authority =
        auth::TokenAuthority::Create({{1, std::string(32, 'k')}, {2, std::string(32, 'K')}}, clock);
    FUZZ_CHECK(authority.ok(), authority.status().ToString());
    tokens.emplace(std::move(authority).value());

    flavour::openstack::OpenStackFlavour::Options os;
    os.random_bytes = [](unsigned char* buf, size_t n) {
      for (size_t i = 0; i < n; ++i) buf[i] = static_cast<unsigned char>(i);
    };
    auto openstack = flavour::openstack::OpenStackFlavour::Create(std::move(os), clock, &passwords,
                                                                  metrics);
    FUZZ_CHECK(openstack.ok(), openstack.status().ToString());
    // As serve registers them: OpenStack first (EC2 owns "/").
    flavours.Add(std::move(*openstack));
    flavours.Add(std::make_unique<flavour::ec2::Ec2Flavour>(flavour::ec2::Ec2Flavour::Options{},
                                                            *tokens, clock, metrics));

    std::vector<catalog::Entry> entries;
    for (std::string_view text : {kInstanceA, kInstanceB, kInstanceC, kInstanceD}) {
      auto instance = model::FromJsonText(text);
      FUZZ_CHECK(instance.ok(), instance.status().ToString());
      Known k;
      k.id = instance->id;
      k.names = {instance->id, instance->hostname, instance->nics.at(0).mac};
      auto token = tokens->Issue(instance->id, instance->managed.incarnation,
                                 std::chrono::seconds(21600));
      FUZZ_CHECK(token.ok(), token.status().ToString());
      k.token = *token;
      known.push_back(std::move(k));
      entries.push_back({std::make_shared<const model::Instance>(std::move(*instance)), 1});
    }
    catalog.ReplaceAll(std::move(entries), 1);

    identity::Resolver::Options ro;
    ro.trust_unix_socket = true;
    ro.proxy_keys = {{std::string(kProxyKeyId), std::string(kProxySecret)}};
    ro.neutron_shared_secret = std::string(kNeutronSecret);
    auto resolver = identity::Resolver::Create(std::move(ro), clock, metrics);
    FUZZ_CHECK(resolver.ok(), resolver.status().ToString());
    proxied.emplace(std::move(resolver).value());
    auto signer = auth::RequestSigner::Create(
        {{std::string(kProxyKeyId), std::string(kProxySecret)}}, {}, clock);
    FUZZ_CHECK(signer.ok(), signer.status().ToString());
    proxy_signer.emplace(std::move(signer).value());

    direct_service.emplace(direct, catalog, flavours, &*tokens, metrics);
    proxied_service.emplace(*proxied, catalog, flavours, &*tokens, metrics);
  }
};

World& TheWorld() {
  static World* world = new World();  // never destroyed: libFuzzer exits without unwinding
  return *world;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The input as a flavour might echo it: lower case, and percent-decoded.
std::string EchoForms(std::string_view input) {
  std::string decoded;
  for (size_t i = 0; i < input.size(); ++i) {
    if (input[i] == '%' && i + 2 < input.size() && HexValue(input[i + 1]) >= 0 &&
        HexValue(input[i + 2]) >= 0) {
      decoded += static_cast<char>(HexValue(input[i + 1]) * 16 + HexValue(input[i + 2]));
      i += 2;
    } else {
      decoded += input[i];
    }
  }
  return Lower(input) + "\n" + Lower(decoded);
}

bool SafeText(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

const std::string* FirstHeader(const WireRequest& r, std::string_view name) {
  for (const auto& [n, v] : r.headers) {
    if (common::EqualsIgnoreCase(n, name)) return &v;
  }
  return nullptr;
}

// Replaces the placeholders described at the top of this file.
void Substitute(World& w, WireRequest& r) {
  for (auto& [name, value] : r.headers) {
    if (common::EqualsIgnoreCase(name, auth::kTokenHeader)) {
      static constexpr std::string_view kMarkers[] = {"@token-a@", "@token-b@", "@token-c@",
                                                      "@token-d@"};
      for (size_t i = 0; i < 4; ++i) {
        if (value == kMarkers[i]) value = w.known[i].token;
      }
    } else if (common::EqualsIgnoreCase(name, auth::kSignatureHeader) && value == "@sign@") {
      const std::string* network = FirstHeader(r, auth::kNetworkHeader);
      const std::string* source = FirstHeader(r, auth::kSourceHeader);
      value = w.proxy_signer
                  ->Sign(r.method, r.target, network ? *network : std::string(),
                         source ? *source : std::string())
                  .signature;
    } else if (common::EqualsIgnoreCase(name, auth::kNeutronSignatureHeader) &&
               value == "@neutron@") {
      const std::string* id = FirstHeader(r, auth::kNeutronInstanceIdHeader);
      value = auth::NeutronInstanceSignature(kNeutronSecret, id ? *id : std::string());
    }
  }
}

struct Caller {
  bool proxy = false;
  std::string_view network;
  std::string_view peer;
  int instance = -1;  // index into World::known; -1: nobody (or proxy: decided by headers)
};

void CheckResponse(const World& w, const Caller& caller, const WireRequest& wire,
                   const common::Response& out, const std::string& echo) {
  const std::string where = std::string(caller.proxy ? "proxy caller" : "direct caller ") +
                            std::string(caller.network) + (caller.proxy ? "" : "/") +
                            std::string(caller.peer) + ", " + Printable(wire.method) + " " +
                            Printable(wire.target) + " -> " + std::to_string(out.status);
  FUZZ_CHECK(out.status >= 100 && out.status <= 599, where);
  FUZZ_CHECK(out.deferred == nullptr, where);
  FUZZ_CHECK(out.head == (wire.method == "HEAD"), where);
  FUZZ_CHECK(SafeText(out.content_type), where);
  for (const auto& [name, value] : out.headers) {
    FUZZ_CHECK(!name.empty() && SafeText(name) && SafeText(value),
               where + ": header " + Printable(name) + ": " + Printable(value));
  }
  if (out.ip_ttl) FUZZ_CHECK(*out.ip_ttl >= 1 && *out.ip_ttl <= 255, where);

  // What the caller gets to see.
  std::string shown = out.body;
  for (const auto& [name, value] : out.headers) {
    shown += '\n';
    shown += value;
  }
  int named = 0;
  std::string who;
  for (size_t i = 0; i < w.known.size(); ++i) {
    if (!caller.proxy && static_cast<int>(i) == caller.instance) continue;
    for (const std::string& name : w.known[i].names) {
      if (echo.find(Lower(name)) != std::string::npos) continue;  // the request said it
      if (shown.find(name) == std::string::npos) continue;
      if (!caller.proxy) {
        FUZZ_CHECK(false, where + ": the answer names " + name + " of another instance: " +
                              Printable(shown));
      }
      ++named;
      who += " " + name;
      break;
    }
  }
  FUZZ_CHECK(named <= 1, where + ": a proxied answer names several instances:" + who);
}

void HandleOne(World& w, const WireRequest& wire, const std::string& echo) {
  static constexpr Caller kCallers[] = {
      {false, "default", "10.0.0.11", 0}, {false, "default", "fd00::b12", 1},
      {false, "default", "10.0.0.13", 2}, {false, "blue", "10.0.0.11", 3},
      {false, "default", "10.9.9.9", -1}, {true, "", "", -1},
  };
  for (const Caller& caller : kCallers) {
    common::Request req;
    req.method = wire.method;
    req.target = wire.target;
    const size_t q = req.target.find('?');
    req.path = req.target.substr(0, q);
    req.query = q == std::string_view::npos ? std::string_view() : req.target.substr(q + 1);
    for (const auto& [n, v] : wire.headers) req.headers.push_back({n, v});
    req.body = wire.body;
    req.version = wire.version;
    req.listener_network = caller.network;
    if (!caller.proxy) {
      req.peer = *common::IpAddress::Parse(caller.peer);
      req.local = req.peer.is_v4() ? *common::IpAddress::Parse("169.254.169.254")
                                   : *common::IpAddress::Parse("fd00:ec2::254");
      req.local_port = 80;
    }
    common::Response out;
    (caller.proxy ? *w.proxied_service : *w.direct_service).Handle(req, out);
    if (w.verbose) {
      std::fprintf(stderr, "  %s %s%s %s -> %d %s\n", caller.proxy ? "proxy" : "direct",
                   std::string(caller.network).c_str(), caller.proxy ? "" : ",",
                   std::string(caller.peer).c_str(), out.status,
                   Printable(out.body, 100).c_str());
    }
    CheckResponse(w, caller, wire, out, echo);
  }
}

}  // namespace
}  // namespace openimds::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace openimds::fuzz;
  World& w = TheWorld();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string echo = EchoForms(input);
  const openimds::http::Limits limits;  // the guest listener's defaults
  std::string_view rest = input;
  for (size_t i = 0; i < kMaxPipelined && !rest.empty(); ++i) {
    WireResult r = ParseOne(rest, limits);
    if (w.verbose) {
      std::fprintf(stderr, " request %zu: %s %s\n", i,
                   r.kind == WireResult::Kind::kRequest
                       ? "complete"
                       : (r.kind == WireResult::Kind::kRefused ? "refused" : "incomplete"),
                   Printable(r.kind == WireResult::Kind::kRefused
                                 ? std::to_string(r.status) + " " + r.message
                                 : r.request.method + " " + r.request.target)
                       .c_str());
    }
    if (r.kind == WireResult::Kind::kRefused) {
      FUZZ_CHECK(r.status == 400 || r.status == 413 || r.status == 431, r.message);
      break;
    }
    if (r.kind == WireResult::Kind::kIncomplete) break;
    FUZZ_CHECK(r.consumed > 0 && r.consumed <= rest.size(), "parser consumed nothing");
    Substitute(w, r.request);
    HandleOne(w, r.request, echo);
    rest.remove_prefix(r.consumed);
    if (!r.request.keep_alive) break;
  }
  // Passwords are the one thing a guest can write: start every input afresh.
  for (const Known& k : w.known) w.passwords.Clear(k.id);
  return 0;
}
