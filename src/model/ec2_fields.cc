#include "model/ec2_fields.h"

#include <algorithm>
#include <string>
#include <utility>

#include <boost/json.hpp>

#include "common/ip_address.h"
#include "model/iam_json.h"
#include "model/instance.h"
#include "model/ip_text.h"
#include "model/json_reader.h"
#include "model/json_writer.h"
#include "model/platform_events_json.h"
#include "model/text_checks.h"

namespace openimds::model {

namespace json = boost::json;
using common::Status;
using json_reader::Err;
using json_reader::Path;

namespace {

bool Contains(const StrList& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

}  // namespace

void CanonicaliseEc2Fields(Instance& in) {
  for (Nic& nic : in.nics) {
    CanonicalCidrs(nic.ipv4_prefixes);
    CanonicalCidrs(nic.ipv6_prefixes);
    StringMap associations;
    for (const auto& [public_ip, private_ip] : nic.ipv4_associations) {
      std::string p = public_ip;
      std::string q = private_ip;
      if (auto ip = common::IpAddress::Parse(p)) p = ip->ToString();
      if (auto ip = common::IpAddress::Parse(q)) q = ip->ToString();
      associations[std::move(p)] = std::move(q);
    }
    nic.ipv4_associations = std::move(associations);
  }
  if (!in.ec2.has_value()) return;
  Ec2Fields& ec2 = in.ec2.mut();
  TruncateCredentials(ec2.identity_credentials);
  TruncateEvents(ec2.events);
}

Status CheckNicEc2Fields(const Path& at, const Nic& nic) {
  if (Status s = CheckCidrs(Path(at, "ipv4_prefixes"), nic.ipv4_prefixes, Family::kV4); !s.ok()) {
    return s;
  }
  if (Status s = CheckCidrs(Path(at, "ipv6_prefixes"), nic.ipv6_prefixes, Family::kV6); !s.ok()) {
    return s;
  }
  for (const auto& [public_ip, private_ip] : nic.ipv4_associations) {
    const Path associations(at, "ipv4_associations");
    const Path p(associations, public_ip);
    if (Status s = CheckAddress(p, public_ip, Family::kV4); !s.ok()) return s;
    if (!Contains(nic.public_ipv4s, public_ip)) return Err(p, "not one of this NIC's public_ipv4s");
    if (Status s = CheckAddress(p, private_ip, Family::kV4); !s.ok()) return s;
    if (!Contains(nic.private_ipv4s, private_ip)) {
      return Err(p, private_ip + " is not one of this NIC's private_ipv4s");
    }
  }
  return Status::Ok();
}

Status ValidateEc2Fields(const Instance& in) {
  const std::pair<const char*, const Str*> texts[] = {
      {"ami_manifest_path", &in.ec2->ami_manifest_path},
      {"instance_action", &in.ec2->instance_action},
      {"instance_life_cycle", &in.ec2->instance_life_cycle},
      {"profile", &in.ec2->profile},
      {"placement_group", &in.ec2->placement_group},
      {"host_id", &in.ec2->host_id},
  };
  for (const auto& [name, value] : texts) {
    if (Status s = CheckText(Path(Path(), name), *value); !s.ok()) return s;
  }
  const std::pair<const char*, const StrList*> lists[] = {
      {"ancestor_ami_ids", &in.ec2->ancestor_ami_ids},
      {"product_codes", &in.ec2->product_codes},
      {"billing_products", &in.ec2->billing_products},
  };
  for (const auto& [name, list] : lists) {
    if (Status s = CheckTextList(Path(Path(), name), *list); !s.ok()) return s;
  }
  // EC2 partition placement groups have at most 7 partitions.
  if (in.ec2->partition_number < 0 || in.ec2->partition_number > 7) {
    return Err("/partition_number", std::to_string(in.ec2->partition_number) + " not in 0..7");
  }
  if (in.ec2->identity_credentials) {
    if (Status s = CheckCredentials(Path("/identity_credentials"), *in.ec2->identity_credentials); !s.ok()) {
      return s;
    }
  }
  return ValidateEvents(in.ec2->events);
}

// Defaults are omitted, so a record without these fields writes only the
// record's own members.
void Ec2FieldsToJson(const Instance& in, json::object& o) {
  using json_writer::PutArray;
  using json_writer::PutString;
  PutString(o, "ami_manifest_path", in.ec2->ami_manifest_path);
  PutArray(o, "ancestor_ami_ids", in.ec2->ancestor_ami_ids);
  PutArray(o, "product_codes", in.ec2->product_codes);
  PutArray(o, "billing_products", in.ec2->billing_products);
  PutString(o, "instance_action", in.ec2->instance_action);
  PutString(o, "instance_life_cycle", in.ec2->instance_life_cycle);
  PutString(o, "profile", in.ec2->profile);
  PutString(o, "placement_group", in.ec2->placement_group);
  PutString(o, "host_id", in.ec2->host_id);
  if (in.ec2->partition_number != 0) o["partition_number"] = in.ec2->partition_number;
  if (in.ec2->detailed_monitoring) o["monitoring"] = "enabled";
  if (in.ec2->identity_credentials) {
    o["identity_credentials"] = CredentialsToJson(*in.ec2->identity_credentials);
  }
  if (!in.ec2->events.empty()) o["events"] = EventsToJson(in.ec2->events);
}

void Ec2FieldsToText(json_writer::Writer& w, const Instance& in) {
  w.PutString("ami_manifest_path", in.ec2->ami_manifest_path);
  w.PutArray("ancestor_ami_ids", in.ec2->ancestor_ami_ids);
  w.PutArray("product_codes", in.ec2->product_codes);
  w.PutArray("billing_products", in.ec2->billing_products);
  w.PutString("instance_action", in.ec2->instance_action);
  w.PutString("instance_life_cycle", in.ec2->instance_life_cycle);
  w.PutString("profile", in.ec2->profile);
  w.PutString("placement_group", in.ec2->placement_group);
  w.PutString("host_id", in.ec2->host_id);
  if (in.ec2->partition_number != 0) {
    w.Key("partition_number");
    w.Int(in.ec2->partition_number);
  }
  if (in.ec2->detailed_monitoring) {
    w.Key("monitoring");
    w.String("enabled");
  }
  if (in.ec2->identity_credentials) {
    w.Key("identity_credentials");
    CredentialsToText(w, *in.ec2->identity_credentials);
  }
  if (!in.ec2->events.empty()) {
    w.Key("events");
    EventsToText(w, in.ec2->events);
  }
}

}  // namespace openimds::model
