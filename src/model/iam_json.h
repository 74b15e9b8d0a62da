#pragma once

#include <optional>

#include <boost/json/fwd.hpp>

#include "common/status.h"
#include "model/instance.h"
#include "model/json_reader.h"
#include "model/json_writer.h"

// The IAM role of the record ("iam", docs/instance.md "iam") and the
// temporary credentials it carries; the same credentials object is EC2's
// "identity_credentials". JSON, canonical form and checks. Internal to the
// model module.
namespace openimds::model {

class LimitChecker;

// "iam": {"role", "instance_profile_arn", "instance_profile_id",
// "credentials"}; types only.
common::Status ReadIam(const boost::json::value& v, const json_reader::Path& at,
                       std::optional<IamRole>& out);

// {"access_key_id", "secret_access_key", "token", "expiration",
// "last_updated"}; types only.
common::Status ReadCredentials(const boost::json::value& v, const json_reader::Path& at,
                               std::optional<Credentials>& out);

// Times in whole seconds.
void TruncateCredentials(std::optional<Credentials>& credentials);

// The three secrets required, each one line; times in whole seconds.
common::Status CheckCredentials(const json_reader::Path& at, const Credentials& c);

// The role name 1..64 characters of [A-Za-z0-9+=,.@_-], the profile's ARN
// and id one line each, the credentials (CheckCredentials).
common::Status ValidateIam(const IamRole& iam);

// The three secrets within Limit::kCredentialBytes.
common::Status CheckCredentialLimits(const json_reader::Path& at, const Credentials& c,
                                     const LimitChecker& limits);

boost::json::object CredentialsToJson(const Credentials& c);
void CredentialsToText(json_writer::Writer& w, const Credentials& c);

// Writes "iam" when the record has a role.
void IamToJson(const std::optional<IamRole>& iam, boost::json::object& o);
void IamToText(const std::optional<IamRole>& iam, json_writer::Writer& w);

}  // namespace openimds::model
