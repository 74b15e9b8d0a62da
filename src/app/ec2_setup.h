#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "auth/document_signer.h"
#include "auth/token_authority.h"
#include "catalog/catalog.h"
#include "feed/follower.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/result.h"
#include "credentials/credential_source.h"
#include "flavour/ec2/ec2_flavour.h"
#include "store/store.h"

namespace openimds::app {

// The EC2 parts of `openimds serve` beyond the flavour itself:
// IMDSv2 token keys that rotate, identity-document signing keys, and the
// credential-source command. Kept out of serve_command.cc so the
// composition root stays a list of parts.
struct Ec2ServeOptions {
  // --identity-keys DIR: identity.key + identity.crt (RSA >= 2048: signature,
  // rsa2048, and pkcs7 unless) pkcs7.key + pkcs7.crt are there too. Empty:
  // no signed forms are served. `openimds keygen --out DIR` makes a set.
  std::string identity_keys_dir;
  // --credential-source-command PATH (see credentials::CredentialSource).
  std::string credential_source_command;
  // --token-key-period SECONDS: a new token key epoch this often. Keys stay
  // valid for the longest token lifetime (6 h) after they stop issuing.
  // Every serve sharing a store must use the same period.
  int token_key_period_seconds = 6 * 3600;
  // --ec2-versions aws|nova: the EC2 dialect (flavour::ec2::Ec2Dialect).
  // "nova" makes the EC2 tree a drop-in for nova-api-metadata's: Nova's
  // versions (1.0 .. 2009-04-04, latest = 2009-04-04) and key set.
  std::string ec2_versions = "aws";
};

void RegisterEc2ServeFlags(CLI::App& serve, Ec2ServeOptions& options);

// The EC2 flavour's options for these flags (the flag values were checked
// by CLI11 when parsed).
flavour::ec2::Ec2Flavour::Options Ec2FlavourOptions(const Ec2ServeOptions& options);

// Owns the token authority, the signer and the credential source, and the
// background thread that rotates token keys.
//
// Token keys live in the store as secrets named by auth::TokenKeySecretName
// (period, epoch) and are created first-writer-wins, so every serve process
// on one store holds the same keys and accepts the others' tokens, across
// rotations too. The ring is refreshed at start-up and then every
// min(60 s, period / 4); a failed refresh keeps the current ring (its keys
// stay good for at least one more period) and is logged and counted
// (token_key_refresh_failures_total).
class Ec2Runtime {
 public:
  // InvalidArgument for bad flags or key files (naming the file, never its
  // contents); the store's error when the token keys cannot be read.
  static common::Result<std::unique_ptr<Ec2Runtime>> Create(const Ec2ServeOptions& options,
                                                            store::Store& store,
                                                            const catalog::Catalog& catalog,
                                                            feed::Follower& follower,
                                                            const common::Clock& clock,
                                                            common::MetricsRegistry& metrics);
  // Stops the background threads. Stop the follower first: Start()
  // subscribes the credential source to it.
  ~Ec2Runtime();
  Ec2Runtime(const Ec2Runtime&) = delete;
  Ec2Runtime& operator=(const Ec2Runtime&) = delete;

  const auth::TokenAuthority& tokens() const { return *tokens_; }
  const auth::DocumentSigner* signer() const { return signer_.get(); }
  // The credential source as the EC2 flavour sees it; null without
  // --credential-source-command.
  const flavour::ec2::CredentialProvider* credentials() const { return ec2_credentials_.get(); }

  // Starts key rotation and the credential source.
  void Start();

 private:
  Ec2Runtime(store::Store& store, const common::Clock& clock, auth::TokenKeySchedule schedule,
             common::Counter& refresh_failures);
  common::Status RefreshKeys();

  store::Store& store_;
  const common::Clock& clock_;
  const auth::TokenKeySchedule schedule_;
  common::Counter& refresh_failures_;
  std::unique_ptr<auth::TokenAuthority> tokens_;
  std::unique_ptr<auth::DocumentSigner> signer_;
  std::unique_ptr<credentials::CredentialSource> credentials_;
  std::unique_ptr<flavour::ec2::CredentialProvider> ec2_credentials_;  // reads credentials_
  feed::Follower* follower_ = nullptr;  // set with credentials_

  std::mutex mu_;
  bool stop_ = false;  // guarded by mu_
  std::condition_variable wake_;
  std::thread rotation_;
};

}  // namespace openimds::app
