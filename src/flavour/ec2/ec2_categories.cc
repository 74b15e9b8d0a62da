// The EC2 category table: one row per node, with the metadata version that
// introduced it. Sources: ec2.md §1.5 (AWS instancedata-data-categories.md);
// the per-interface "since" values come from the same AWS table ([AWS]:
// 2011-01-01 for the original fields, 2016-06-30 for the IPv6 and extra-CIDR
// fields, 2020-11-01 for network-card-index).
#include <charconv>
#include <string>
#include <vector>

#include "common/time_format.h"
#include "flavour/ec2/ec2_json.h"
#include "flavour/ec2/ec2_tree.h"

namespace openimds::flavour::ec2 {
namespace {

using model::Instance;
using model::Nic;
using C = RenderContext;

// The primary interface (device 0), or null.
const Nic* Device0(const Instance& instance) {
  for (const auto& nic : instance.nics) {
    if (nic.device_number == 0) return &nic;
  }
  return nullptr;
}

void First(const std::vector<std::string>& values, std::string& out) {
  if (!values.empty()) out += values.front();
}

// Multi-valued leaves are newline-separated (ec2.md §1.3).
void Lines(const std::vector<std::string>& values, std::string& out) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += '\n';
    out += values[i];
  }
}

void Int(long long value, std::string& out) {
  char digits[24];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), value);
  out.append(digits, end);
}

void Either(const std::string& preferred, const std::string& fallback, std::string& out) {
  out += preferred.empty() ? fallback : preferred;
}

// --- device-0 shortcuts at the top of meta-data ---

void LocalIpv4(const C& c, std::string& out) {
  if (const Nic* n = Device0(*c.instance)) First(n->private_ipv4s, out);
}
void PublicIpv4(const C& c, std::string& out) {
  if (const Nic* n = Device0(*c.instance)) First(n->public_ipv4s, out);
}
void Ipv6(const C& c, std::string& out) {
  if (const Nic* n = Device0(*c.instance)) First(n->ipv6s, out);
}
void Mac(const C& c, std::string& out) {
  if (const Nic* n = Device0(*c.instance)) out += n->mac;
}
void SecurityGroups(const C& c, std::string& out) {
  if (const Nic* n = Device0(*c.instance)) Lines(n->security_groups, out);
}
void LocalHostname(const C& c, std::string& out) {
  const Nic* n = Device0(*c.instance);
  Either(c.instance->local_hostname, n != nullptr ? n->local_hostname : std::string(), out);
}
void Hostname(const C& c, std::string& out) {
  if (!c.instance->hostname.empty()) {
    out += c.instance->hostname;
  } else {
    LocalHostname(c, out);
  }
}
void PublicHostname(const C& c, std::string& out) {
  const Nic* n = Device0(*c.instance);
  Either(c.instance->public_hostname, n != nullptr ? n->public_hostname : std::string(), out);
}

// --- IAM ---

void IamInfo(const C& c, std::string& out) {
  if (!c.instance->iam.has_value()) return;
  const model::IamRole& iam = *c.instance->iam;
  // The profile has no update time of its own in the model: the credentials'
  // LastUpdated when there are any, else the launch time.
  const model::TimePoint updated =
      iam.credentials.has_value() ? iam.credentials->last_updated : c.instance->launch_time;
  Ec2JsonObject(out)
      .String("Code", "Success")
      .String("LastUpdated", common::FormatRfc3339(updated))
      .String("InstanceProfileArn", iam.instance_profile_arn)
      .String("InstanceProfileId", iam.instance_profile_id)
      .Close();
}

// Bound by iam/security-credentials/<role>. Without credentials, or once they
// have expired by the injected clock, the role stays listed but this leaf is
// absent (404): serving stale keys would make SDKs cache credentials that AWS
// rejects, while a 404 makes them retry until the store rotates them.
void IamCredentials(const C& c, std::string& out) {
  const model::IamRole& iam = *c.instance->iam;
  if (!iam.credentials.has_value()) return;
  const model::Credentials& creds = *iam.credentials;
  if (c.clock->Now() >= creds.expiration) return;
  Ec2JsonObject(out)
      .String("Code", "Success")
      .String("LastUpdated", common::FormatRfc3339(creds.last_updated))
      .String("Type", "AWS-HMAC")
      .String("AccessKeyId", creds.access_key_id)
      .String("SecretAccessKey", creds.secret_access_key)
      .String("Token", creds.token)
      .String("Expiration", common::FormatRfc3339(creds.expiration))
      .Close();
}

// --- dynamic ---

void IdentityDocument(const C& c, std::string& out) {
  const Instance& i = *c.instance;
  const Nic* n = Device0(i);
  const std::string_view private_ip = n != nullptr && !n->private_ipv4s.empty()
                                          ? std::string_view(n->private_ipv4s.front())
                                          : std::string_view();
  // Key order as EC2 prints it (ec2.md §1.6).
  Ec2JsonObject(out)
      .String("accountId", i.account_id)
      .String("architecture", i.architecture)
      .String("availabilityZone", i.availability_zone)
      .Null("billingProducts")
      .Null("devpayProductCodes")
      .Null("marketplaceProductCodes")
      .String("imageId", i.image_id)
      .String("instanceId", i.id)
      .String("instanceType", i.instance_type)
      .StringOrNull("kernelId", i.kernel_id)
      .String("pendingTime", common::FormatRfc3339(i.launch_time))
      .StringOrNull("privateIp", private_ip)
      .StringOrNull("ramdiskId", i.ramdisk_id)
      .String("region", i.region)
      .String("version", "2017-09-30")
      .Close();
}

// --- network/interfaces/macs/<mac>/ (ctx.nic bound) ---

void NicOwner(const C& c, std::string& out) {
  Either(c.nic->owner_id, c.instance->account_id, out);
}
void NicVpcIpv4Cidrs(const C& c, std::string& out) {
  if (c.nic->vpc_ipv4_cidrs.empty()) {
    out += c.nic->vpc_ipv4_cidr;  // the primary is always one of them
  } else {
    Lines(c.nic->vpc_ipv4_cidrs, out);
  }
}

// clang-format off
const NodeSpec kCategories[] = {
    {"user-data", "1.0",
     [](const C& c, std::string& o) { if (c.instance->user_data) o += *c.instance->user_data; },
     KeySource::kNone, kOctetStream},

    // Signatures (pkcs7, signature, rsa2048) join this directory in a later issue.
    {"dynamic/instance-identity/document", "2009-04-04", IdentityDocument},

    {"meta-data/ami-id", "1.0", [](const C& c, std::string& o) { o += c.instance->image_id; }},
    {"meta-data/ami-launch-index", "1.0",
     [](const C& c, std::string& o) { Int(c.instance->launch_index, o); }},
    {"meta-data/ami-manifest-path", "1.0", [](const C&, std::string& o) { o += "(unknown)"; }},
    {"meta-data/block-device-mapping/*", "2007-12-15",
     [](const C& c, std::string& o) { o += *c.value; }, KeySource::kBlockDevice},
    {"meta-data/hostname", "1.0", Hostname},
    {"meta-data/iam/info", "2012-01-12", IamInfo},
    {"meta-data/iam/security-credentials/*", "2012-01-12", IamCredentials, KeySource::kIamRole},
    {"meta-data/instance-id", "1.0", [](const C& c, std::string& o) { o += c.instance->id; }},
    {"meta-data/instance-type", "2007-08-29",
     [](const C& c, std::string& o) { o += c.instance->instance_type; }},
    {"meta-data/ipv6", "2021-01-03", Ipv6},
    {"meta-data/kernel-id", "2008-02-01",
     [](const C& c, std::string& o) { o += c.instance->kernel_id; }},
    {"meta-data/local-hostname", "2007-01-19", LocalHostname},
    {"meta-data/local-ipv4", "1.0", LocalIpv4},
    {"meta-data/mac", "2011-01-01", Mac},

    {"meta-data/network/interfaces/macs/*", "2011-01-01", nullptr, KeySource::kNicMac},
    {"meta-data/network/interfaces/macs/*/device-number", "2011-01-01",
     [](const C& c, std::string& o) { Int(c.nic->device_number, o); }},
    {"meta-data/network/interfaces/macs/*/interface-id", "2011-01-01",
     [](const C& c, std::string& o) { o += c.nic->interface_id; }},
    {"meta-data/network/interfaces/macs/*/ipv6s", "2016-06-30",
     [](const C& c, std::string& o) { Lines(c.nic->ipv6s, o); }},
    {"meta-data/network/interfaces/macs/*/local-hostname", "2011-01-01",
     [](const C& c, std::string& o) { o += c.nic->local_hostname; }},
    {"meta-data/network/interfaces/macs/*/local-ipv4s", "2011-01-01",
     [](const C& c, std::string& o) { Lines(c.nic->private_ipv4s, o); }},
    {"meta-data/network/interfaces/macs/*/mac", "2011-01-01",
     [](const C& c, std::string& o) { o += c.nic->mac; }},
    {"meta-data/network/interfaces/macs/*/network-card-index", "2020-11-01",
     [](const C& c, std::string& o) { Int(c.nic->network_card_index, o); }},
    {"meta-data/network/interfaces/macs/*/owner-id", "2011-01-01", NicOwner},
    {"meta-data/network/interfaces/macs/*/public-hostname", "2011-01-01",
     [](const C& c, std::string& o) { o += c.nic->public_hostname; }},
    {"meta-data/network/interfaces/macs/*/public-ipv4s", "2011-01-01",
     [](const C& c, std::string& o) { Lines(c.nic->public_ipv4s, o); }},
    {"meta-data/network/interfaces/macs/*/security-group-ids", "2011-01-01",
     [](const C& c, std::string& o) { Lines(c.nic->security_group_ids, o); }},
    {"meta-data/network/interfaces/macs/*/security-groups", "2011-01-01",
     [](const C& c, std::string& o) { Lines(c.nic->security_groups, o); }},
    {"meta-data/network/interfaces/macs/*/subnet-id", "2011-01-01",
     [](const C& c, std::string& o) { o += c.nic->subnet_id; }},
    {"meta-data/network/interfaces/macs/*/subnet-ipv4-cidr-block", "2011-01-01",
     [](const C& c, std::string& o) { o += c.nic->subnet_ipv4_cidr; }},
    {"meta-data/network/interfaces/macs/*/subnet-ipv6-cidr-blocks", "2016-06-30",
     [](const C& c, std::string& o) { Lines(c.nic->subnet_ipv6_cidrs, o); }},
    {"meta-data/network/interfaces/macs/*/vpc-id", "2011-01-01",
     [](const C& c, std::string& o) { o += c.nic->vpc_id; }},
    {"meta-data/network/interfaces/macs/*/vpc-ipv4-cidr-block", "2011-01-01",
     [](const C& c, std::string& o) { o += c.nic->vpc_ipv4_cidr; }},
    {"meta-data/network/interfaces/macs/*/vpc-ipv4-cidr-blocks", "2016-06-30", NicVpcIpv4Cidrs},
    {"meta-data/network/interfaces/macs/*/vpc-ipv6-cidr-blocks", "2016-06-30",
     [](const C& c, std::string& o) { Lines(c.nic->vpc_ipv6_cidrs, o); }},

    {"meta-data/placement/availability-zone", "2008-02-01",
     [](const C& c, std::string& o) { o += c.instance->availability_zone; }},
    {"meta-data/placement/availability-zone-id", "2019-10-01",
     [](const C& c, std::string& o) { o += c.instance->availability_zone_id; }},
    {"meta-data/placement/region", "2020-08-24",
     [](const C& c, std::string& o) { o += c.instance->region; }},
    {"meta-data/public-hostname", "2007-01-19", PublicHostname},
    {"meta-data/public-ipv4", "2007-01-19", PublicIpv4},
    {"meta-data/public-keys/*", "1.0", nullptr, KeySource::kPublicKeyIndex},
    {"meta-data/public-keys/*/openssh-key", "1.0",
     [](const C& c, std::string& o) { o += c.instance->ssh_keys[c.key_index].key; }},
    {"meta-data/ramdisk-id", "2007-10-10",
     [](const C& c, std::string& o) { o += c.instance->ramdisk_id; }},
    {"meta-data/reservation-id", "1.0",
     [](const C& c, std::string& o) { o += c.instance->reservation_id; }},
    {"meta-data/security-groups", "1.0", SecurityGroups},
    {"meta-data/services/domain", "2014-02-25",
     [](const C& c, std::string& o) { o += DomainForRegion(c.instance->region); }},
    {"meta-data/services/partition", "2015-10-20",
     [](const C& c, std::string& o) { o += PartitionForRegion(c.instance->region); }},
    // Tag values may be empty in AWS; an empty tag is still a tag.
    {"meta-data/tags/instance/*", "2021-03-23",
     [](const C& c, std::string& o) { o += *c.value; }, KeySource::kTagKey, kEmptyIsValue},
};
// clang-format on

}  // namespace

std::span<const NodeSpec> Ec2Categories() { return kCategories; }

}  // namespace openimds::flavour::ec2
