#include "model/iam_json.h"

#include <string>
#include <utility>

#include <boost/json.hpp>

#include "model/limit_checker.h"
#include "model/text_checks.h"
#include "model/time_json.h"

namespace openimds::model {

namespace json = boost::json;
using common::Status;
using namespace json_reader;  // NOLINT: the reader toolkit

Status ReadCredentials(const json::value& v, const Path& at, std::optional<Credentials>& out) {
  Credentials c;
  if (Status s = ReadObject(v, at,
                            {
                                {"access_key_id", String(c.access_key_id)},
                                {"secret_access_key", String(c.secret_access_key)},
                                {"token", String(c.token)},
                                {"expiration", Time(c.expiration)},
                                {"last_updated", Time(c.last_updated)},
                            });
      !s.ok()) {
    return s;
  }
  out = std::move(c);
  return Status::Ok();
}

Status ReadIam(const json::value& v, const Path& at, std::optional<IamRole>& out) {
  IamRole iam;
  if (Status s = ReadObject(v, at,
                            {
                                {"role", InternedString(iam.name)},
                                {"instance_profile_arn", InternedString(iam.instance_profile_arn)},
                                {"instance_profile_id", String(iam.instance_profile_id)},
                                {"credentials",
                                 [&iam](const json::value& x, const Path& p) {
                                   return ReadCredentials(x, p, iam.credentials);
                                 }},
                            });
      !s.ok()) {
    return s;
  }
  out = std::move(iam);
  return Status::Ok();
}

void TruncateCredentials(std::optional<Credentials>& c) {
  if (!c) return;
  c->expiration = TruncateToSeconds(c->expiration);
  c->last_updated = TruncateToSeconds(c->last_updated);
}

Status CheckCredentials(const Path& at, const Credentials& c) {
  const std::pair<const char*, const Str*> parts[] = {
      {"access_key_id", &c.access_key_id},
      {"secret_access_key", &c.secret_access_key},
      {"token", &c.token},
  };
  for (const auto& [name, value] : parts) {
    const Path p(at, name);
    if (value->empty()) return Err(p, "required");
    if (Status s = CheckText(p, *value); !s.ok()) return s;
  }
  if (Status s = CheckTime(Path(at, "expiration"), c.expiration); !s.ok()) return s;
  return CheckTime(Path(at, "last_updated"), c.last_updated);
}

Status ValidateIam(const IamRole& iam) {
  if (iam.name.empty() || iam.name.size() > 64 || !AllOf(iam.name, "+=,.@_-")) {
    return Err("/iam/role", "must be 1..64 characters of [A-Za-z0-9+=,.@_-]");
  }
  if (Status s = CheckText(Path("/iam/instance_profile_arn"), iam.instance_profile_arn); !s.ok()) {
    return s;
  }
  if (Status s = CheckText(Path("/iam/instance_profile_id"), iam.instance_profile_id); !s.ok()) {
    return s;
  }
  if (iam.credentials) return CheckCredentials(Path("/iam/credentials"), *iam.credentials);
  return Status::Ok();
}

Status CheckCredentialLimits(const Path& at, const Credentials& c, const LimitChecker& limits) {
  const std::pair<const char*, const Str*> parts[] = {
      {"access_key_id", &c.access_key_id},
      {"secret_access_key", &c.secret_access_key},
      {"token", &c.token},
  };
  for (const auto& [name, value] : parts) {
    if (Status s = limits.Bytes(Path(at, name), *value, Limit::kCredentialBytes); !s.ok()) {
      return s;
    }
  }
  return Status::Ok();
}

json::object CredentialsToJson(const Credentials& c) {
  using json_writer::PutString;
  json::object creds;
  PutString(creds, "access_key_id", c.access_key_id);
  PutString(creds, "secret_access_key", c.secret_access_key);
  PutString(creds, "token", c.token);
  PutTime(creds, "expiration", c.expiration);
  PutTime(creds, "last_updated", c.last_updated);
  return creds;
}

void CredentialsToText(json_writer::Writer& w, const Credentials& c) {
  w.BeginObject();
  w.PutString("access_key_id", c.access_key_id);
  w.PutString("secret_access_key", c.secret_access_key);
  w.PutString("token", c.token);
  PutTimeText(w, "expiration", c.expiration);
  PutTimeText(w, "last_updated", c.last_updated);
  w.EndObject();
}

void IamToJson(const std::optional<IamRole>& role, json::object& o) {
  if (!role) return;
  json::object iam;
  iam["role"] = role->name.view();
  json_writer::PutString(iam, "instance_profile_arn", role->instance_profile_arn);
  json_writer::PutString(iam, "instance_profile_id", role->instance_profile_id);
  if (role->credentials) iam["credentials"] = CredentialsToJson(*role->credentials);
  o["iam"] = std::move(iam);
}

void IamToText(const std::optional<IamRole>& role, json_writer::Writer& w) {
  if (!role) return;
  w.Key("iam");
  w.BeginObject();
  w.Key("role");
  w.String(role->name);
  w.PutString("instance_profile_arn", role->instance_profile_arn);
  w.PutString("instance_profile_id", role->instance_profile_id);
  if (role->credentials) {
    w.Key("credentials");
    CredentialsToText(w, *role->credentials);
  }
  w.EndObject();
}

}  // namespace openimds::model
