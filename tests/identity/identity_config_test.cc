#include "identity/identity_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace openimds::identity {
namespace {

constexpr std::string_view kSecretA = "secret-of-key-a-0123456789";
constexpr std::string_view kSecretB = "secret-of-key-b-9876543210";
constexpr std::string_view kNeutron = "neutron-shared-secret-0123456789";

class IdentityConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/openimds-identity-config-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text, mode_t mode = 0600) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::trunc) << text;
    chmod(path.c_str(), mode);
    return path;
  }
  static void ExpectNoSecret(const std::string& text) {
    for (std::string_view s : {kSecretA, kSecretB, kNeutron}) {
      EXPECT_EQ(text.find(s), std::string::npos) << text;
    }
  }

  std::string dir_;
  common::FakeClock clock_{std::chrono::system_clock::from_time_t(1'800'000'000)};
  common::MetricsRegistry metrics_;
};

TEST_F(IdentityConfigTest, ReadKeyFile) {
  auto keys = ReadKeyFile(Write(
      "keys", "# rotation\na " + std::string(kSecretA) + "\nb " + std::string(kSecretB) + "\n"));
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].id, "a");
  EXPECT_EQ((*keys)[0].secret, kSecretA);

  const std::string open = Write("open", "a " + std::string(kSecretA) + "\n", 0644);
  auto refused = ReadKeyFile(open);
  EXPECT_EQ(refused.status().code(), common::Code::kPermissionDenied);
  EXPECT_NE(refused.status().message().find("chmod 600 " + open), std::string::npos);
  ExpectNoSecret(refused.status().message());

  const std::string bad = Write("bad", "this-line-has-no-secret\n");
  auto malformed = ReadKeyFile(bad);
  EXPECT_EQ(malformed.status().code(), common::Code::kInvalidArgument);
  EXPECT_EQ(malformed.status().message().rfind(bad + ": ", 0), 0u) << malformed.status().message();
}

TEST_F(IdentityConfigTest, BuildProxyResolverChecksTheFlags) {
  ProxyIdentityConfig none;
  auto r = BuildProxyResolver(none, clock_, metrics_);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());  // no mode=proxy listeners possible

  ProxyIdentityConfig peers_only;
  peers_only.trusted_proxies = {"10.0.0.0/24"};
  EXPECT_EQ(BuildProxyResolver(peers_only, clock_, metrics_).status().message(),
            "--trusted-proxy needs --proxy-keys-file or --neutron-secret-file");

  ProxyIdentityConfig c;
  c.proxy_keys_file = Write("keys", "a " + std::string(kSecretA) + "\n");
  c.neutron_secret_file = Write("neutron", std::string(kNeutron) + "\n");
  c.trusted_proxies = {"10.0.0.1/24"};
  auto host_bits = BuildProxyResolver(c, clock_, metrics_);
  EXPECT_EQ(host_bits.status().code(), common::Code::kInvalidArgument);
  EXPECT_NE(host_bits.status().message().find("--trusted-proxy 10.0.0.1/24"), std::string::npos);
  c.trusted_proxies = {"10.0.0.0/24", "10.1.0.7"};
  auto built = BuildProxyResolver(c, clock_, metrics_);
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  EXPECT_TRUE(built->has_value());
}

TEST_F(IdentityConfigTest, ReloadSummarisesWithoutSecretsAndNamesABadFile) {
  ProxyIdentityConfig c;
  c.proxy_keys_file = Write("keys", "a " + std::string(kSecretA) + "\n");
  c.neutron_secret_file = Write("neutron", std::string(kNeutron) + "\n");
  auto built = BuildProxyResolver(c, clock_, metrics_);
  ASSERT_TRUE(built.ok() && built->has_value()) << built.status().ToString();
  Resolver& resolver = **built;

  Write("keys", "b " + std::string(kSecretB) + "\na " + std::string(kSecretA) + "\n");
  auto done = ReloadProxyResolver(c, resolver);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(*done, "proxy keys b, a from " + c.proxy_keys_file + "; Neutron secret from " +
                       c.neutron_secret_file);
  ExpectNoSecret(*done);

  Write("neutron", "short\n");
  auto failed = ReloadProxyResolver(c, resolver);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find(c.neutron_secret_file), std::string::npos)
      << failed.status().message();
  ExpectNoSecret(failed.status().message());
}

TEST_F(IdentityConfigTest, ProxyKeysSignAndVerifyChainsFromTheirOwnFiles) {
  ProxySigningConfig config;
  config.key_file = Write("proxy", "a " + std::string(kSecretA) + "\n");
  auto alone = LoadProxyKeys(config, /*chain=*/false, clock_);
  ASSERT_TRUE(alone.ok()) << alone.status().ToString();
  EXPECT_NE(alone->signer, nullptr);
  EXPECT_EQ(alone->verifier, nullptr);
  EXPECT_EQ(alone->summary, "signing with key a");

  // A chain without --trust-key-file trusts the proxy's own keys.
  auto own = LoadProxyKeys(config, /*chain=*/true, clock_);
  ASSERT_TRUE(own.ok()) << own.status().ToString();
  EXPECT_EQ(own->summary, "signing with key a; accepting chained identities signed with a");

  config.trust_key_file =
      Write("trust", "b " + std::string(kSecretB) + "\nc " + std::string(kSecretA) + "\n");
  auto chained = LoadProxyKeys(config, /*chain=*/true, clock_);
  ASSERT_TRUE(chained.ok()) << chained.status().ToString();
  ASSERT_NE(chained->verifier, nullptr);
  EXPECT_EQ(chained->summary, "signing with key a; accepting chained identities signed with b, c");
  ExpectNoSecret(chained->summary);

  config.trust_key_file = Write("open-trust", "b " + std::string(kSecretB) + "\n", 0644);
  auto refused = LoadProxyKeys(config, /*chain=*/true, clock_);
  EXPECT_EQ(refused.status().code(), common::Code::kPermissionDenied);
  EXPECT_NE(refused.status().message().find(config.trust_key_file), std::string::npos);
  ExpectNoSecret(refused.status().message());
  // Without a chain the trust file is not read at all.
  EXPECT_TRUE(LoadProxyKeys(config, /*chain=*/false, clock_).ok());
}

}  // namespace
}  // namespace openimds::identity
