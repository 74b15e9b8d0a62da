#include "identity/identity_config.h"

#include "common/log.h"
#include "common/secret_file.h"

namespace openimds::identity {

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

common::Result<IdentitySecrets> ReadIdentitySecrets(const ProxyIdentityConfig& f) {
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

common::Result<std::optional<Resolver>> BuildProxyResolver(const ProxyIdentityConfig& f,
                                                           const common::Clock& clock,
                                                           common::MetricsRegistry& metrics) {
  if (f.proxy_keys_file.empty() && f.neutron_secret_file.empty()) {
    if (!f.trusted_proxies.empty()) {
      return common::InvalidArgument(
          "--trusted-proxy needs --proxy-keys-file or --neutron-secret-file");
    }
    return std::optional<Resolver>();
  }
  Resolver::Options o;
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
  auto resolver = Resolver::Create(std::move(o), clock, metrics);
  if (!resolver.ok()) return resolver.status();
  return std::optional<Resolver>(std::move(resolver).value());
}

common::Result<std::string> ReloadProxyResolver(const ProxyIdentityConfig& f, Resolver& resolver) {
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
    summary +=
        (summary.empty() ? "" : "; ") + std::string("Neutron secret from ") + f.neutron_secret_file;
  }
  common::Status set =
      resolver.SetKeys(std::move(secrets->proxy_keys), std::move(secrets->neutron_shared_secret));
  if (!set.ok()) {
    // ReadKeyFile already checked what RequestSigner checks, so this is rare;
    // the message names a key id at most.
    const std::string& file = f.proxy_keys_file.empty() ? f.neutron_secret_file : f.proxy_keys_file;
    return common::Status(set.code(), file + ": " + set.message());
  }
  return summary;
}

common::Result<ProxyKeys> LoadProxyKeys(const ProxySigningConfig& o, bool chain,
                                        const common::Clock& clock) {
  auto keys = ReadKeyFile(o.key_file);
  if (!keys.ok()) return keys.status();
  auth::RequestSigner::Options so;
  so.replay_window = std::chrono::seconds(o.replay_window_seconds);
  ProxyKeys out;
  out.summary = "signing with key " + keys->front().id;
  auto signer = auth::RequestSigner::Create(*keys, so, clock);
  if (!signer.ok()) {
    return common::Status(signer.status().code(), o.key_file + ": " + signer.status().message());
  }
  out.signer = std::make_shared<const auth::RequestSigner>(std::move(signer).value());
  if (chain) {
    const std::string& file = o.trust_key_file.empty() ? o.key_file : o.trust_key_file;
    auto trust_keys = o.trust_key_file.empty() ? keys : ReadKeyFile(o.trust_key_file);
    if (!trust_keys.ok()) return trust_keys.status();
    auto v = auth::RequestSigner::Create(*trust_keys, so, clock);
    if (!v.ok()) return common::Status(v.status().code(), file + ": " + v.status().message());
    out.verifier = std::make_shared<const auth::RequestSigner>(std::move(v).value());
    out.summary += "; accepting chained identities signed with";
    for (size_t i = 0; i < trust_keys->size(); ++i) {
      out.summary += (i == 0 ? " " : ", ") + (*trust_keys)[i].id;
    }
  }
  return out;
}

}  // namespace openimds::identity
