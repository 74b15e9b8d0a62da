#include "app/ec2_setup.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/log.h"
#include "common/secret_file.h"

namespace openimds::app {
namespace {

constexpr std::string_view kComponent = "serve";

// Shortest rotation period accepted: with 6 h of overlap, 15 min means 26
// keys in the ring (each verification scans it; per-thread cipher contexts
// are cached for a few keys only).
constexpr int kMinKeyPeriodSeconds = 15 * 60;

// Certificates are public: a plain read. Private keys go through
// common::ReadSecretFile.
common::Result<std::string> ReadCertificate(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return common::InvalidArgument("cannot read " + path.string() + ": " + std::strerror(errno));
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return common::InvalidArgument("cannot read " + path.string());
  return text;
}

common::Result<std::unique_ptr<auth::DocumentSigner>> LoadSigner(const std::string& dir_text) {
  const std::filesystem::path dir(dir_text);
  auth::DocumentSigner::Options o;
  auto key = common::ReadSecretFile(dir / "identity.key");
  if (!key.ok()) return key.status();
  auto cert = ReadCertificate(dir / "identity.crt");
  if (!cert.ok()) return cert.status();
  o.key_pem = std::move(*key);
  o.certificate_pem = std::move(*cert);
  const bool has_pkcs7_key = std::filesystem::exists(dir / "pkcs7.key");
  const bool has_pkcs7_cert = std::filesystem::exists(dir / "pkcs7.crt");
  if (has_pkcs7_key != has_pkcs7_cert) {
    return common::InvalidArgument(dir.string() +
                                   ": pkcs7.key and pkcs7.crt must both be there or neither");
  }
  if (has_pkcs7_key) {
    auto pkey = common::ReadSecretFile(dir / "pkcs7.key");
    if (!pkey.ok()) return pkey.status();
    auto pcert = ReadCertificate(dir / "pkcs7.crt");
    if (!pcert.ok()) return pcert.status();
    o.pkcs7_key_pem = std::move(*pkey);
    o.pkcs7_certificate_pem = std::move(*pcert);
  }
  auto signer = auth::DocumentSigner::Create(o);
  if (!signer.ok()) {
    return common::InvalidArgument(dir.string() + ": " + signer.status().message());
  }
  return signer;
}

// The EC2 flavour's view of the credential source: the flavour declares
// the interface, the credentials module does not know flavours.
class Ec2Credentials final : public flavour::ec2::CredentialProvider {
 public:
  explicit Ec2Credentials(const credentials::CredentialSource& source) : source_(source) {}
  std::shared_ptr<const model::Credentials> Find(const model::Instance& instance) const override {
    return source_.Find(instance);
  }

 private:
  const credentials::CredentialSource& source_;
};

}  // namespace

void RegisterEc2ServeFlags(CLI::App& serve, Ec2ServeOptions& o) {
  serve
      .add_option("--identity-keys", o.identity_keys_dir,
                  "Directory with identity.key/identity.crt (and optionally pkcs7.key/pkcs7.crt) "
                  "that sign the EC2 identity document (pkcs7, signature, rsa2048). Make a set "
                  "with `openimds keygen`.")
      ->check(CLI::ExistingDirectory);
  serve.add_option("--credential-source-command", o.credential_source_command,
                   "Program run as `PROGRAM INSTANCE_ID ROLE` that prints AWS credential_process "
                   "JSON; supplies role credentials for instances whose record has none fresh.");
  serve
      .add_option("--token-key-period", o.token_key_period_seconds,
                  "Seconds between IMDSv2 token key rotations (same on every serve of a store).")
      ->capture_default_str();
  serve
      .add_option("--ec2-versions", o.ec2_versions,
                  "EC2 tree to serve: aws (AWS's versions and categories) or nova (a drop-in for "
                  "nova-api-metadata: versions 1.0 .. 2009-04-04, latest = 2009-04-04, Nova's "
                  "keys).")
      ->check(CLI::IsMember({"aws", "nova"}))
      ->capture_default_str();
}

flavour::ec2::Ec2Flavour::Options Ec2FlavourOptions(const Ec2ServeOptions& options) {
  flavour::ec2::Ec2Flavour::Options out;
  if (!flavour::ec2::ParseEc2Dialect(options.ec2_versions, out.dialect)) {
    out.dialect = flavour::ec2::Ec2Dialect::kAws;  // unreachable: CLI11 checked the value
  }
  return out;
}

Ec2Runtime::Ec2Runtime(store::Store& store, const common::Clock& clock,
                       auth::TokenKeySchedule schedule, common::Counter& refresh_failures)
    : store_(store), clock_(clock), schedule_(schedule), refresh_failures_(refresh_failures) {}

common::Result<std::unique_ptr<Ec2Runtime>> Ec2Runtime::Create(const Ec2ServeOptions& options,
                                                               store::Store& store,
                                                               const catalog::Catalog& catalog,
                                                               feed::Follower& follower,
                                                               const common::Clock& clock,
                                                               common::MetricsRegistry& metrics) {
  if (options.token_key_period_seconds < kMinKeyPeriodSeconds) {
    return common::InvalidArgument("--token-key-period must be at least " +
                                   std::to_string(kMinKeyPeriodSeconds) + " seconds");
  }
  auth::TokenKeySchedule schedule;
  schedule.period = std::chrono::seconds(options.token_key_period_seconds);
  std::unique_ptr<Ec2Runtime> rt(new Ec2Runtime(
      store, clock, schedule,
      metrics.GetCounter("token_key_refresh_failures_total",
                         "IMDSv2 token key refreshes that failed (the ring in use was kept)")));

  // The ring starts with a throw-away key that is replaced before anything
  // is served: the real keys come from the store.
  auto placeholder = auth::TokenAuthority::NewKeyMaterial();
  if (!placeholder.ok()) return placeholder.status();
  auto tokens = auth::TokenAuthority::Create({auth::TokenKey{0, *placeholder}}, clock);
  if (!tokens.ok()) return tokens.status();
  rt->tokens_ = std::make_unique<auth::TokenAuthority>(std::move(*tokens));
  if (common::Status s = rt->RefreshKeys(); !s.ok()) {
    return common::Status(s.code(), "cannot read IMDSv2 token keys from the store: " + s.message());
  }
  auth::TokenAuthority* t = rt->tokens_.get();
  metrics.AddGauge("imds_token_key_epoch", "Epoch of the key that issues IMDSv2 tokens.",
                   [t] { return static_cast<double>(t->IssuingEpoch()); });

  if (!options.identity_keys_dir.empty()) {
    auto signer = LoadSigner(options.identity_keys_dir);
    if (!signer.ok()) return signer.status();
    rt->signer_ = std::move(*signer);
    common::LogInfo(kComponent,
                    "identity documents are signed with the keys in " + options.identity_keys_dir);
  }
  if (!options.credential_source_command.empty()) {
    credentials::CredentialSource::Options co;
    co.command = options.credential_source_command;
    rt->credentials_ =
        std::make_unique<credentials::CredentialSource>(co, catalog, clock, metrics);
    rt->ec2_credentials_ = std::make_unique<Ec2Credentials>(*rt->credentials_);
    rt->follower_ = &follower;
    common::LogInfo(kComponent, "role credentials without a fresh pushed set come from " +
                                    options.credential_source_command);
  }
  return rt;
}

common::Status Ec2Runtime::RefreshKeys() {
  return auth::RefreshTokenKeys(*tokens_, clock_.Now(), schedule_,
                                [this](std::string_view name, std::string_view candidate) {
                                  return store_.GetOrCreateSecret(name, candidate);
                                });
}

void Ec2Runtime::Start() {
  if (credentials_) {
    // Instances that gain, change or lose a role reach the source at once.
    credentials::CredentialSource* source = credentials_.get();
    follower_->Subscribe(
        [source](const std::vector<feed::Applied>& changes) { source->Changed(changes); });
    credentials_->Start();
  }
  const auto interval =
      std::min<std::chrono::seconds>(std::chrono::seconds(60), schedule_.period / 4);
  rotation_ = std::thread([this, interval] {
    std::unique_lock lock(mu_);
    while (!wake_.wait_for(lock, interval, [this] { return stop_; })) {
      lock.unlock();
      const uint32_t before = tokens_->IssuingEpoch();
      if (common::Status s = RefreshKeys(); !s.ok()) {
        refresh_failures_.Inc();
        common::LogWarn(kComponent,
                        "IMDSv2 token key refresh failed (keeping the current "
                        "keys): " +
                            s.ToString());
      } else if (tokens_->IssuingEpoch() != before) {
        common::LogInfo(kComponent, "IMDSv2 token keys rotated to epoch " +
                                        std::to_string(tokens_->IssuingEpoch()));
      }
      lock.lock();
    }
  });
}

Ec2Runtime::~Ec2Runtime() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (rotation_.joinable()) rotation_.join();
  ec2_credentials_.reset();
  credentials_.reset();  // stops its thread before the authority and signer go
}

}  // namespace openimds::app
