#pragma once

#include <optional>
#include <string>
#include <vector>

#include "auth/request_signer.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/result.h"
#include "identity/resolver.h"

namespace openimds::identity {

// Reads a key file: one "KEY_ID SECRET" per line, '#' comments; the first
// key signs (auth::ParseSigningKeys). The file obeys the rules of
// common::ReadSecretFile (mode 0600, owner, size) and fails with its errors.
common::Result<std::vector<auth::SigningKey>> ReadKeyFile(const std::string& path);

// Who may speak for guests on listeners that face proxies and
// neutron-metadata-agents (`serve --listen ...,mode=proxy`): the values of
// serve's flags, which app/ binds to this struct and which messages name.
struct ProxyIdentityConfig {
  std::vector<std::string> trusted_proxies;  // --trusted-proxy CIDR (repeatable)
  std::string proxy_keys_file;               // --proxy-keys-file PATH
  int replay_window_seconds = 30;            // --proxy-replay-window SECONDS
  std::string neutron_secret_file;           // --neutron-secret-file PATH
  bool trust_unix_socket = true;             // --no-trust-unix-socket clears it
};

// The Resolver for mode=proxy listeners, or nullopt when none of
// --proxy-keys-file / --neutron-secret-file is given. InvalidArgument on bad
// flags or file contents; the errors of common::ReadSecretFile (NotFound,
// PermissionDenied, InvalidArgument) for a file it refuses.
// `clock` and `metrics` are borrowed by the Resolver.
common::Result<std::optional<Resolver>> BuildProxyResolver(const ProxyIdentityConfig& config,
                                                           const common::Clock& clock,
                                                           common::MetricsRegistry& metrics);

// SIGHUP: re-reads --proxy-keys-file and --neutron-secret-file and installs
// them in `resolver` (built by BuildProxyResolver from the same config) while
// it serves. Any error (unreadable file, mode, syntax, invalid key) leaves
// the keys in use unchanged; the Status names the file and the reason, never
// a secret. On success returns a summary for the log ("proxy keys a, b;
// Neutron secret from PATH"), free of secrets.
common::Result<std::string> ReloadProxyResolver(const ProxyIdentityConfig& config,
                                                Resolver& resolver);

}  // namespace openimds::identity
