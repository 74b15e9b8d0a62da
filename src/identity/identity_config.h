#pragma once

#include <memory>
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

// The keys of an `openimds proxy`, which signs the identity of the guests it
// forwards: the values of proxy's flags, which app/ binds to this struct and
// which messages name.
struct ProxySigningConfig {
  std::string key_file;            // --key-file PATH: the first key signs
  std::string trust_key_file;      // --trust-key-file PATH; empty: key_file
  int replay_window_seconds = 30;  // --replay-window SECONDS
};

// The proxy's keys, read and checked whole: at start-up and again on each
// SIGHUP, so a bad file replaces neither signer.
struct ProxyKeys {
  std::shared_ptr<const auth::RequestSigner> signer;    // the first key of key_file signs
  std::shared_ptr<const auth::RequestSigner> verifier;  // `chain` only, else null
  std::string summary;                                  // key ids, for the log; no secret
};

// Reads key_file (ReadKeyFile) and builds its signer; with `chain` (the
// proxy trusts other proxies in front of it) also the verifier of their
// signatures, from trust_key_file or else key_file. Errors: those of
// ReadKeyFile, or the signer's, prefixed with the file; never a secret.
// `clock` is borrowed by the signers.
common::Result<ProxyKeys> LoadProxyKeys(const ProxySigningConfig& config, bool chain,
                                        const common::Clock& clock);

}  // namespace openimds::identity
