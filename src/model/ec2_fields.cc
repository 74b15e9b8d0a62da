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
#include "model/limit_checker.h"
#include "model/platform_events_json.h"
#include "model/record_part.h"
#include "model/text_checks.h"

namespace openimds::model {
namespace {

namespace json = boost::json;
using common::Status;
using namespace json_reader;  // NOLINT: the reader toolkit

// Top-level members, in the order ToJson writes them. Reading one makes the
// group (Box::mut); CanonicaliseEc2 frees it again if it holds only defaults.
constexpr PartField kFields[] = {
    {"ami_manifest_path",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions&) {
       return InternedString(in.ec2.mut().ami_manifest_path)(v, at);
     }},
    {"ancestor_ami_ids",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions&) {
       return InternedStringArray(in.ec2.mut().ancestor_ami_ids)(v, at);
     }},
    {"product_codes",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions&) {
       return InternedStringArray(in.ec2.mut().product_codes)(v, at);
     }},
    {"billing_products",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions&) {
       return InternedStringArray(in.ec2.mut().billing_products)(v, at);
     }},
    {"instance_action",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions&) {
       return InternedString(in.ec2.mut().instance_action)(v, at);
     }},
    {"instance_life_cycle",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions&) {
       return InternedString(in.ec2.mut().instance_life_cycle)(v, at);
     }},
    {"profile",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions&) {
       return InternedString(in.ec2.mut().profile)(v, at);
     }},
    {"placement_group",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions&) {
       return InternedString(in.ec2.mut().placement_group)(v, at);
     }},
    {"host_id",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions&) {
       return String(in.ec2.mut().host_id)(v, at);
     }},
    {"partition_number",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions&) {
       return Int(in.ec2.mut().partition_number)(v, at);
     }},
    {"monitoring",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions&) {
       return ChoiceValue(v, at, in.ec2.mut().detailed_monitoring, "enabled", "disabled");
     }},
    {"identity_credentials",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions&) {
       return ReadCredentials(v, at, in.ec2.mut().identity_credentials);
     }},
    {"events",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions& parse) {
       return ReadEvents(v, at, in.ec2.mut().events, parse);
     }},
};

constexpr NicPartField kNicFields[] = {
    {"ipv4_prefixes",
     [](const json::value& v, const Path& at, Nic& nic) {
       return StringArray(nic.ipv4_prefixes)(v, at);
     }},
    {"ipv6_prefixes",
     [](const json::value& v, const Path& at, Nic& nic) {
       return StringArray(nic.ipv6_prefixes)(v, at);
     }},
    {"ipv4_associations",
     [](const json::value& v, const Path& at, Nic& nic) {
       return StringMapValue(v, at, nic.ipv4_associations, /*interned=*/false);
     }},
};

// The part's texts and lists of texts, in document order: ValidateEc2 checks
// that each is one line of valid UTF-8 (a list's entries non-empty as well),
// CheckEc2Limits their sizes (Limit::kTextBytes, Limit::kListItems).
constexpr std::pair<std::string_view, Str Ec2Fields::*> kTexts[] = {
    {"ami_manifest_path", &Ec2Fields::ami_manifest_path},
    {"instance_action", &Ec2Fields::instance_action},
    {"instance_life_cycle", &Ec2Fields::instance_life_cycle},
    {"profile", &Ec2Fields::profile},
    {"placement_group", &Ec2Fields::placement_group},
    {"host_id", &Ec2Fields::host_id},
};
constexpr std::pair<std::string_view, StrList Ec2Fields::*> kTextLists[] = {
    {"ancestor_ami_ids", &Ec2Fields::ancestor_ami_ids},
    {"product_codes", &Ec2Fields::product_codes},
    {"billing_products", &Ec2Fields::billing_products},
};

bool Contains(const StrList& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

void CanonicaliseEc2(Instance& in) {
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
  in.ec2.Compact();  // "partition_number": 0 and the like set nothing
}

Status CheckEc2Nic(const Path& at, const Nic& nic) {
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

Status ValidateEc2(const Instance& in) {
  const Ec2Fields& e = *in.ec2;
  for (const auto& [name, member] : kTexts) {
    if (Status s = CheckText(Path(Path(), name), e.*member); !s.ok()) return s;
  }
  for (const auto& [name, member] : kTextLists) {
    if (Status s = CheckTextList(Path(Path(), name), e.*member); !s.ok()) return s;
  }
  // EC2 partition placement groups have at most 7 partitions.
  if (e.partition_number < 0 || e.partition_number > 7) {
    return Err("/partition_number", std::to_string(e.partition_number) + " not in 0..7");
  }
  if (e.identity_credentials) {
    if (Status s = CheckCredentials(Path("/identity_credentials"), *e.identity_credentials);
        !s.ok()) {
      return s;
    }
  }
  return ValidateEvents(e.events);
}

// The NIC's EC2-only lists count against the addresses a NIC may hold.
Status CheckEc2NicLimits(const Path& at, const Nic& nic, const LimitChecker& c) {
  const std::pair<const char*, const StrList*> prefixes[] = {
      {"ipv4_prefixes", &nic.ipv4_prefixes},
      {"ipv6_prefixes", &nic.ipv6_prefixes},
  };
  for (const auto& [name, list] : prefixes) {
    if (Status s = c.TextList(Path(at, name), *list, Limit::kAddressesPerNic); !s.ok()) return s;
  }
  return c.TextMap(Path(at, "ipv4_associations"), nic.ipv4_associations, Limit::kAddressesPerNic);
}

Status CheckEc2Limits(const Instance& in, const LimitChecker& c) {
  const Ec2Fields& e = *in.ec2;
  for (const auto& [name, member] : kTexts) {
    if (Status s = c.Bytes(Path(Path(), name), e.*member); !s.ok()) return s;
  }
  for (const auto& [name, member] : kTextLists) {
    if (Status s = c.TextList(Path(Path(), name), e.*member); !s.ok()) return s;
  }
  if (e.identity_credentials) {
    if (Status s = CheckCredentialLimits(Path("/identity_credentials"), *e.identity_credentials, c);
        !s.ok()) {
      return s;
    }
  }
  const Path scheduled("/events/scheduled");
  if (Status s = c.Count(scheduled, e.events.scheduled.size()); !s.ok()) return s;
  for (size_t i = 0; i < e.events.scheduled.size(); ++i) {
    const ScheduledEvent& ev = e.events.scheduled[i];
    const Path at(scheduled, i);
    if (Status s = c.Bytes(Path(at, "id"), ev.id); !s.ok()) return s;
    if (Status s = c.Bytes(Path(at, "description"), ev.description); !s.ok()) return s;
  }
  return c.Count(Path("/events/target_lifecycle_states"), e.events.lifecycle.size());
}

void Ec2NicToJson(const Nic& nic, json::object& o) {
  json_writer::PutArray(o, "ipv4_prefixes", nic.ipv4_prefixes);
  json_writer::PutArray(o, "ipv6_prefixes", nic.ipv6_prefixes);
  json_writer::PutMap(o, "ipv4_associations", nic.ipv4_associations);
}

void Ec2NicToText(const Nic& nic, json_writer::Writer& w) {
  w.PutArray("ipv4_prefixes", nic.ipv4_prefixes);
  w.PutArray("ipv6_prefixes", nic.ipv6_prefixes);
  w.PutMap("ipv4_associations", nic.ipv4_associations);
}

// Defaults are omitted: a record without EC2-only fields has none of these
// members.
void Ec2ToJson(const Instance& in, json::object& o) {
  using json_writer::PutArray;
  using json_writer::PutString;
  const Ec2Fields& e = *in.ec2;
  PutString(o, "ami_manifest_path", e.ami_manifest_path);
  PutArray(o, "ancestor_ami_ids", e.ancestor_ami_ids);
  PutArray(o, "product_codes", e.product_codes);
  PutArray(o, "billing_products", e.billing_products);
  PutString(o, "instance_action", e.instance_action);
  PutString(o, "instance_life_cycle", e.instance_life_cycle);
  PutString(o, "profile", e.profile);
  PutString(o, "placement_group", e.placement_group);
  PutString(o, "host_id", e.host_id);
  if (e.partition_number != 0) o["partition_number"] = e.partition_number;
  if (e.detailed_monitoring) o["monitoring"] = "enabled";
  if (e.identity_credentials) {
    o["identity_credentials"] = CredentialsToJson(*e.identity_credentials);
  }
  if (!e.events.empty()) o["events"] = EventsToJson(e.events);
}

void Ec2ToText(const Instance& in, json_writer::Writer& w) {
  const Ec2Fields& e = *in.ec2;
  w.PutString("ami_manifest_path", e.ami_manifest_path);
  w.PutArray("ancestor_ami_ids", e.ancestor_ami_ids);
  w.PutArray("product_codes", e.product_codes);
  w.PutArray("billing_products", e.billing_products);
  w.PutString("instance_action", e.instance_action);
  w.PutString("instance_life_cycle", e.instance_life_cycle);
  w.PutString("profile", e.profile);
  w.PutString("placement_group", e.placement_group);
  w.PutString("host_id", e.host_id);
  if (e.partition_number != 0) {
    w.Key("partition_number");
    w.Int(e.partition_number);
  }
  if (e.detailed_monitoring) {
    w.Key("monitoring");
    w.String("enabled");
  }
  if (e.identity_credentials) {
    w.Key("identity_credentials");
    CredentialsToText(w, *e.identity_credentials);
  }
  if (!e.events.empty()) {
    w.Key("events");
    EventsToText(w, e.events);
  }
}

}  // namespace

constinit const RecordPart kEc2Part = {
    .name = "ec2",
    .fields = kFields,
    .nic_fields = kNicFields,
    .canonicalise = CanonicaliseEc2,
    .check_nic = CheckEc2Nic,
    .validate = ValidateEc2,
    .check_nic_limits = CheckEc2NicLimits,
    .check_limits = CheckEc2Limits,
    .nic_to_json = Ec2NicToJson,
    .nic_to_text = Ec2NicToText,
    .to_json = Ec2ToJson,
    .to_text = Ec2ToText,
};

}  // namespace openimds::model
