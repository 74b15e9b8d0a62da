#pragma once

#include <memory>

#include "model/instance.h"

namespace openimds::flavour::ec2 {

// Role credentials that are not in the instance record: app/ supplies them
// (credentials::CredentialSource, an operator's credential-source command).
// The flavour declares what it needs; it never runs commands or reads files
// itself.
class CredentialProvider {
 public:
  virtual ~CredentialProvider() = default;

  // Credentials for `instance`'s IAM role, or null when there are none yet.
  // The flavour still checks the expiry against its clock before serving.
  // Called only when a guest reads iam/security-credentials/<role> and the
  // record's own credentials are absent or expired; must be thread-safe and
  // must not block on I/O.
  virtual std::shared_ptr<const model::Credentials> Find(const model::Instance& instance) const = 0;
};

}  // namespace openimds::flavour::ec2
