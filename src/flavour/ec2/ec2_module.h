#pragma once

#include <memory>
#include <string>

#include "auth/document_signer.h"
#include "credentials/credential_source.h"
#include "flavour/ec2/credential_provider.h"
#include "flavour/module.h"

namespace openimds::flavour::ec2 {

// The EC2 flavour as `openimds serve` runs it: the flavour, its flags
// (--identity-keys, --credential-source-command, --ec2-versions), the
// identity-document signer read from the key directory, and the
// credentials::CredentialSource, handed to the flavour as its
// CredentialProvider. IMDSv2 token keys are serve's (auth::TokenKeyRotator):
// every flavour's metadata options use them.
class Ec2Module final : public Module {
 public:
  struct Options {
    // --identity-keys DIR: identity.key + identity.crt (RSA >= 2048: signature,
    // rsa2048, and pkcs7 unless) pkcs7.key + pkcs7.crt are there too. Empty:
    // no signed forms are served. `openimds keygen --out DIR` makes a set.
    std::string identity_keys_dir;
    // --credential-source-command PATH (see credentials::CredentialSource).
    std::string credential_source_command;
    // --ec2-versions aws|nova: the EC2 dialect (Ec2Dialect). "nova" makes the
    // EC2 tree a drop-in for nova-api-metadata's: Nova's versions (1.0 ..
    // 2009-04-04, latest = 2009-04-04) and key set.
    std::string ec2_versions = "aws";
  };

  Ec2Module() = default;
  ~Ec2Module() override;  // Stop()

  std::string_view Name() const override { return "ec2"; }
  void RegisterOptions(CLI::App& serve) override;
  std::vector<std::string_view> GuestHeaders() const override;
  // Errors: the key directory's files (common::ReadSecretFile's codes for
  // the private keys, InvalidArgument for certificates and key contents,
  // naming the file, never its contents).
  common::Result<std::unique_ptr<Flavour>> Create(const ServeContext& context) override;
  // Subscribes the credential source to the change feed and starts it.
  void Start() override;
  void Stop() override;

  Options& options() { return options_; }

 private:
  Options options_;
  std::unique_ptr<auth::DocumentSigner> signer_;
  std::unique_ptr<credentials::CredentialSource> credentials_;
  std::unique_ptr<CredentialProvider> provider_;  // reads credentials_
  feed::Follower* follower_ = nullptr;            // set with credentials_
};

}  // namespace openimds::flavour::ec2
