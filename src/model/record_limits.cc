#include "model/record_limits.h"

#include <string>
#include <utility>
#include <vector>

#include "model/json_reader.h"

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

// The checks of one CheckLimits call. Each returns the refusal of the first
// offender, as PayloadTooLarge.
class Checker {
 public:
  Checker(const RecordLimits& limits, Limit* exceeded) : limits_(limits), exceeded_(exceeded) {}

  // `what` prefixes the size in the message ("key is ").
  Status Over(const Path& at, std::string_view what, size_t actual, Limit limit) const {
    if (exceeded_ != nullptr) *exceeded_ = limit;
    std::string pointer = at.ToString();
    if (pointer.empty()) pointer = "/";
    return Status(Code::kPayloadTooLarge, pointer + ": " + std::string(what) +
                                              std::to_string(actual) + " " +
                                              std::string(InfoFor(limit).unit) +
                                              "; the limit is " + std::to_string(limits_[limit]));
  }

  Status Bytes(const Path& at, std::string_view value, Limit limit = Limit::kTextBytes) const {
    if (value.size() <= limits_[limit]) return Status::Ok();
    return Over(at, "", value.size(), limit);
  }

  Status Count(const Path& at, size_t n, Limit limit = Limit::kListItems) const {
    if (n <= limits_[limit]) return Status::Ok();
    return Over(at, "", n, limit);
  }

  // A list of text: its length, then each entry.
  template <typename List>
  Status TextList(const Path& at, const List& list, Limit count = Limit::kListItems,
                  Limit bytes = Limit::kTextBytes) const {
    if (Status s = Count(at, list.size(), count); !s.ok()) return s;
    for (size_t i = 0; i < list.size(); ++i) {
      if (Status s = Bytes(Path(at, i), list[i], bytes); !s.ok()) return s;
    }
    return Status::Ok();
  }

  // A map of text to text: its size, then each key and value.
  Status TextMap(const Path& at, const StringMap& map, Limit count) const {
    if (Status s = Count(at, map.size(), count); !s.ok()) return s;
    for (const auto& [key, value] : map) {
      const Path p(at, key);
      if (key.size() > limits_[Limit::kTextBytes]) {
        return Over(p, "key is ", key.size(), Limit::kTextBytes);
      }
      if (Status s = Bytes(p, value); !s.ok()) return s;
    }
    return Status::Ok();
  }

  Status Credentials(const Path& at, const model::Credentials& c) const {
    const std::pair<const char*, const Str*> parts[] = {
        {"access_key_id", &c.access_key_id},
        {"secret_access_key", &c.secret_access_key},
        {"token", &c.token},
    };
    for (const auto& [name, value] : parts) {
      if (Status s = Bytes(Path(at, name), *value, Limit::kCredentialBytes); !s.ok()) return s;
    }
    return Status::Ok();
  }

  Status Nic(const Path& at, const model::Nic& nic) const {
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
      if (Status s = Bytes(Path(at, name), *value); !s.ok()) return s;
    }
    const std::pair<const char*, const Str*> hostnames[] = {
        {"local_hostname", &nic.local_hostname},
        {"public_hostname", &nic.public_hostname},
    };
    for (const auto& [name, value] : hostnames) {
      if (Status s = Bytes(Path(at, name), *value, Limit::kHostnameBytes); !s.ok()) return s;
    }
    const std::pair<const char*, const StrList*> addresses[] = {
        {"private_ipv4s", &nic.private_ipv4s},   {"public_ipv4s", &nic.public_ipv4s},
        {"ipv6s", &nic.ipv6s},                   {"subnet_ipv6_cidrs", &nic.subnet_ipv6_cidrs},
        {"vpc_ipv4_cidrs", &nic.vpc_ipv4_cidrs}, {"vpc_ipv6_cidrs", &nic.vpc_ipv6_cidrs},
        {"ipv4_prefixes", &nic.ipv4_prefixes},   {"ipv6_prefixes", &nic.ipv6_prefixes},
    };
    for (const auto& [name, list] : addresses) {
      if (Status s = TextList(Path(at, name), *list, Limit::kAddressesPerNic); !s.ok()) return s;
    }
    if (Status s = TextMap(Path(at, "ipv4_associations"), nic.ipv4_associations,
                           Limit::kAddressesPerNic);
        !s.ok()) {
      return s;
    }
    if (Status s = TextList(Path(at, "security_groups"), nic.security_groups); !s.ok()) return s;
    return TextList(Path(at, "security_group_ids"), nic.security_group_ids);
  }

  Status Guest(const GuestConfig& g) const {
    const NetworkConfig& nc = g.network_config;
    const Path root("/network_config");
    const Path links(root, "links");
    if (Status s = Count(links, nc.links.size()); !s.ok()) return s;
    for (size_t i = 0; i < nc.links.size(); ++i) {
      const Link& l = nc.links[i];
      const Path at(links, i);
      const std::pair<const char*, const std::string*> texts[] = {
          {"name", &l.name},         {"mac", &l.mac},
          {"vif_type", &l.vif_type}, {"vif_id", &l.vif_id},
          {"bond_mode", &l.bond_mode}, {"vlan_link", &l.vlan_link},
      };
      for (const auto& [name, value] : texts) {
        if (Status s = Bytes(Path(at, name), *value); !s.ok()) return s;
      }
      if (Status s = TextList(Path(at, "bond_links"), l.bond_links); !s.ok()) return s;
    }
    const Path networks(root, "networks");
    if (Status s = Count(networks, nc.networks.size()); !s.ok()) return s;
    for (size_t i = 0; i < nc.networks.size(); ++i) {
      const IpNetwork& n = nc.networks[i];
      const Path at(networks, i);
      const std::pair<const char*, const std::string*> texts[] = {
          {"link", &n.link},
          {"network_id", &n.network_id},
          {"address", &n.address},
          {"gateway", &n.gateway},
      };
      for (const auto& [name, value] : texts) {
        if (Status s = Bytes(Path(at, name), *value); !s.ok()) return s;
      }
      const Path routes(at, "routes");
      if (Status s = Count(routes, n.routes.size()); !s.ok()) return s;
      for (size_t r = 0; r < n.routes.size(); ++r) {
        const Path route(routes, r);
        if (Status s = Bytes(Path(route, "destination"), n.routes[r].destination); !s.ok()) {
          return s;
        }
        if (Status s = Bytes(Path(route, "gateway"), n.routes[r].gateway); !s.ok()) return s;
      }
      if (Status s = TextList(Path(at, "dns_servers"), n.dns_servers); !s.ok()) return s;
    }
    if (Status s = TextList(Path(root, "dns_servers"), nc.dns_servers); !s.ok()) return s;

    const Path devices("/devices");
    if (Status s = Count(devices, g.devices.size()); !s.ok()) return s;
    for (size_t i = 0; i < g.devices.size(); ++i) {
      const Device& d = g.devices[i];
      const Path at(devices, i);
      const std::pair<const char*, const std::string*> texts[] = {
          {"bus", &d.bus},       {"address", &d.address}, {"mac", &d.mac},
          {"serial", &d.serial}, {"path", &d.path},
      };
      for (const auto& [name, value] : texts) {
        if (Status s = Bytes(Path(at, name), *value); !s.ok()) return s;
      }
      if (Status s = TextList(Path(at, "tags"), d.tags); !s.ok()) return s;
    }
    if (Status s = Count(Path("/dedicated_cpus"), g.dedicated_cpus.size()); !s.ok()) return s;
    if (g.vendor_data) {
      return Bytes(Path("/vendor_data"), *g.vendor_data, Limit::kVendorDataBytes);
    }
    return Status::Ok();
  }

  Status Ec2(const Ec2Fields& e) const {
    const std::pair<const char*, const Str*> texts[] = {
        {"ami_manifest_path", &e.ami_manifest_path},
        {"instance_action", &e.instance_action},
        {"instance_life_cycle", &e.instance_life_cycle},
        {"profile", &e.profile},
        {"placement_group", &e.placement_group},
        {"host_id", &e.host_id},
    };
    for (const auto& [name, value] : texts) {
      if (Status s = Bytes(Path(Path(), name), *value); !s.ok()) return s;
    }
    const std::pair<const char*, const StrList*> lists[] = {
        {"ancestor_ami_ids", &e.ancestor_ami_ids},
        {"product_codes", &e.product_codes},
        {"billing_products", &e.billing_products},
    };
    for (const auto& [name, list] : lists) {
      if (Status s = TextList(Path(Path(), name), *list); !s.ok()) return s;
    }
    if (e.identity_credentials) {
      if (Status s = Credentials(Path("/identity_credentials"), *e.identity_credentials); !s.ok()) {
        return s;
      }
    }
    const Path scheduled("/events/scheduled");
    if (Status s = Count(scheduled, e.events.scheduled.size()); !s.ok()) return s;
    for (size_t i = 0; i < e.events.scheduled.size(); ++i) {
      const ScheduledEvent& ev = e.events.scheduled[i];
      const Path at(scheduled, i);
      if (Status s = Bytes(Path(at, "id"), ev.id); !s.ok()) return s;
      if (Status s = Bytes(Path(at, "description"), ev.description); !s.ok()) return s;
    }
    return Count(Path("/events/target_lifecycle_states"), e.events.lifecycle.size());
  }

 private:
  const RecordLimits& limits_;
  Limit* exceeded_;
};

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
  const Checker c(limits, exceeded);
  const Path root;
  const std::pair<const char*, const Str*> texts[] = {
      {"name", &in.name},
      {"account_id", &in.account_id},
      {"image_id", &in.image_id},
      {"instance_type", &in.instance_type},
      {"kernel_id", &in.kernel_id},
      {"ramdisk_id", &in.ramdisk_id},
      {"reservation_id", &in.reservation_id},
      {"region", &in.region},
      {"availability_zone", &in.availability_zone},
      {"availability_zone_id", &in.availability_zone_id},
      {"architecture", &in.architecture},
  };
  for (const auto& [name, value] : texts) {
    if (Status s = c.Bytes(Path(root, name), *value); !s.ok()) return s;
  }
  const std::pair<const char*, const Str*> hostnames[] = {
      {"hostname", &in.hostname},
      {"local_hostname", &in.local_hostname},
      {"public_hostname", &in.public_hostname},
  };
  for (const auto& [name, value] : hostnames) {
    if (Status s = c.Bytes(Path(root, name), *value, Limit::kHostnameBytes); !s.ok()) return s;
  }

  const Path nics("/nics");
  if (Status s = c.Count(nics, in.nics.size(), Limit::kNics); !s.ok()) return s;
  for (size_t i = 0; i < in.nics.size(); ++i) {
    if (Status s = c.Nic(Path(nics, i), in.nics[i]); !s.ok()) return s;
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
      if (Status s = c.Credentials(Path("/iam/credentials"), *in.iam->credentials); !s.ok()) {
        return s;
      }
    }
  }

  if (Status s = c.TextMap(Path("/block_devices"), in.block_devices, Limit::kBlockDevices);
      !s.ok()) {
    return s;
  }
  if (Status s = c.Guest(*in.guest); !s.ok()) return s;
  if (Status s = c.TextList(Path("/flavours"), in.flavours); !s.ok()) return s;
  return c.Ec2(*in.ec2);
}

Status CheckRecordBytes(size_t bytes, const RecordLimits& limits) {
  const size_t limit = limits[Limit::kRecordBytes];
  if (bytes <= limit) return Status::Ok();
  return Status(Code::kPayloadTooLarge,
                "/: " + std::to_string(bytes) + " bytes; the limit is " + std::to_string(limit) +
                    " for one record's JSON");
}

}  // namespace openimds::model
