#include "app/identity_config.h"

#include "common/log.h"
#include "common/secret_file.h"

namespace openimds::app {

common::Result<std::vector<auth::SigningKey>> ReadKeyFile(const std::string& path) {
  auto text = common::ReadSecretFile(path);
  if (!text.ok()) return text.status();
  auto keys = auth::ParseSigningKeys(*text);
  if (!keys.ok()) return common::InvalidArgument(path + ": " + keys.status().message());
  return keys;
}

namespace {

// The secrets the flags name, read and checked (see ReadKeyFile and
// common::ReadSecretFile); errors name the file.
struct IdentitySecrets {
  std::vector<auth::SigningKey> proxy_keys;
  std::string neutron_shared_secret;
};

common::Result<IdentitySecrets> ReadIdentitySecrets(const IdentityFlags& f) {
  IdentitySecrets out;
  if (!f.proxy_keys_file.empty()) {
    auto keys = ReadKeyFile(f.proxy_keys_file);
    if (!keys.ok()) return keys.status();
    out.proxy_keys = std::move(keys).value();
  }
  if (!f.neutron_secret_file.empty()) {
    auto secret = common::ReadSecretFile(f.neutron_secret_file);
    if (!secret.ok()) return secret.status();
    out.neutron_shared_secret = std::move(secret).value();
  }
  return out;
}

}  // namespace

void AddIdentityFlags(CLI::App& serve, IdentityFlags& f) {
  serve.add_option("--trusted-proxy", f.trusted_proxies,
                   "CIDR of peers (openimds proxies, neutron-metadata-agents) whose identity "
                   "headers mode=proxy listeners accept; repeatable.");
  serve.add_option("--proxy-keys-file", f.proxy_keys_file,
                   "File (mode 0600) of 'KEY_ID SECRET' lines: the keys whose proxy signatures "
                   "are accepted. List the new key next to the old one to rotate.");
  serve
      .add_option("--proxy-replay-window", f.replay_window_seconds,
                  "Seconds a signed proxy request stays valid either side of now.")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  serve.add_option("--neutron-secret-file", f.neutron_secret_file,
                   "File (mode 0600) holding neutron's metadata_proxy_shared_secret: accept "
                   "X-Instance-ID/X-Tenant-ID/X-Instance-ID-Signature on mode=proxy listeners.");
  serve.add_flag("!--no-trust-unix-socket", f.trust_unix_socket,
                 "Do not trust mode=proxy listeners on unix sockets by their file mode alone.");
}

common::Result<std::optional<identity::Resolver>> BuildProxyResolver(
    const IdentityFlags& f, const common::Clock& clock, common::MetricsRegistry& metrics) {
  if (f.proxy_keys_file.empty() && f.neutron_secret_file.empty()) {
    if (!f.trusted_proxies.empty()) {
      return common::InvalidArgument(
          "--trusted-proxy needs --proxy-keys-file or --neutron-secret-file");
    }
    return std::optional<identity::Resolver>();
  }
  identity::Resolver::Options o;
  for (const auto& text : f.trusted_proxies) {
    auto cidr = common::Cidr::Parse(text, /*allow_host_bits=*/false);
    if (!cidr) {
      auto ip = common::IpAddress::Parse(text);
      if (!ip) {
        return common::InvalidArgument("--trusted-proxy " + text +
                                       ": not an address or CIDR (host bits must be zero)");
      }
      cidr = common::Cidr{*ip, ip->is_v4() ? 32 : 128};
    }
    o.trusted_peers.push_back(*cidr);
  }
  o.trust_unix_socket = f.trust_unix_socket;
  o.replay_window = std::chrono::seconds(f.replay_window_seconds);
  auto secrets = ReadIdentitySecrets(f);
  if (!secrets.ok()) return secrets.status();
  o.proxy_keys = std::move(secrets->proxy_keys);
  o.neutron_shared_secret = std::move(secrets->neutron_shared_secret);
  auto resolver = identity::Resolver::Create(std::move(o), clock, metrics);
  if (!resolver.ok()) return resolver.status();
  return std::optional<identity::Resolver>(std::move(resolver).value());
}

}  // namespace openimds::app

namespace openimds::app {

common::Result<std::string> ReloadProxyResolver(const IdentityFlags& f,
                                                identity::Resolver& resolver) {
  auto secrets = ReadIdentitySecrets(f);
  if (!secrets.ok()) return secrets.status();
  std::string summary;
  if (!f.proxy_keys_file.empty()) {
    summary = "proxy keys";
    for (size_t i = 0; i < secrets->proxy_keys.size(); ++i) {
      summary += (i == 0 ? " " : ", ") + secrets->proxy_keys[i].id;
    }
    summary += " from " + f.proxy_keys_file;
  }
  if (!f.neutron_secret_file.empty()) {
    summary += (summary.empty() ? "" : "; ") + std::string("Neutron secret from ") +
               f.neutron_secret_file;
  }
  common::Status set = resolver.SetKeys(std::move(secrets->proxy_keys),
                                        std::move(secrets->neutron_shared_secret));
  if (!set.ok()) {
    // ReadKeyFile already checked what RequestSigner checks, so this is rare;
    // the message names a key id at most.
    const std::string& file =
        f.proxy_keys_file.empty() ? f.neutron_secret_file : f.proxy_keys_file;
    return common::Status(set.code(), file + ": " + set.message());
  }
  return summary;
}

}  // namespace openimds::app
