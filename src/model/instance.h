#pragma once

#include <chrono>
#include <cstdint>
#include <boost/container/flat_map.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/box.h"
#include "model/ec2_fields.h"
#include "model/network_config.h"  // guest network config, devices
#include "model/str.h"
#include "model/str_list.h"

namespace openimds::model {

// "x86_64", shared by every record that does not name another architecture.
Str DefaultArchitecture();

// A small string-to-string map ordered by key (tags, block devices, address
// associations): one contiguous array instead of one heap node per entry.
// Records hold a handful of entries and a fleet holds a million records, so
// this is what the per-instance memory needs; the interface is std::map's.
using StringMap = boost::container::flat_map<Str, Str, std::less<>>;

// One network interface. Addresses are kept as canonical text (validated by
// Validate(); IpAddress::Parse(x)->ToString() == x).
struct Nic {
  Str mac;  // lowercase "02:00:00:00:00:01"
  int device_number = 0;
  int network_card_index = 0;
  Str interface_id;  // "eni-..."
  Str owner_id;      // account that owns the interface; defaults to the instance's
  Str local_hostname;
  Str public_hostname;
  StrList private_ipv4s;  // primary first
  StrList public_ipv4s;
  StrList ipv6s;
  Str subnet_id;
  Str subnet_ipv4_cidr;
  StrList subnet_ipv6_cidrs;
  Str vpc_id;
  Str vpc_ipv4_cidr;  // primary VPC CIDR
  StrList vpc_ipv4_cidrs;  // all VPC IPv4 CIDRs (primary included)
  StrList vpc_ipv6_cidrs;
  StrList security_groups;     // names
  StrList security_group_ids;  // "sg-..."

  // EC2-only (docs/instance.md "EC2 fields"); their JSON, checks and limits
  // are the EC2 part's (ec2_fields.cc).
  StrList ipv4_prefixes;  // delegated IPv4 prefixes (CIDRs): "ipv4-prefix"
  StrList ipv6_prefixes;  // delegated IPv6 prefixes (CIDRs): "ipv6-prefix"
  // Public IPv4 (one of public_ipv4s) -> the private IPv4 (one of
  // private_ipv4s) it maps to: "ipv4-associations/<public-ip>".
  StringMap ipv4_associations;

  friend bool operator==(const Nic&, const Nic&) = default;
};

struct SshKey {
  Str name;
  Str key;  // "ssh-ed25519 AAAA... comment"
  friend bool operator==(const SshKey&, const SshKey&) = default;
};

// An IAM role attached through an instance profile.
struct IamRole {
  Str name;  // role name listed under iam/security-credentials/
  Str instance_profile_arn;
  Str instance_profile_id;
  std::optional<Credentials> credentials;
  friend bool operator==(const IamRole&, const IamRole&) = default;
};

// Per-instance metadata options, as EC2's ModifyInstanceMetadataOptions.
// Four bytes: it sits in the padding after Instance::launch_index.
struct MetadataOptions {
  enum class HttpTokens : uint8_t { kOptional, kRequired };
  HttpTokens http_tokens = HttpTokens::kOptional;
  bool http_endpoint_enabled = true;
  uint8_t hop_limit = 1;  // 1..64: IP TTL of the token PUT response
  bool tags_enabled = false;  // tags/instance/ in the EC2 tree
  friend bool operator==(const MetadataOptions&, const MetadataOptions&) = default;
};

// How much of a server's time one instance may take (docs/instance.md
// "limits"). An unset field takes the server's default (`serve
// --instance-rate-limit`, `--instance-rate-burst`, `--instance-max-in-flight`,
// `--instance-max-connections`);
// 0 turns that limit off for this instance. Enforced by service::MetadataService.
struct RequestLimits {
  std::optional<int> requests_per_second;  // sustained rate, 0..kMaxRequestLimit
  std::optional<int> burst;                // admitted at once when rested, 1..kMaxRequestLimit
  std::optional<int> max_in_flight;        // requests served at once, 0..kMaxRequestLimit
  std::optional<int> max_connections;      // connections open at once, 0..kMaxRequestLimit
  friend bool operator==(const RequestLimits&, const RequestLimits&) = default;
};
inline constexpr int kMaxRequestLimit = 1'000'000;


// What the store says about a record rather than what a client wrote: set by
// the store on every read, never part of the record's JSON (an admin client
// cannot write it). Not part of the record's content either: comparing two
// Instances ignores it (operator== below is always true), so a record read
// back equals the one written and a write of equal content stays a no-op.
// Compare its fields explicitly when they matter.
struct ServerManaged {
  // Which life of the id this record is: assigned when a write creates the
  // record (the id did not exist), kept by every update, new after a delete
  // and a re-create. The same on every node that reads the same store (it is
  // stored: the revision of the creating write). 0: not read from a store.
  // IMDSv2 session tokens are bound to it, so a token does not outlive the
  // instance it was issued to.
  int64_t incarnation = 0;
  friend bool operator==(const ServerManaged&, const ServerManaged&) { return true; }
};

// The canonical record of one instance: every flavour renders from this.
// Plain value; immutable once published in a catalog snapshot.
struct Instance {
  Str id;        // "i-0123456789abcdef0" or a UUID; [A-Za-z0-9._:-]{1,128}
  Str network;   // tenant scope of its addresses: [A-Za-z0-9._-]{1,64}
  Str name;      // display name
  Str hostname;  // EC2 "hostname"; falls back to local_hostname
  Str local_hostname;
  Str public_hostname;
  Str account_id;  // EC2 account / OpenStack project id
  Str image_id;
  Str instance_type;
  Str kernel_id;
  Str ramdisk_id;
  int launch_index = 0;
  MetadataOptions options;
  Str reservation_id;
  Str region;
  Str availability_zone;
  Str availability_zone_id;
  Str architecture = DefaultArchitecture();
  TimePoint launch_time{};  // identity document pendingTime
  std::vector<Nic> nics;    // ordered by device_number after Normalize()
  std::vector<SshKey> ssh_keys;
  std::optional<Str> user_data;  // raw bytes
  StringMap tags;
  std::optional<IamRole> iam;
  StringMap block_devices;  // "ami" -> "/dev/xvda", "ebs1" -> "sdb"

  // What the guest configures on its interfaces and devices, rendered by the
  // OpenStack flavour (network_config.h; a record part: guest_config_json.h);
  // one pointer while unset.
  Box<GuestConfig> guest;
  // Flavours (Flavour::Name()) this instance may be served by; empty = all.
  StrList flavours;
  // Per-instance request limits; one pointer while the record sets none.
  Box<RequestLimits> limits;

  // The fields only the EC2 flavour renders (ec2_fields.h, a record part);
  // one pointer while a record sets none of them. Each cloud's own fields
  // are a part like this one (model/README.md).
  Box<Ec2Fields> ec2;

  // Set by the store, not by clients; ignored by ==.
  ServerManaged managed;

  friend bool operator==(const Instance&, const Instance&) = default;
};

}  // namespace openimds::model
