#include "model/nic_json.h"

#include <algorithm>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include <boost/json.hpp>

#include "model/ip_text.h"
#include "model/record_part.h"
#include "model/text_checks.h"

namespace openimds::model {

namespace json = boost::json;
using common::Status;
using namespace json_reader;  // NOLINT: the reader toolkit

namespace {

Status ReadNic(const json::value& v, const Path& at, Nic& nic) {
  NicPartFieldReader parts(nic);
  return ReadObject(v, at,
                    {
                        {"mac", String(nic.mac)},
                        {"device_number", Int(nic.device_number)},
                        {"network_card_index", Int(nic.network_card_index)},
                        {"interface_id", String(nic.interface_id)},
                        {"owner_id", InternedString(nic.owner_id)},
                        {"local_hostname", InternedString(nic.local_hostname)},
                        {"public_hostname", InternedString(nic.public_hostname)},
                        {"private_ipv4s", StringArray(nic.private_ipv4s)},
                        {"public_ipv4s", StringArray(nic.public_ipv4s)},
                        {"ipv6s", StringArray(nic.ipv6s)},
                        {"subnet_id", InternedString(nic.subnet_id)},
                        {"subnet_ipv4_cidr", InternedString(nic.subnet_ipv4_cidr)},
                        {"subnet_ipv6_cidrs", InternedStringArray(nic.subnet_ipv6_cidrs)},
                        {"vpc_id", InternedString(nic.vpc_id)},
                        {"vpc_ipv4_cidr", InternedString(nic.vpc_ipv4_cidr)},
                        {"vpc_ipv4_cidrs", InternedStringArray(nic.vpc_ipv4_cidrs)},
                        {"vpc_ipv6_cidrs", InternedStringArray(nic.vpc_ipv6_cidrs)},
                        {"security_groups", InternedStringArray(nic.security_groups)},
                        {"security_group_ids", InternedStringArray(nic.security_group_ids)},
                    },
                    parts);
}

}  // namespace

Status ReadNics(const json::value& v, const Path& at, std::vector<Nic>& out) {
  if (!v.is_array()) return Err(at, "expected array");
  out.clear();
  const auto& array = v.get_array();
  out.reserve(array.size());
  for (size_t i = 0; i < array.size(); ++i) {
    if (Status s = ReadNic(array[i], Path(at, i), out.emplace_back()); !s.ok()) return s;
  }
  return Status::Ok();
}

// Every step leaves a field that is canonical already as it is, so
// canonicalising a parsed record again (the store normalises what it is
// given) allocates nothing and keeps packed and interned text shared.
void CanonicaliseNic(Nic& nic) {
  if (IsMac(nic.mac)) {
    std::string lower = Lower(nic.mac);
    if (lower != nic.mac.view()) nic.mac = lower;
  }
  CanonicalAddresses(nic.private_ipv4s);
  CanonicalAddresses(nic.public_ipv4s);
  CanonicalAddresses(nic.ipv6s);
  CanonicalCidr(nic.subnet_ipv4_cidr);
  CanonicalCidrs(nic.subnet_ipv6_cidrs);
  CanonicalCidr(nic.vpc_ipv4_cidr);
  CanonicalCidrs(nic.vpc_ipv4_cidrs);
  CanonicalCidrs(nic.vpc_ipv6_cidrs);
}

Status CheckNic(const Path& at, const Nic& nic) {
  if (!IsMac(nic.mac)) {
    return Err(Path(at, "mac"), "not a MAC address (want 02:00:00:00:00:01 form)");
  }
  if (Lower(nic.mac) != nic.mac) return Err(Path(at, "mac"), "not lower case");
  if (nic.device_number < 0 || nic.device_number > 127) {
    return Err(Path(at, "device_number"), std::to_string(nic.device_number) + " not in 0..127");
  }
  if (nic.network_card_index < 0 || nic.network_card_index > 127) {
    return Err(Path(at, "network_card_index"),
               std::to_string(nic.network_card_index) + " not in 0..127");
  }
  const std::pair<const char*, const Str*> texts[] = {
      {"interface_id", &nic.interface_id},     {"owner_id", &nic.owner_id},
      {"local_hostname", &nic.local_hostname}, {"public_hostname", &nic.public_hostname},
      {"subnet_id", &nic.subnet_id},           {"vpc_id", &nic.vpc_id},
  };
  for (const auto& [name, value] : texts) {
    if (Status s = CheckText(Path(at, name), *value); !s.ok()) return s;
  }
  const std::tuple<const char*, const StrList*, Family> lists[] = {
      {"private_ipv4s", &nic.private_ipv4s, Family::kV4},
      {"public_ipv4s", &nic.public_ipv4s, Family::kV4},
      {"ipv6s", &nic.ipv6s, Family::kV6},
  };
  for (const auto& [name, list, family] : lists) {
    for (size_t i = 0; i < list->size(); ++i) {
      if (Status s = CheckAddress(Path(Path(at, name), i), (*list)[i], family); !s.ok()) {
        return s;
      }
    }
  }
  if (!nic.subnet_ipv4_cidr.empty()) {
    if (Status s = CheckCidr(Path(at, "subnet_ipv4_cidr"), nic.subnet_ipv4_cidr, Family::kV4);
        !s.ok()) {
      return s;
    }
  }
  if (!nic.vpc_ipv4_cidr.empty()) {
    if (Status s = CheckCidr(Path(at, "vpc_ipv4_cidr"), nic.vpc_ipv4_cidr, Family::kV4); !s.ok()) {
      return s;
    }
  }
  if (Status s = CheckCidrs(Path(at, "subnet_ipv6_cidrs"), nic.subnet_ipv6_cidrs, Family::kV6);
      !s.ok()) {
    return s;
  }
  if (Status s = CheckCidrs(Path(at, "vpc_ipv4_cidrs"), nic.vpc_ipv4_cidrs, Family::kV4);
      !s.ok()) {
    return s;
  }
  if (Status s = CheckCidrs(Path(at, "vpc_ipv6_cidrs"), nic.vpc_ipv6_cidrs, Family::kV6);
      !s.ok()) {
    return s;
  }
  const Path groups(at, "security_groups");
  for (size_t i = 0; i < nic.security_groups.size(); ++i) {
    const Path p(groups, i);
    if (nic.security_groups[i].empty()) return Err(p, "empty");
    if (Status s = CheckText(p, nic.security_groups[i]); !s.ok()) return s;
  }
  const Path group_ids(at, "security_group_ids");
  for (size_t i = 0; i < nic.security_group_ids.size(); ++i) {
    const Path p(group_ids, i);
    if (nic.security_group_ids[i].empty()) return Err(p, "empty");
    if (Status s = CheckText(p, nic.security_group_ids[i]); !s.ok()) return s;
  }
  for (const RecordPart* part : RecordParts()) {
    if (part->check_nic == nullptr) continue;
    if (Status s = part->check_nic(at, nic); !s.ok()) return s;
  }
  return Status::Ok();
}

Status ValidateNics(const std::vector<Nic>& in_nics, bool check_order) {
  // Keys are views into `in_nics`, which outlives the maps.
  struct Listing {
    size_t nic;
    const char* list;
    size_t index;
  };
  std::map<int, size_t> device_numbers;
  std::map<std::string_view, size_t> macs;
  std::map<std::string_view, Listing> addresses;  // address -> its first listing
  const Path nics("/nics");
  for (size_t n = 0; n < in_nics.size(); ++n) {
    const Nic& nic = in_nics[n];
    const Path at(nics, n);
    if (Status s = CheckNic(at, nic); !s.ok()) return s;
    if (auto [it, fresh] = device_numbers.emplace(nic.device_number, n); !fresh) {
      return Err(
          Path(at, "device_number"),
          std::to_string(nic.device_number) + " also used by /nics/" + std::to_string(it->second));
    }
    if (auto [it, fresh] = macs.emplace(nic.mac, n); !fresh) {
      return Err(Path(at, "mac"), nic.mac + " also used by /nics/" + std::to_string(it->second));
    }
    if (check_order && n > 0 && in_nics[n - 1].device_number > nic.device_number) {
      return Err(Path(at, "device_number"), "NICs not ordered by device_number (Normalize sorts)");
    }
    const std::pair<const char*, const StrList*> lists[] = {
        {"private_ipv4s", &nic.private_ipv4s},
        {"public_ipv4s", &nic.public_ipv4s},
        {"ipv6s", &nic.ipv6s},
    };
    for (const auto& [name, list] : lists) {
      for (size_t i = 0; i < list->size(); ++i) {
        if (auto [it, fresh] = addresses.emplace((*list)[i], Listing{n, name, i}); !fresh) {
          const Path list_at(at, name);
          const Listing& first = it->second;
          return Err(Path(list_at, i), "address " + (*list)[i] + " listed twice (also at /nics/" +
                                           std::to_string(first.nic) + "/" + first.list + "/" +
                                           std::to_string(first.index) + ")");
        }
      }
    }
  }
  return Status::Ok();
}

void SortNics(std::vector<Nic>& nics) {
  std::stable_sort(nics.begin(), nics.end(),
                   [](const Nic& a, const Nic& b) { return a.device_number < b.device_number; });
}

json::object NicToJson(const Nic& nic) {
  using json_writer::PutArray;
  using json_writer::PutString;
  json::object o;
  PutString(o, "mac", nic.mac);
  o["device_number"] = nic.device_number;
  o["network_card_index"] = nic.network_card_index;
  PutString(o, "interface_id", nic.interface_id);
  PutString(o, "owner_id", nic.owner_id);
  PutString(o, "local_hostname", nic.local_hostname);
  PutString(o, "public_hostname", nic.public_hostname);
  PutArray(o, "private_ipv4s", nic.private_ipv4s);
  PutArray(o, "public_ipv4s", nic.public_ipv4s);
  PutArray(o, "ipv6s", nic.ipv6s);
  PutString(o, "subnet_id", nic.subnet_id);
  PutString(o, "subnet_ipv4_cidr", nic.subnet_ipv4_cidr);
  PutArray(o, "subnet_ipv6_cidrs", nic.subnet_ipv6_cidrs);
  PutString(o, "vpc_id", nic.vpc_id);
  PutString(o, "vpc_ipv4_cidr", nic.vpc_ipv4_cidr);
  PutArray(o, "vpc_ipv4_cidrs", nic.vpc_ipv4_cidrs);
  PutArray(o, "vpc_ipv6_cidrs", nic.vpc_ipv6_cidrs);
  PutArray(o, "security_groups", nic.security_groups);
  PutArray(o, "security_group_ids", nic.security_group_ids);
  for (const RecordPart* part : RecordParts()) {
    if (part->nic_to_json != nullptr) part->nic_to_json(nic, o);
  }
  return o;
}

void NicToText(json_writer::Writer& w, const Nic& nic) {
  w.BeginObject();
  w.PutString("mac", nic.mac);
  w.Key("device_number");
  w.Int(nic.device_number);
  w.Key("network_card_index");
  w.Int(nic.network_card_index);
  w.PutString("interface_id", nic.interface_id);
  w.PutString("owner_id", nic.owner_id);
  w.PutString("local_hostname", nic.local_hostname);
  w.PutString("public_hostname", nic.public_hostname);
  w.PutArray("private_ipv4s", nic.private_ipv4s);
  w.PutArray("public_ipv4s", nic.public_ipv4s);
  w.PutArray("ipv6s", nic.ipv6s);
  w.PutString("subnet_id", nic.subnet_id);
  w.PutString("subnet_ipv4_cidr", nic.subnet_ipv4_cidr);
  w.PutArray("subnet_ipv6_cidrs", nic.subnet_ipv6_cidrs);
  w.PutString("vpc_id", nic.vpc_id);
  w.PutString("vpc_ipv4_cidr", nic.vpc_ipv4_cidr);
  w.PutArray("vpc_ipv4_cidrs", nic.vpc_ipv4_cidrs);
  w.PutArray("vpc_ipv6_cidrs", nic.vpc_ipv6_cidrs);
  w.PutArray("security_groups", nic.security_groups);
  w.PutArray("security_group_ids", nic.security_group_ids);
  for (const RecordPart* part : RecordParts()) {
    if (part->nic_to_text != nullptr) part->nic_to_text(nic, w);
  }
  w.EndObject();
}

}  // namespace openimds::model
