#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "netsetup/command_runner.h"

namespace openimds::netsetup {

// The metadata addresses guests ask.
inline constexpr std::string_view kMetadataIpv4 = "169.254.169.254";
inline constexpr std::string_view kMetadataIpv6 = "fd00:ec2::254";

// What `openimds redirect` installs: DNAT of the metadata address and port,
// arriving on chosen interfaces, to where a proxy or server listens.
struct RedirectSpec {
  // Interfaces whose incoming traffic is redirected (nft iifname; a trailing
  // '*' matches a prefix, e.g. "tap*"). Empty: every interface.
  std::vector<std::string> interfaces;
  // "10.0.0.1:9697": where 169.254.169.254:80 goes. Required.
  std::string target_v4;
  // "[fd00::1]:9697": where [fd00:ec2::254]:80 goes. Empty: no IPv6 rule.
  std::string target_v6;
  // The nftables table (family inet) that holds everything we install, and
  // nothing else: apply replaces it, remove deletes it.
  std::string table = "openimds";
  // The destination port guests use.
  uint16_t port = 80;
};

// The nft script that `apply` loads: in one transaction, the table is
// created if absent, deleted, and created again with exactly these rules,
// so applying twice gives the same state and a half-applied state never
// exists. InvalidArgument (naming the field) for an interface or table
// name nft would not take as a plain word, a target that is not an
// address:port of the right family, or a loopback IPv4 target (the kernel
// drops DNAT to 127/8 from other interfaces unless route_localnet is set;
// listen on an interface address instead).
common::Result<std::string> RenderRedirect(const RedirectSpec& spec);

// The nft script that `remove` loads: deletes the table if it exists, and
// succeeds if it does not. The host is then as it was before `apply`.
common::Result<std::string> RenderRemove(std::string_view table);

// Applies and removes the rule set with `nft -f -`, in the current network
// namespace or in `netns` (via `ip netns exec`).
class Redirector {
 public:
  // `runner` is borrowed.
  Redirector(CommandRunner& runner, std::string netns = {})
      : runner_(runner), netns_(std::move(netns)) {}

  // Unavailable when nft fails (its message included) or cannot be run.
  common::Status Apply(const RedirectSpec& spec);
  common::Status Remove(std::string_view table);
  // `nft list table inet TABLE` output, or nullopt if the table is absent.
  common::Result<std::optional<std::string>> Installed(std::string_view table);

 private:
  common::Status RunNft(const std::string& script);
  CommandRunner& runner_;
  std::string netns_;
};

// The "listen there directly" deployment: 169.254.169.254/32 (and with
// `ipv6`, fd00:ec2::254/128, without duplicate address detection) on an
// interface, so a proxy or server can bind the metadata address itself.
struct MetadataAddressSpec {
  std::string interface;
  std::string netns;  // empty: the current namespace
  bool ipv6 = false;
};
// Idempotent ("ip addr replace"). Unavailable with ip's message on failure.
common::Status AddMetadataAddress(CommandRunner& runner, const MetadataAddressSpec& spec);
// Removes what AddMetadataAddress added; absent addresses are not an error.
common::Status RemoveMetadataAddress(CommandRunner& runner, const MetadataAddressSpec& spec);

// Names nft and ip accept as plain words: [A-Za-z0-9_.:@+-]{1,15}, with an
// optional trailing '*' for interfaces.
bool ValidInterfaceName(std::string_view name, bool allow_wildcard);

}  // namespace openimds::netsetup
