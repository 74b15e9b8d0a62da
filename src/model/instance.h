#pragma once

#include <chrono>
#include <cstdint>
#include <boost/container/flat_map.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/network_config.h"  // guest network config, devices

namespace openimds::model {

using TimePoint = std::chrono::system_clock::time_point;

// A small string-to-string map ordered by key (tags, block devices, address
// associations): one contiguous array instead of one heap node per entry.
// Records hold a handful of entries and a fleet holds a million records, so
// this is what the per-instance memory needs; the interface is std::map's.
using StringMap = boost::container::flat_map<std::string, std::string>;

// One network interface. Addresses are kept as canonical text (validated by
// Validate(); IpAddress::Parse(x)->ToString() == x).
struct Nic {
  std::string mac;  // lowercase "02:00:00:00:00:01"
  int device_number = 0;
  int network_card_index = 0;
  std::string interface_id;  // "eni-..."
  std::string owner_id;      // account that owns the interface; defaults to the instance's
  std::string local_hostname;
  std::string public_hostname;
  std::vector<std::string> private_ipv4s;  // primary first
  std::vector<std::string> public_ipv4s;
  std::vector<std::string> ipv6s;
  std::string subnet_id;
  std::string subnet_ipv4_cidr;
  std::vector<std::string> subnet_ipv6_cidrs;
  std::string vpc_id;
  std::string vpc_ipv4_cidr;  // primary VPC CIDR
  std::vector<std::string> vpc_ipv4_cidrs;  // all VPC IPv4 CIDRs (primary included)
  std::vector<std::string> vpc_ipv6_cidrs;
  std::vector<std::string> security_groups;     // names
  std::vector<std::string> security_group_ids;  // "sg-..."

  // --- EC2 fidelity (docs/instance.md "NIC") ---
  std::vector<std::string> ipv4_prefixes;  // delegated IPv4 prefixes (CIDRs): "ipv4-prefix"
  std::vector<std::string> ipv6_prefixes;  // delegated IPv6 prefixes (CIDRs): "ipv6-prefix"
  // Public IPv4 (one of public_ipv4s) -> the private IPv4 (one of
  // private_ipv4s) it maps to: "ipv4-associations/<public-ip>".
  StringMap ipv4_associations;
  // --- end EC2 fidelity ---

  friend bool operator==(const Nic&, const Nic&) = default;
};

struct SshKey {
  std::string name;
  std::string key;  // "ssh-ed25519 AAAA... comment"
  friend bool operator==(const SshKey&, const SshKey&) = default;
};

// Temporary role credentials as EC2 serves them.
struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string token;
  TimePoint expiration{};
  TimePoint last_updated{};
  friend bool operator==(const Credentials&, const Credentials&) = default;
};

// An IAM role attached through an instance profile.
struct IamRole {
  std::string name;  // role name listed under iam/security-credentials/
  std::string instance_profile_arn;
  std::string instance_profile_id;
  std::optional<Credentials> credentials;
  friend bool operator==(const IamRole&, const IamRole&) = default;
};

// Per-instance metadata options, as EC2's ModifyInstanceMetadataOptions.
struct MetadataOptions {
  enum class HttpTokens { kOptional, kRequired };
  HttpTokens http_tokens = HttpTokens::kOptional;
  bool http_endpoint_enabled = true;
  int hop_limit = 1;  // 1..64: IP TTL of the token PUT response
  bool tags_enabled = false;  // tags/instance/ in the EC2 tree
  friend bool operator==(const MetadataOptions&, const MetadataOptions&) = default;
};

// --- EC2 platform events (docs/instance.md "Platform
// events"). Times are absolute; the JSON mapping also accepts a delay
// ({"in_seconds": N}) and turns it into an absolute time when parsing. ---

// A Spot interruption notice: spot/instance-action and spot/termination-time.
struct SpotInterruption {
  std::string action;  // "terminate", "stop" or "hibernate"
  TimePoint time{};    // when the action happens (required)
  // When the notice becomes visible to the guest; unset (epoch): two minutes
  // before `time`, EC2's notice period.
  TimePoint notice_time{};
  friend bool operator==(const SpotInterruption&, const SpotInterruption&) = default;
};

// A scheduled maintenance event: events/maintenance/scheduled while active,
// events/maintenance/history once completed or canceled.
struct ScheduledEvent {
  enum class State { kActive, kCompleted, kCanceled };
  std::string id;  // "instance-event-0d59937288b749b32"; unique per instance
  // "instance-reboot", "system-reboot", "system-maintenance",
  // "instance-retirement" or "instance-stop"
  std::string code;
  State state = State::kActive;
  std::string description;
  TimePoint not_before{};           // required
  TimePoint not_after{};            // optional; an active event is completed once it passes
  TimePoint not_before_deadline{};  // optional
  TimePoint notice_time{};          // visible from; unset: at once
  friend bool operator==(const ScheduledEvent&, const ScheduledEvent&) = default;
};

// One step of the Auto Scaling lifecycle: autoscaling/target-lifecycle-state.
struct LifecycleTransition {
  // "InService", "Detached", "Standby", "Terminated", "Warmed:Hibernated",
  // "Warmed:Running", "Warmed:Stopped" or "Warmed:Terminated"
  std::string state;
  TimePoint at{};  // in effect from; unset: at once
  friend bool operator==(const LifecycleTransition&, const LifecycleTransition&) = default;
};

struct PlatformEvents {
  std::optional<SpotInterruption> spot;
  std::optional<TimePoint> rebalance_notice;   // events/recommendations/rebalance from then
  std::vector<ScheduledEvent> scheduled;       // ids unique
  std::vector<LifecycleTransition> lifecycle;  // in time order; the last one due applies
  bool empty() const {
    return !spot && !rebalance_notice && scheduled.empty() && lifecycle.empty();
  }
  friend bool operator==(const PlatformEvents&, const PlatformEvents&) = default;
};
// --- end EC2 platform events ---

// The canonical record of one instance: every flavour renders from this.
// Plain value; immutable once published in a catalog snapshot.
struct Instance {
  std::string id;        // "i-0123456789abcdef0" or a UUID; [A-Za-z0-9._:-]{1,128}
  std::string network;   // tenant scope of its addresses: [A-Za-z0-9._-]{1,64}
  std::string name;      // display name
  std::string hostname;  // EC2 "hostname"; falls back to local_hostname
  std::string local_hostname;
  std::string public_hostname;
  std::string account_id;  // EC2 account / OpenStack project id
  std::string image_id;
  std::string instance_type;
  std::string kernel_id;
  std::string ramdisk_id;
  int launch_index = 0;
  std::string reservation_id;
  std::string region;
  std::string availability_zone;
  std::string availability_zone_id;
  std::string architecture = "x86_64";
  TimePoint launch_time{};  // identity document pendingTime
  std::vector<Nic> nics;    // ordered by device_number after Normalize()
  std::vector<SshKey> ssh_keys;
  std::optional<std::string> user_data;  // raw bytes
  StringMap tags;
  std::optional<IamRole> iam;
  StringMap block_devices;  // "ami" -> "/dev/xvda", "ebs1" -> "sdb"
  MetadataOptions options;

  // --- Guest configuration (OpenStack flavour; docs/instance.md
  // "Guest network configuration"). JSON: network_config_json.cc. ---
  NetworkConfig network_config;  // links, networks, resolvers; empty = derived from nics
  std::vector<Device> devices;   // tagged devices (device-role tagging)
  std::vector<int> dedicated_cpus;  // pinned host CPU ids, sorted and unique
  // Per-instance vendor data: a JSON object in compact form.
  std::optional<std::string> vendor_data;
  // Flavours (Flavour::Name()) this instance may be served by; empty = all.
  std::vector<std::string> flavours;
  // --- end guest configuration ---

  // --- EC2 fidelity (docs/instance.md "EC2 fields").
  // Empty strings and lists are absent in the EC2 tree (404), except where a
  // default is named. ---
  std::string ami_manifest_path;              // "" -> "(unknown)" (EBS-backed)
  std::vector<std::string> ancestor_ami_ids;
  std::vector<std::string> product_codes;     // Marketplace product codes
  std::vector<std::string> billing_products;  // identity document "billingProducts"
  std::string instance_action;                // "" -> "none"
  std::string instance_life_cycle;            // "" -> "on-demand"
  std::string profile;                        // "" -> "default-hvm"
  std::string placement_group;                // placement/group-name
  std::string host_id;                        // placement/host-id (Dedicated Hosts)
  int partition_number = 0;                   // 1..7; 0: not in a partition group
  bool detailed_monitoring = false;           // dynamic/fws/instance-monitoring
  // The instance identity role's credentials:
  // identity-credentials/ec2/security-credentials/ec2-instance.
  std::optional<Credentials> identity_credentials;
  PlatformEvents events;
  // --- end EC2 fidelity ---

  friend bool operator==(const Instance&, const Instance&) = default;
};

}  // namespace openimds::model
