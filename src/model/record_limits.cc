#include "model/record_limits.h"

#include <string>
#include <utility>
#include <vector>

#include "model/iam_json.h"
#include "model/json_reader.h"
#include "model/limit_checker.h"
#include "model/record_part.h"
#include "model/record_texts.h"

namespace openimds::model {
namespace {

using common::Code;
using common::Status;
using json_reader::Path;

constexpr bool TableInLimitOrder() {
  for (size_t i = 0; i < kLimitCount; ++i) {
    if (static_cast<size_t>(kLimits[i].limit) != i) return false;
  }
  return true;
}
static_assert(TableInLimitOrder(), "kLimits must list every Limit once, in enum order");

// Code points of UTF-8 text: every byte that does not continue a sequence.
// Validate() refuses invalid UTF-8; for such text this is still a bound.
size_t Utf8Chars(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80 ? 1 : 0;
  return n;
}

// One NIC's texts, hostnames and address lists, its parts' NIC fields
// (record_part.h), then its security groups.
Status CheckNic(const Path& at, const Nic& nic, const LimitChecker& c) {
  const std::pair<const char*, const Str*> texts[] = {
      {"mac", &nic.mac},
      {"interface_id", &nic.interface_id},
      {"owner_id", &nic.owner_id},
      {"subnet_id", &nic.subnet_id},
      {"subnet_ipv4_cidr", &nic.subnet_ipv4_cidr},
      {"vpc_id", &nic.vpc_id},
      {"vpc_ipv4_cidr", &nic.vpc_ipv4_cidr},
  };
  for (const auto& [name, value] : texts) {
    if (Status s = c.Bytes(Path(at, name), *value); !s.ok()) return s;
  }
  const std::pair<const char*, const Str*> hostnames[] = {
      {"local_hostname", &nic.local_hostname},
      {"public_hostname", &nic.public_hostname},
  };
  for (const auto& [name, value] : hostnames) {
    if (Status s = c.Bytes(Path(at, name), *value, Limit::kHostnameBytes); !s.ok()) return s;
  }
  const std::pair<const char*, const StrList*> addresses[] = {
      {"private_ipv4s", &nic.private_ipv4s},   {"public_ipv4s", &nic.public_ipv4s},
      {"ipv6s", &nic.ipv6s},                   {"subnet_ipv6_cidrs", &nic.subnet_ipv6_cidrs},
      {"vpc_ipv4_cidrs", &nic.vpc_ipv4_cidrs}, {"vpc_ipv6_cidrs", &nic.vpc_ipv6_cidrs},
  };
  for (const auto& [name, list] : addresses) {
    if (Status s = c.TextList(Path(at, name), *list, Limit::kAddressesPerNic); !s.ok()) return s;
  }
  for (const RecordPart* part : RecordParts()) {
    if (part->check_nic_limits == nullptr) continue;
    if (Status s = part->check_nic_limits(at, nic, c); !s.ok()) return s;
  }
  if (Status s = c.TextList(Path(at, "security_groups"), nic.security_groups); !s.ok()) return s;
  return c.TextList(Path(at, "security_group_ids"), nic.security_group_ids);
}

}  // namespace

const LimitInfo& InfoFor(Limit limit) { return kLimits[static_cast<size_t>(limit)]; }

RecordLimits::RecordLimits() {
  for (size_t i = 0; i < kLimitCount; ++i) values_[i] = kLimits[i].default_value;
}

Status RecordLimits::Set(Limit limit, size_t value) {
  const LimitInfo& info = InfoFor(limit);
  if (info.configurable_max == 0) {
    return common::InvalidArgument("the limit " + std::string(info.name) + " is fixed");
  }
  if (value < 1 || value > info.configurable_max) {
    return common::InvalidArgument(std::string(info.name) + " must be 1.." +
                                   std::to_string(info.configurable_max) + ", not " +
                                   std::to_string(value));
  }
  values_[static_cast<size_t>(limit)] = value;
  return Status::Ok();
}

Status CheckLimits(const Instance& in, const RecordLimits& limits, Limit* exceeded) {
  const LimitChecker c(limits, exceeded);
  const Path root;
  // The texts under the general limit before the hostnames: a record over
  // both is refused for the general one, as it always has been.
  for (const Limit limit : {Limit::kTextBytes, Limit::kHostnameBytes}) {
    for (const RecordText& text : kRecordTexts) {
      if (text.limit != limit) continue;
      if (Status s = c.Bytes(Path(root, text.name), in.*text.member, limit); !s.ok()) return s;
    }
  }

  const Path nics("/nics");
  if (Status s = c.Count(nics, in.nics.size(), Limit::kNics); !s.ok()) return s;
  for (size_t i = 0; i < in.nics.size(); ++i) {
    if (Status s = CheckNic(Path(nics, i), in.nics[i], c); !s.ok()) return s;
  }

  const Path ssh_keys("/ssh_keys");
  if (Status s = c.Count(ssh_keys, in.ssh_keys.size(), Limit::kSshKeys); !s.ok()) return s;
  for (size_t i = 0; i < in.ssh_keys.size(); ++i) {
    const Path at(ssh_keys, i);
    if (Status s = c.Bytes(Path(at, "name"), in.ssh_keys[i].name); !s.ok()) return s;
    if (Status s = c.Bytes(Path(at, "key"), in.ssh_keys[i].key, Limit::kSshKeyBytes); !s.ok()) {
      return s;
    }
  }

  if (in.user_data) {
    if (Status s = c.Bytes(Path("/user_data"), *in.user_data, Limit::kUserDataBytes); !s.ok()) {
      return s;
    }
  }

  const Path tags("/tags");
  if (Status s = c.Count(tags, in.tags.size(), Limit::kTags); !s.ok()) return s;
  for (const auto& [key, value] : in.tags) {
    const Path at(tags, key);
    if (const size_t n = Utf8Chars(key); n > limits[Limit::kTagKeyChars]) {
      return c.Over(at, "key is ", n, Limit::kTagKeyChars);
    }
    if (const size_t n = Utf8Chars(value); n > limits[Limit::kTagValueChars]) {
      return c.Over(at, "value is ", n, Limit::kTagValueChars);
    }
  }

  if (in.iam) {
    if (Status s = c.Bytes(Path("/iam/instance_profile_arn"), in.iam->instance_profile_arn);
        !s.ok()) {
      return s;
    }
    if (Status s = c.Bytes(Path("/iam/instance_profile_id"), in.iam->instance_profile_id);
        !s.ok()) {
      return s;
    }
    if (in.iam->credentials) {
      if (Status s = CheckCredentialLimits(Path("/iam/credentials"), *in.iam->credentials, c);
          !s.ok()) {
        return s;
      }
    }
  }

  if (Status s = c.TextMap(Path("/block_devices"), in.block_devices, Limit::kBlockDevices);
      !s.ok()) {
    return s;
  }
  for (const RecordPart* part : RecordParts()) {
    if (part->check_limits == nullptr) continue;
    if (Status s = part->check_limits(in, c); !s.ok()) return s;
  }
  return Status::Ok();
}

Status CheckRecordBytes(size_t bytes, const RecordLimits& limits) {
  const size_t limit = limits[Limit::kRecordBytes];
  if (bytes <= limit) return Status::Ok();
  return Status(Code::kPayloadTooLarge,
                "/: " + std::to_string(bytes) + " bytes; the limit is " + std::to_string(limit) +
                    " for one record's JSON");
}

}  // namespace openimds::model
