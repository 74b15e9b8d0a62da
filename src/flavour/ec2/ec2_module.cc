#include "flavour/ec2/ec2_module.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/log.h"
#include "common/secret_file.h"
#include "flavour/ec2/ec2_flavour.h"

namespace openimds::flavour::ec2 {
namespace {

constexpr std::string_view kComponent = "serve";

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

// The flavour's view of the credential source: the flavour declares the
// interface, the credentials module does not know flavours.
class SourceProvider final : public CredentialProvider {
 public:
  explicit SourceProvider(const credentials::CredentialSource& source) : source_(source) {}
  std::shared_ptr<const model::Credentials> Find(const model::Instance& instance) const override {
    return source_.Find(instance);
  }

 private:
  const credentials::CredentialSource& source_;
};

}  // namespace

void Ec2Module::RegisterOptions(CLI::App& serve) {
  Options& o = options_;
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
      .add_option("--ec2-versions", o.ec2_versions,
                  "EC2 tree to serve: aws (AWS's versions and categories) or nova (a drop-in for "
                  "nova-api-metadata: versions 1.0 .. 2009-04-04, latest = 2009-04-04, Nova's "
                  "keys).")
      ->check(CLI::IsMember({"aws", "nova"}))
      ->capture_default_str();
}

std::vector<std::string_view> Ec2Module::GuestHeaders() const {
  // IMDSv2: the session token, and the PUT that asks for one.
  return {"X-aws-ec2-metadata-token", "X-aws-ec2-metadata-token-ttl-seconds"};
}

common::Result<std::unique_ptr<Flavour>> Ec2Module::Create(const ServeContext& context) {
  Ec2Flavour::Options flavour_options;
  if (!ParseEc2Dialect(options_.ec2_versions, flavour_options.dialect)) {
    return common::InvalidArgument("--ec2-versions must be aws or nova");
  }
  if (!options_.identity_keys_dir.empty()) {
    auto signer = LoadSigner(options_.identity_keys_dir);
    if (!signer.ok()) return signer.status();
    signer_ = std::move(*signer);
    common::LogInfo(kComponent,
                    "identity documents are signed with the keys in " + options_.identity_keys_dir);
  }
  if (!options_.credential_source_command.empty()) {
    credentials::CredentialSource::Options co;
    co.command = options_.credential_source_command;
    credentials_ = std::make_unique<credentials::CredentialSource>(co, context.catalog,
                                                                   context.clock, context.metrics);
    provider_ = std::make_unique<SourceProvider>(*credentials_);
    follower_ = &context.follower;
    common::LogInfo(kComponent, "role credentials without a fresh pushed set come from " +
                                    options_.credential_source_command);
  }
  return std::unique_ptr<Flavour>(std::make_unique<Ec2Flavour>(flavour_options, context.tokens,
                                                               context.clock, context.metrics,
                                                               signer_.get(), provider_.get()));
}

void Ec2Module::Start() {
  if (!credentials_) return;
  // Instances that gain, change or lose a role reach the source at once.
  credentials::CredentialSource* source = credentials_.get();
  follower_->Subscribe(
      [source](const std::vector<feed::Applied>& changes) { source->Changed(changes); });
  credentials_->Start();
}

void Ec2Module::Stop() {
  provider_.reset();
  credentials_.reset();  // stops its thread
}

Ec2Module::~Ec2Module() { Stop(); }

}  // namespace openimds::flavour::ec2
