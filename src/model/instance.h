#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace openimds::model {

using TimePoint = std::chrono::system_clock::time_point;

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
  std::map<std::string, std::string> tags;
  std::optional<IamRole> iam;
  std::map<std::string, std::string> block_devices;  // "ami" -> "/dev/xvda", "ebs1" -> "sdb"
  MetadataOptions options;

  friend bool operator==(const Instance&, const Instance&) = default;
};

}  // namespace openimds::model
